"""Acceptance: DingTalk's official Python SDKs, unmodified, talk to the emulator and get the truth back.

`alibabacloud_dingtalk` clients are pointed at the emulator with `Config(endpoint=..., protocol='http')`
(dingtalk-api.md §8.1); the `dingtalk-stream` client runs in a subprocess with
`DINGTALK_OPENAPI_ENDPOINT` set before import (§8.2).  Every test compares what the SDK *models* carry
with `/_emulator/truth`, so an emulator that drifts from the real wire format fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alibabacloud_dingtalk.calendar_1_0 import client as calendar_client
from alibabacloud_dingtalk.calendar_1_0 import models as calendar_models
from alibabacloud_dingtalk.contact_1_0 import client as contact_client
from alibabacloud_dingtalk.contact_1_0 import models as contact_models
from alibabacloud_dingtalk.oauth2_1_0 import client as oauth_client
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.storage_1_0 import client as storage_client
from alibabacloud_dingtalk.storage_1_0 import models as storage_models
from alibabacloud_dingtalk.workflow_1_0 import client as workflow_client
from alibabacloud_dingtalk.workflow_1_0 import models as workflow_models
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig
from dingtalk_emulator.stream import ROBOT_MESSAGE_TOPIC

pytestmark = pytest.mark.slow

DAY_MS = 86_400_000
RUNTIME = util_models.RuntimeOptions()


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(profile="demo", seed=1)) as emu:
        yield emu


@pytest.fixture(scope="module")
def org(emulator: RunningEmulator) -> dict[str, Any]:
    return httpx.get(emulator.base_url + "/_emulator/org").json()


def truth(emulator: RunningEmulator, kind: str) -> list[dict[str, Any]]:
    reply = httpx.get(emulator.base_url + "/_emulator/truth", params={"kind": kind}, timeout=60)
    assert reply.status_code == 200, f"truth kind {kind!r} not served: {reply.text[:200]}"
    return reply.json()["items"]


def sdk_config(emulator: RunningEmulator) -> open_api_models.Config:
    host_port = emulator.base_url.removeprefix("http://")
    return open_api_models.Config(protocol="http", region_id="central", endpoint=host_port)


@pytest.fixture(scope="module")
def token(emulator: RunningEmulator, org: dict[str, Any]) -> str:
    client = oauth_client.Client(sdk_config(emulator))
    resp = client.get_access_token(
        oauth_models.GetAccessTokenRequest(app_key=org["appKey"], app_secret=org["appSecret"])
    )
    return resp.body.access_token


def admin_unionid(emulator: RunningEmulator, org: dict[str, Any]) -> str:
    users = {u["id"]: u for u in truth(emulator, "user")}
    return users[org["adminUserId"]]["unionid"]


# ------------------------------------------------------------------------------------------- oauth2


def test_sdk_gets_an_access_token_and_the_same_one_again(emulator, org):
    client = oauth_client.Client(sdk_config(emulator))
    req = oauth_models.GetAccessTokenRequest(app_key=org["appKey"], app_secret=org["appSecret"])
    first, second = client.get_access_token(req), client.get_access_token(req)
    assert first.status_code == 200 and first.body.access_token and first.body.expire_in == 7200
    assert second.body.access_token == first.body.access_token  # same token while valid (§1.1)
    bad = oauth_models.GetAccessTokenRequest(app_key=org["appKey"], app_secret="wrong")
    with pytest.raises(Exception) as refused:  # the SDK raises TeaException subclasses on 4xx
        client.get_access_token(bad)
    assert getattr(refused.value, "code", None) == "invalidClientIdOrSecret"


# ---------------------------------------------------------------------------------------- approvals


def test_sdk_lists_approval_ids_and_reads_an_instance(emulator, token):
    now = int(time.time() * 1000)
    start, end = now - 100 * DAY_MS, now
    approvals = truth(emulator, "approval")
    recent = [a for a in approvals if start <= a["createTime"] <= end]
    assert recent, "the demo profile should have approvals in the last 100 days"
    code = max({a["processCode"] for a in recent}, key=lambda c: sum(a["processCode"] == c for a in recent))
    expected = {a["id"] for a in recent if a["processCode"] == code}

    client = workflow_client.Client(sdk_config(emulator))
    headers = workflow_models.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token)
    got: list[str] = []
    next_token = 0
    for _ in range(1000):
        req = workflow_models.ListProcessInstanceIdsRequest(
            process_code=code, start_time=start, end_time=end, next_token=next_token, max_results=20
        )
        resp = client.list_process_instance_ids_with_options(req, headers, RUNTIME)
        got.extend(resp.body.result.list)
        if not resp.body.result.next_token:
            break
        next_token = int(resp.body.result.next_token)  # a String in the response, a Long in the request
    assert len(got) == len(set(got)) and set(got) == expected

    one = next(a for a in recent if a["id"] == got[0])
    detail = client.get_process_instance_with_options(
        workflow_models.GetProcessInstanceRequest(process_instance_id=one["id"]),
        workflow_models.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    )
    result = detail.body.result
    assert result.title == one["title"] and result.status == one["status"]
    assert result.form_component_values, "an instance carries its form"


# ----------------------------------------------------------------------------------------- contacts


def test_sdk_lists_leave_records(emulator, token):
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=364)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    expected = {
        r["id"]
        for r in truth(emulator, "resigned_user")
        if start <= datetime.strptime(r["leaveTime"], fmt).replace(tzinfo=UTC) <= now
    }
    assert expected
    client = contact_client.Client(sdk_config(emulator))
    headers = contact_models.ListEmpLeaveRecordsHeaders(x_acs_dingtalk_access_token=token)
    got: dict[str, str] = {}
    next_token = "0"
    for _ in range(1000):
        req = contact_models.ListEmpLeaveRecordsRequest(
            start_time=start.strftime(fmt), end_time=now.strftime(fmt), next_token=next_token, max_results=5
        )
        body = client.list_emp_leave_records_with_options(req, headers, RUNTIME).body
        got.update({r.user_id: r.leave_time for r in body.records})
        if not body.next_token:
            break
        next_token = body.next_token
    assert set(got) == expected
    assert all(value.endswith("Z") for value in got.values())


# ------------------------------------------------------------------------------------------ storage


def test_sdk_lists_dentries_and_downloads_a_file(emulator, org, token):
    spaces = [
        s
        for s in truth(emulator, "drive_space")
        if s.get("spaceType") == "org" and s.get("origin") == "drive"
    ]
    assert spaces, "no org drive space in truth"
    files = truth(emulator, "file")
    union_id = admin_unionid(emulator, org)
    client = storage_client.Client(sdk_config(emulator))
    list_headers = storage_models.ListDentriesHeaders(x_acs_dingtalk_access_token=token)
    for space in spaces:
        space_id = str(space["id"])
        roots = {
            f["id"]: f
            for f in files
            if f["id"].startswith(f"{space_id}/") and str(f.get("parentId")) == "0" and not f.get("deleted")
        }
        if any(f["type"] == "FILE" for f in roots.values()):
            break
    else:
        pytest.fail("no org space has a file at its root")

    got = {}
    next_token = None
    for _ in range(1000):
        req = storage_models.ListDentriesRequest(
            parent_id="0", union_id=union_id, max_results=50, next_token=next_token
        )
        body = client.list_dentries_with_options(space_id, req, list_headers, RUNTIME).body
        got.update({f"{d.space_id}/{d.id}": d for d in body.dentries})
        if not body.next_token:
            break
        next_token = body.next_token
    assert set(got) == set(roots)
    for key, dentry in got.items():
        assert dentry.name == roots[key]["name"] and dentry.type == roots[key]["type"]

    key, item = next((k, f) for k, f in roots.items() if f["type"] == "FILE")
    dentry_id = key.split("/", 1)[1]
    info = client.get_file_download_info_with_options(
        space_id,
        dentry_id,
        storage_models.GetFileDownloadInfoRequest(
            union_id=union_id,
            option=storage_models.GetFileDownloadInfoRequestOption(version=None, prefer_intranet=False),
        ),
        storage_models.GetFileDownloadInfoHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    ).body
    assert info.protocol == "HEADER_SIGNATURE"
    signed = info.header_signature_info
    assert signed.resource_urls and signed.expiration_seconds > 0
    blob = httpx.get(signed.resource_urls[0], headers=signed.headers or {}, timeout=60)
    assert blob.status_code == 200
    assert hashlib.sha256(blob.content).hexdigest() == item["sha256"] and len(blob.content) == item["size"]


# ----------------------------------------------------------------------------------------- calendar


def test_sdk_lists_calendar_events(emulator, token):
    events = truth(emulator, "calendar_event")
    by_user: dict[str, dict[str, dict[str, Any]]] = {}
    for e in events:
        union_id, event_id = e["id"].split("/", 1)
        by_user.setdefault(union_id, {})[event_id] = e
    union_id = max(by_user, key=lambda u: len(by_user[u]))
    mine = by_user[union_id]
    now = datetime.now(UTC)
    client = calendar_client.Client(sdk_config(emulator))
    headers = calendar_models.ListEventsHeaders(x_acs_dingtalk_access_token=token)
    got = {}
    next_token = None
    for _ in range(1000):
        req = calendar_models.ListEventsRequest(
            time_min=(now - timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            time_max=(now + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            max_results=100,
            next_token=next_token,
        )
        body = client.list_events_with_options(union_id, "primary", req, headers, RUNTIME).body
        got.update({e.id: e for e in body.events or []})
        if not body.next_token:
            break
        next_token = body.next_token
    assert got, "the busiest user has events in the window"
    assert set(got) <= set(mine)  # truth holds every event; the window may exclude some
    for event_id, event in got.items():
        assert event.summary == mine[event_id]["summary"]


# ------------------------------------------------------------------------------------------- stream

STREAM_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    import dingtalk_stream
    from dingtalk_stream import AckMessage, ChatbotHandler, ChatbotMessage

    class Events(dingtalk_stream.EventHandler):
        async def process(self, event):
            print(json.dumps({"kind": "event", "eventType": event.headers.event_type,
                              "eventId": event.headers.event_id, "data": event.data}), flush=True)
            return AckMessage.STATUS_OK, "OK"

    class Robot(ChatbotHandler):
        async def process(self, callback):
            msg = ChatbotMessage.from_dict(callback.data)
            print(json.dumps({"kind": "robot", "msgId": msg.message_id, "conversationId": msg.conversation_id,
                              "text": msg.text.content if msg.text else None,
                              "senderStaffId": msg.sender_staff_id}), flush=True)
            return AckMessage.STATUS_OK, "OK"

    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(sys.argv[1], sys.argv[2]))
    client.register_all_event_handler(Events())
    client.register_callback_handler(ChatbotMessage.TOPIC, Robot())
    asyncio.run(client.start())
    """
)


