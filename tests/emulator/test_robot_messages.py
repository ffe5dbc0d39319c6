"""Robot messages (§3.2, §3.3): pushed as Stream CALLBACK frames with the documented payload,
group type rules, media download through signed expiring URLs, and the robot_message truth
(only messages that actually reached a Stream connection)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_files_storage import Emu, make_emu
from websockets.sync.client import ClientConnection, connect

from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig
from dingtalk_emulator.stream import ROBOT_MESSAGE_TOPIC

COMMON = {
    "conversationId",
    "conversationType",
    "msgId",
    "msgtype",
    "createAt",
    "senderId",
    "senderStaffId",
    "senderNick",
    "senderCorpId",
    "isAdmin",
    "chatbotCorpId",
    "chatbotUserId",
    "robotCode",
    "sessionWebhook",
    "sessionWebhookExpiredTime",
}


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(profile="demo", limits="off", seed=41)) as emu:
        yield emu


def robot_stream(emu: RunningEmulator) -> ClientConnection:
    org = emu.state.org
    r = httpx.post(
        emu.base_url + "/v1.0/gateway/connections/open",
        json={
            "clientId": org.app_key,
            "clientSecret": org.app_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": ROBOT_MESSAGE_TOPIC}],
            "ua": "test",
            "localIp": "127.0.0.1",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return connect(f"{body['endpoint']}?ticket={body['ticket']}", open_timeout=5)


def next_callback(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.recv(timeout=5))
        if frame["type"] == "CALLBACK":
            ws.send(
                json.dumps(
                    {
                        "code": 200,
                        "headers": {
                            "messageId": frame["headers"]["messageId"],
                            "contentType": "application/json",
                        },
                        "message": "",
                        "data": json.dumps({"response": "OK"}),
                    }
                )
            )
            return frame
        if frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "ping":
            ws.send(
                json.dumps({"code": 200, "headers": frame["headers"], "message": "OK", "data": frame["data"]})
            )


def mutate(emu: RunningEmulator, **params: Any) -> httpx.Response:
    return httpx.post(emu.base_url + "/_emulator/mutate", json=params, timeout=10)


def token(emu: RunningEmulator) -> str:
    org = emu.state.org
    return httpx.post(
        emu.base_url + "/v1.0/oauth2/accessToken", json={"appKey": org.app_key, "appSecret": org.app_secret}
    ).json()["accessToken"]


def test_pushed_messages_follow_the_payload_and_reach_truth(running: RunningEmulator) -> None:
    with robot_stream(running) as ws:
        sent = []
        for conv, msgtype in [
            ("single", "text"),
            ("single", "file"),
            ("single", "audio"),
            ("group", "text"),
            ("group", "picture"),
            ("group", "richText"),
        ]:
            r = mutate(running, op="robot.message", conversation=conv, msgtype=msgtype)
            assert r.status_code == 200, r.text
            assert r.json()["delivered"] is True
            frame = next_callback(ws)
            assert frame["headers"]["topic"] == ROBOT_MESSAGE_TOPIC and isinstance(frame["data"], str)
            msg = json.loads(frame["data"])
            assert set(msg) >= COMMON and msg["msgtype"] == msgtype
            assert msg["robotCode"] == running.state.org.robot_code
            assert running.state.org.people.user(msg["senderStaffId"]) is not None
            if conv == "group":
                assert (
                    msg["conversationType"] == "2" and msg["isInAtList"] is True and msg["conversationTitle"]
                )
            else:
                assert msg["conversationType"] == "1" and "conversationTitle" not in msg
            if msgtype == "text":
                assert msg["text"]["content"].strip()
            elif msgtype == "richText":
                assert any(
                    p.get("type") == "picture" and p["downloadCode"] for p in msg["content"]["richText"]
                )
            else:
                assert msg["content"]["downloadCode"]
            if msgtype == "file":
                assert msg["content"]["fileName"]
            if msgtype == "audio":
                assert isinstance(msg["content"]["duration"], int) and "recognition" in msg["content"]
            sent.append(msg)
    truth = httpx.get(running.base_url + "/_emulator/truth", params={"kind": "robot_message"}).json()["items"]
    by_id = {t["id"]: t for t in truth}
    for msg in sent:
        t = by_id[f"{msg['conversationId']}/{msg['msgId']}"]
        assert t["msgtype"] == msg["msgtype"]
        assert ("sha256" in t) == (msg["msgtype"] != "text")


def test_groups_cannot_send_audio_file_video(running: RunningEmulator) -> None:
    for msgtype in ("audio", "file", "video"):
        r = mutate(running, op="robot.message", conversation="group", msgtype=msgtype)
        assert r.status_code == 400 and "cannot reach a robot" in r.json()["error"]


def test_undelivered_messages_are_not_in_truth(running: RunningEmulator) -> None:
    r = mutate(running, op="robot.message", conversation="single", msgtype="text")  # no connection open now
    assert r.status_code == 200 and r.json()["delivered"] is False
    truth = httpx.get(running.base_url + "/_emulator/truth", params={"kind": "robot_message"}).json()["items"]
    assert all(not t["id"].endswith(r.json()["msgId"]) for t in truth)


def test_media_download_flow(running: RunningEmulator) -> None:
    with robot_stream(running) as ws:
        mutate(running, op="robot.message", conversation="single", msgtype="picture")
        msg = json.loads(next_callback(ws)["data"])
    headers = {"x-acs-dingtalk-access-token": token(running)}
    api = running.base_url + "/v1.0/robot/messageFiles/download"
    code = msg["content"]["downloadCode"]
    r = httpx.post(api, json={"downloadCode": code, "robotCode": msg["robotCode"]}, headers=headers)
    assert r.status_code == 200, r.text
    url = r.json()["downloadUrl"]
    assert "Expires=" in url and "Signature=" in url
    blob = httpx.get(url)
    assert blob.status_code == 200 and blob.content[:8] == b"\x89PNG\r\n\x1a\n"
    truth = {
        t["id"]: t
        for t in httpx.get(running.base_url + "/_emulator/truth", params={"kind": "robot_message"}).json()[
            "items"
        ]
    }
    assert (
        truth[f"{msg['conversationId']}/{msg['msgId']}"]["sha256"] == hashlib.sha256(blob.content).hexdigest()
    )
    part = httpx.get(url, headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == blob.content[:8]
    assert httpx.get(url.split("?")[0]).status_code == 403  # unsigned
    assert httpx.get(url.replace("Signature=", "Signature=x")).status_code == 403
    for body, code_name in [
        ({"downloadCode": code}, "invalidParameter.robotCode.empty"),
        ({"downloadCode": code, "robotCode": "dingother"}, "invalidParameter.robotCode.auth"),
        ({"downloadCode": code[:-2] + "zz", "robotCode": msg["robotCode"]}, "invalidParameter.downloadCode"),
    ]:
        r = httpx.post(api, json=body, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == code_name
    running.state.clock.advance(3601)
    try:
        assert httpx.get(url).status_code == 403  # expired
    finally:
        running.state.clock.advance(-3601)


def test_message_pool_is_deterministic() -> None:
    a, b = make_emu(seed=8), make_emu(seed=8)
    for e in (a, b):
        e.state.hub.callback_delivered = lambda _mid: True
    ra = [a.mutate("robot.message", rand=i).json() for i in range(20)]
    rb = [b.mutate("robot.message", rand=i).json() for i in range(20)]
    assert [(x["conversationId"], x["msgId"], x["msgtype"]) for x in ra] == [
        (x["conversationId"], x["msgId"], x["msgtype"]) for x in rb
    ]
    assert len({x["msgtype"] for x in ra}) > 1


def test_nothing_in_truth_before_sending() -> None:
    e: Emu = make_emu(seed=2)
    assert e.truth("robot_message") == []  # nothing is sent until the robot.message mutation runs


def test_payloads_parse_with_the_stream_sdk_chatbot_message() -> None:
    from dingtalk_stream import ChatbotMessage

    e = make_emu(seed=12)
    sent: list[dict[str, Any]] = []
    e.state.hub.publish_callback = lambda topic, data: (sent.append(data), "mid")[1]
    for conv, msgtype in [
        ("single", "text"),
        ("single", "picture"),
        ("single", "richText"),
        ("single", "file"),
        ("single", "audio"),
        ("single", "video"),
        ("group", "text"),
        ("group", "picture"),
    ]:
        assert e.mutate("robot.message", conversation=conv, msgtype=msgtype).status_code == 200
    for data in sent:
        msg = ChatbotMessage.from_dict(data)
        assert msg.message_type == data["msgtype"] and msg.conversation_id == data["conversationId"]
        assert msg.sender_staff_id == data["senderStaffId"] and msg.robot_code == data["robotCode"]
        if data["msgtype"] == "text":
            assert msg.text.content == data["text"]["content"]
        if data["msgtype"] == "picture":
            assert msg.image_content.download_code == data["content"]["downloadCode"]
        if data["msgtype"] == "richText":
            assert msg.rich_text_content.rich_text_list == data["content"]["richText"]


def test_delivered_messages_survive_a_restart_with_state_dir(tmp_path: Any) -> None:
    config = EmulatorConfig(profile="demo", limits="off", seed=43, state_dir=str(tmp_path))
    with RunningEmulator(config) as first, robot_stream(first) as ws:
        assert (
            mutate(first, op="robot.message", conversation="single", msgtype="picture").json()["delivered"]
            is True
        )
        next_callback(ws)
        mutate(first, op="robot.message", conversation="group", msgtype="text")
        next_callback(ws)
        before = httpx.get(first.base_url + "/_emulator/truth", params={"kind": "robot_message"}).json()[
            "items"
        ]
    assert len(before) == 2
    again = EmulatorConfig(profile="demo", limits="off", seed=43, state_dir=str(tmp_path))
    with RunningEmulator(again) as second:
        after = httpx.get(second.base_url + "/_emulator/truth", params={"kind": "robot_message"}).json()[
            "items"
        ]
        # The journal stamps a mutation just before its handler runs, so a replayed createAt may be
        # a few ms earlier than the original; everything else is identical.
        assert [{**t, "createAt": 0} for t in after] == [{**t, "createAt": 0} for t in before]
        assert all(abs(a["createAt"] - b["createAt"]) < 1000 for a, b in zip(after, before, strict=True))
        r = mutate(second, op="robot.message", conversation="single")  # numbering continues after the replay
        assert r.json()["msgId"] not in {t["id"].split("/", 1)[1] for t in before}


def test_batch_send_and_pool_limits() -> None:
    e = make_emu(seed=13)
    e.state.hub.callback_delivered = lambda _mid: True
    r = e.mutate("robot.message", count=250, conversation="group")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sent"] == 250 and body["delivered"] == 250
    truth = e.truth("robot_message")
    assert len(truth) == 250 and len({t["id"] for t in truth}) == 250
    assert {t["msgtype"] for t in truth} <= {"text", "picture", "richText"}  # group rules hold in bulk
    assert e.mutate("robot.message", count=0).status_code == 400
    assert e.mutate("robot.message", count=10_001).status_code == 400
    assert e.mutate("robot.message", count=60).status_code == 400  # the demo pool holds 300 messages
