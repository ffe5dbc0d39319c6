"""Robot messages pushed over Stream become items whose media download to the emulator's bytes.

The test plays the service's listener at the wire level (§7.2): open a connection with the app's
credentials, receive the CALLBACK frame, ACK it; then the connector turns the payload into an item
and fetches its media by downloadCode.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import websockets

from dingtalk_emulator.server import serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import RobotCollector
from dingvault.source.collectors.robot import robot_message_item

from .emulator_support import client_for, run, truth

TOPIC = "/v1.0/im/bot/messages/get"


async def test_robot_messages_and_media_from_stream_callbacks() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    try:
        org = emu.state.org
        async with httpx.AsyncClient(base_url=emu.base_url) as http:
            opened = (
                await http.post(
                    "/v1.0/gateway/connections/open",
                    json={
                        "clientId": org.app_key,
                        "clientSecret": org.app_secret,
                        "subscriptions": [{"type": "CALLBACK", "topic": TOPIC}],
                        "ua": "dingvault-test",
                        "localIp": "127.0.0.1",
                    },
                )
            ).json()
        url = f"{opened['endpoint']}?ticket={opened['ticket']}"
        payloads: list[dict] = []
        async with websockets.connect(url) as ws:
            for msgtype in ("picture", "file", "text"):
                await asyncio.to_thread(
                    httpx.post,
                    f"{emu.base_url}/_emulator/mutate",
                    json={"op": "robot.message", "conversation": "single", "msgtype": msgtype},
                )
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    headers = frame.get("headers", {})
                    if frame.get("type") == "CALLBACK" and headers.get("topic") == TOPIC:
                        payloads.append(json.loads(frame["data"]))
                        ack = {
                            "code": 200,
                            "headers": {"messageId": headers["messageId"], "contentType": "application/json"},
                            "message": "OK",
                            "data": json.dumps({"response": None}),
                        }
                        await ws.send(json.dumps(ack))
                        break
        expected = {t["id"]: t for t in truth(emu, "robot_message")}
        async with client_for(emu) as client:
            collector = RobotCollector(client)
            assert not (await run([collector])).items  # nothing to back-fill
            for payload in payloads:
                item = collector.message_item(payload)
                assert item.source_id in expected
                assert item.raw["message"] == payload
                if payload["msgtype"] == "text":
                    assert not item.attachments
                    continue
                assert len(item.attachments) == 1
                blob = b"".join([c async for c in collector.open_attachment(item.attachments[0])])
                assert hashlib.sha256(blob).hexdigest() == expected[item.source_id]["sha256"]
    finally:
        emu.stop()
    assert [p["msgtype"] for p in payloads] == ["picture", "file", "text"]


def test_robot_item_rejects_a_payload_without_identity() -> None:
    import pytest

    from dingvault.source.errors import BadResponse

    with pytest.raises(BadResponse):
        robot_message_item({"msgtype": "text", "text": {"content": "hi"}}, "ding-robot")