def _die_with_parent() -> None:
    # The SDK reconnects forever; if pytest dies, the kernel stops the child too (Linux).
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class StreamClientProcess:
    """The official stream SDK in a child process; its handlers print one JSON line per message."""

    def __init__(self, base_url: str, app_key: str, app_secret: str) -> None:
        env = {**os.environ, "DINGTALK_OPENAPI_ENDPOINT": base_url}  # read at import time (§8.2)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", STREAM_CLIENT, app_key, app_secret],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            preexec_fn=_die_with_parent,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def next(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} message from the stream SDK within {timeout} s"
            item = self.lines.get(timeout=left)
            if item["kind"] == kind:
                return item

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def stream_client(emulator, org) -> Iterator[StreamClientProcess]:
    client = StreamClientProcess(emulator.base_url, org["appKey"], org["appSecret"])
    try:
        deadline = time.monotonic() + 20
        while httpx.get(emulator.base_url + "/_emulator/stream/stats").json()["connections"] < 1:
            assert client.proc.poll() is None, "the stream SDK process exited"
            assert time.monotonic() < deadline, "the stream SDK never connected"
            time.sleep(0.05)
        yield client
    finally:
        client.stop()


def test_stream_sdk_receives_an_event_caused_by_a_mutation(emulator, stream_client):
    reply = httpx.post(emulator.base_url + "/_emulator/mutate", json={"op": "user.join", "name": "測試員工"})
    assert reply.status_code == 200, reply.text
    userid = reply.json()["userid"]
    event = stream_client.next("event")
    assert event["eventType"] == "user_add_org" and event["data"]["userId"] == [userid]
    # The SDK ACKs by echoing the data without a `status`; the emulator must take that as done.
    deadline = time.monotonic() + 5
    while (stats := httpx.get(emulator.base_url + "/_emulator/stream/stats").json())["pending"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    assert stats["events_acked"] >= 1


def test_stream_sdk_chatbot_handler_receives_a_robot_message(emulator, org, stream_client):
    payload = {
        "conversationId": "cidSdkAcceptance==",
        "conversationType": "1",
        "msgId": "msgSdkAcceptance1",
        "msgtype": "text",
        "text": {"content": "你好，備份機器人"},
        "createAt": int(time.time() * 1000),
        "senderId": "$:LWCP_v1:$sdk",
        "senderStaffId": org["adminUserId"],
        "senderNick": "管理員",
        "senderCorpId": org["corpId"],
        "isAdmin": True,
        "chatbotCorpId": org["corpId"],
        "chatbotUserId": "$:LWCP_v1:$bot",
        "robotCode": org["robotCode"],
        "sessionWebhook": emulator.base_url + "/robot/sendBySession?session=x",
        "sessionWebhookExpiredTime": int(time.time() * 1000) + 3_600_000,
    }
    message_id = emulator.state.hub.publish_callback(ROBOT_MESSAGE_TOPIC, payload)
    got = stream_client.next("robot")
    assert got == {
        "kind": "robot",
        "msgId": "msgSdkAcceptance1",
        "conversationId": "cidSdkAcceptance==",
        "text": "你好，備份機器人",
        "senderStaffId": org["adminUserId"],
    }
    assert emulator.state.hub.callback_delivered(message_id)


def test_stream_sdk_receives_robot_messages_from_the_robot_family(emulator, stream_client):
    reply = httpx.post(
        emulator.base_url + "/_emulator/mutate", json={"op": "robot.message", "msgtype": "text"}
    )
    assert reply.status_code == 200, reply.text
    sent = reply.json()
    assert sent["delivered"] is True  # a connection subscribed to the robot topic was open
    got = stream_client.next("robot")
    assert got["msgId"] == sent["msgId"] and got["conversationId"] == sent["conversationId"]
    ids = {m["id"] for m in truth(emulator, "robot_message")}
    assert f"{sent['conversationId']}/{sent['msgId']}" in ids


def test_stream_sdk_reconnects_after_disconnect_and_gets_queued_events(emulator, stream_client):
    base = emulator.base_url

    def stats() -> dict[str, Any]:
        return httpx.get(base + "/_emulator/stream/stats").json()

    opened = stats()["connections_opened"]
    # The dropped connection gets nothing more, so this event can only arrive on the SDK's new one.
    assert httpx.post(base + "/_emulator/stream/drop", json={"reason": "server restart"}).status_code == 200
    reply = httpx.post(base + "/_emulator/mutate", json={"op": "dept.create", "name": "重連測試組"})
    assert reply.status_code == 200, reply.text
    dept_id = reply.json()["dept_id"]
    event = stream_client.next("event")
    while event["eventType"] != "org_dept_create":  # skip anything left from earlier tests
        event = stream_client.next("event")
    assert event["data"]["deptId"] == [dept_id]
    deadline = time.monotonic() + 10
    while not (stats()["connections_opened"] > opened and stats()["connections"] >= 1):
        assert time.monotonic() < deadline, stats()
        time.sleep(0.05)
