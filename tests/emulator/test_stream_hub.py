"""Stream mode wire protocol (dingtalk-api.md §7.2), spoken to a real uvicorn server over a real socket."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from dingtalk_emulator.stream import ROBOT_MESSAGE_TOPIC, StreamHub

APP_KEY, APP_SECRET = "dingtestkey", "test-secret"
EVENT_SUB = {"type": "EVENT", "topic": "*"}
ROBOT_SUB = {"type": "CALLBACK", "topic": ROBOT_MESSAGE_TOPIC}


@contextmanager
def serve(hub: StreamHub) -> Iterator[str]:
    """Serve the hub's routes with uvicorn on a free loopback port; yields the base URL."""
    config = uvicorn.Config(
        Starlette(routes=hub.routes()), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_hub(**kw) -> StreamHub:
    opts = {"ack_timeout": 0.3, "ping_interval": None, "disconnect_grace": 0.3, "seed": 7}
    opts.update(kw)
    return StreamHub(
        app_key=APP_KEY, app_secret=APP_SECRET, corp_id="dingcorp1", unified_app_id="uapp-1", **opts
    )


def open_ticket(base: str, subs=(EVENT_SUB,), secret: str = APP_SECRET) -> httpx.Response:
    body = {
        "clientId": APP_KEY,
        "clientSecret": secret,
        "subscriptions": list(subs),
        "ua": "test",
        "localIp": "127.0.0.1",
    }
    return httpx.post(base + "/v1.0/gateway/connections/open", json=body)


def ws_connect(base: str, subs=(EVENT_SUB,)) -> ClientConnection:
    reply = open_ticket(base, subs)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return connect(f"{body['endpoint']}?ticket={body['ticket']}")


def recv_frame(ws: ClientConnection, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def ack(ws: ClientConnection, frame: dict, data: dict | None = None, code: int = 200) -> None:
    payload = json.loads(frame["data"]) if data is None else data  # SDK 0.24.3 echoes the event data
    ws.send(
        json.dumps(
            {
                "code": code,
                "headers": {"messageId": frame["headers"]["messageId"], "contentType": "application/json"},
                "message": "OK",
                "data": json.dumps(payload),
            }
        )
    )


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def assert_silent(ws: ClientConnection, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=seconds)


def test_bad_secret_is_401_auth_failed():
    hub = make_hub()
    with serve(hub) as base:
        reply = open_ticket(base, secret="wrong")
    assert reply.status_code == 401
    body = reply.json()
    assert body["code"] == "authFailed" and body["message"] == "鉴权失败" and body["requestid"]
    assert hub.stats()["auth_failed"] == 1


@pytest.mark.parametrize(
    "subs",
    [
        [{"type": "EVENTS", "topic": "*"}],
        [{"type": "CALLBACK"}],
        [{"type": "EVENT", "topic": "user_add_org"}],
        "x",
    ],
)
def test_malformed_subscriptions_are_rejected(subs):
    with serve(make_hub()) as base:
        body = {"clientId": APP_KEY, "clientSecret": APP_SECRET, "subscriptions": subs}
        reply = httpx.post(base + "/v1.0/gateway/connections/open", json=body)
    assert reply.status_code == 400 and reply.json()["code"] == "invalidParameter"


def test_endpoint_points_back_at_the_server_and_ticket_is_single_use():
    with serve(make_hub()) as base:
        body = open_ticket(base).json()
        assert body["endpoint"] == base.replace("http://", "ws://") + "/connect"
        url = f"{body['endpoint']}?ticket={body['ticket']}"
        with connect(url):
            with pytest.raises(InvalidStatus) as refused:
                connect(url)
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            connect(body["endpoint"])  # no ticket at all


def test_ticket_expires():
    hub = make_hub(ticket_ttl=0.2)
    with serve(hub) as base:
        body = open_ticket(base).json()
        time.sleep(0.3)
        with pytest.raises(InvalidStatus):
            connect(f"{body['endpoint']}?ticket={body['ticket']}")
    assert hub.stats()["tickets_rejected"] == 1


def test_event_frame_shape_and_ack_without_status():
    hub = make_hub()
    with serve(hub) as base, ws_connect(base) as ws:
        event_id = hub.publish_event("user_add_org", {"timeStamp": "1685501863357", "userId": ["u1"]})
        frame = recv_frame(ws)
        assert frame["type"] == "EVENT" and frame["specVersion"] == "1.0"
        h = frame["headers"]
        assert h["topic"] == "*" and h["contentType"] == "application/json"
        assert h["eventType"] == "user_add_org" and h["eventId"] == event_id
        assert h["eventCorpId"] == "dingcorp1" and h["eventUnifiedAppId"] == "uapp-1"
        for key in ("time", "eventBornTime", "messageId"):
            assert isinstance(h[key], str) and h[key]
        assert h["time"].isdigit()
        assert isinstance(frame["data"], str)  # a JSON *string*, not an object
        assert json.loads(frame["data"]) == {"timeStamp": "1685501863357", "userId": ["u1"]}
        ack(ws, frame)  # no "status" key: what SDK 0.24.3 sends
        wait_for(lambda: hub.stats()["events_acked"] == 1)
        assert_silent(ws, 0.8)  # ACKed: never re-pushed
    assert hub.stats()["pending"] == 0


def test_ack_with_status_success():
    hub = make_hub()
    with serve(hub) as base, ws_connect(base) as ws:
        hub.publish_event("org_dept_create", {"deptId": [5]})
        ack(ws, recv_frame(ws), {"status": "SUCCESS", "message": "success"})
        wait_for(lambda: hub.stats()["pending"] == 0)
        assert_silent(ws, 0.8)


def test_unacked_event_is_pushed_again_with_same_ids():
    hub = make_hub()
    with serve(hub) as base, ws_connect(base) as ws:
        started = time.monotonic()
        hub.publish_event("user_leave_org", {"userId": ["u9"]})
        first = recv_frame(ws)
        again = recv_frame(ws)
        assert time.monotonic() - started >= 0.3  # waited for the ACK timeout
        assert again["headers"]["messageId"] == first["headers"]["messageId"]
        assert again["headers"]["eventId"] == first["headers"]["eventId"]
        ack(ws, again)
        wait_for(lambda: hub.stats()["pending"] == 0)
    s = hub.stats()
    assert s["events_redelivered"] >= 1 and s["delivered"] >= 2 and s["events_acked"] == 1


@pytest.mark.parametrize("reply", [{"status": "LATER"}, None])
def test_later_or_failure_code_asks_for_a_repush(reply):
    hub = make_hub()
    with serve(hub) as base, ws_connect(base) as ws:
        hub.publish_event("bpms_instance_change", {"processInstanceId": "p1", "type": "start"})
        first = recv_frame(ws)
        if reply is None:
            ack(ws, first, {"message": "boom"}, code=500)
        else:
            ack(ws, first, reply)
        again = recv_frame(ws)
        assert again["headers"]["messageId"] == first["headers"]["messageId"]
        ack(ws, again, {"status": "SUCCESS"})
        wait_for(lambda: hub.stats()["pending"] == 0)
    assert hub.stats()["events_later"] == 1


def test_events_published_while_disconnected_are_queued_then_delivered():
    hub = make_hub()
    with serve(hub) as base:
        ids = [hub.publish_event("user_modify_org", {"userId": [f"u{i}"]}) for i in range(3)]
        assert hub.stats()["queued"] == 3 and hub.stats()["delivered"] == 0
        with ws_connect(base) as ws:
            got = [recv_frame(ws) for _ in range(3)]
            assert sorted(f["headers"]["eventId"] for f in got) == sorted(ids)
            for f in got:
                ack(ws, f)
            wait_for(lambda: hub.stats()["pending"] == 0)


def test_subscriptions_are_honoured():
    hub = make_hub()
    with serve(hub) as base, ws_connect(base, subs=(ROBOT_SUB,)) as robot_only:
        hub.publish_event("user_add_org", {"userId": ["u1"]})
        assert_silent(robot_only, 0.5)  # no EVENT subscription: the event waits
        assert hub.stats()["queued"] == 1
        hub.publish_callback(ROBOT_MESSAGE_TOPIC, {"msgId": "m1", "msgtype": "text"})
        assert recv_frame(robot_only)["type"] == "CALLBACK"
        with ws_connect(base, subs=(EVENT_SUB,)) as events_only:
            event = recv_frame(events_only)
            assert event["headers"]["eventType"] == "user_add_org"
            ack(events_only, event)  # so no re-push can arrive during the silence check below
            wait_for(lambda: hub.stats()["pending"] == 0)
            mid = hub.publish_callback(ROBOT_MESSAGE_TOPIC, {"msgId": "m2"})
            assert_silent(events_only, 0.3)  # no CALLBACK subscription
            assert recv_frame(robot_only)["headers"]["messageId"] == mid


def test_callback_frame_is_fire_and_forget():
    hub = make_hub()
    with serve(hub) as base:
        lost = hub.publish_callback(ROBOT_MESSAGE_TOPIC, {"msgId": "lost"})
        assert hub.callback_delivered(lost) is False
        with ws_connect(base, subs=(ROBOT_SUB,)) as ws:
            assert_silent(ws, 0.5)  # not queued, not re-sent
            mid = hub.publish_callback(ROBOT_MESSAGE_TOPIC, {"msgId": "m1", "text": {"content": "你好"}})
            frame = recv_frame(ws)
            assert frame["type"] == "CALLBACK"
            h = frame["headers"]
            assert h["topic"] == ROBOT_MESSAGE_TOPIC and h["messageId"] == mid and h["appId"] == "uapp-1"
            assert isinstance(h["time"], str) and h["contentType"] == "application/json"
            assert json.loads(frame["data"]) == {"msgId": "m1", "text": {"content": "你好"}}
            assert_silent(ws, 1.0)  # never ACKed, still not re-pushed
    assert hub.callback_delivered(mid) is True
    s = hub.stats()
    assert s["callbacks_dropped"] == 1 and s["callbacks_delivered"] == 1


def test_ping_carries_opaque_and_echo_is_counted():
    hub = make_hub(ping_interval=0.1)
    with serve(hub) as base, ws_connect(base) as ws:
        frame = recv_frame(ws)
        assert frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "ping"
        opaque = json.loads(frame["data"])["opaque"]
        assert opaque
        ack(ws, frame)  # the SDK echoes {"opaque": ...}
        wait_for(lambda: hub.stats()["pings_acked"] >= 1)


def test_disconnect_then_server_closes_and_unacked_event_moves_on():
    hub = make_hub(ack_timeout=0.5, disconnect_grace=0.3)
    with serve(hub) as base:
        with ws_connect(base) as ws:
            hub.publish_event("chat_disband", {"openConversationId": "cid1"})
            event = recv_frame(ws)  # received but never ACKed
            started = time.monotonic()  # the grace period cannot end before this + 0.3 s
            hub.drop_connections("connection is expired")
            frame = recv_frame(ws)
            assert frame["type"] == "SYSTEM" and frame["headers"]["topic"] == "disconnect"
            assert json.loads(frame["data"]) == {"reason": "connection is expired"}
            with pytest.raises(ConnectionClosed):  # the client stays silent: the server closes
                ws.recv(timeout=3)
            assert time.monotonic() - started >= 0.3
        with ws_connect(base) as ws2:
            again = recv_frame(ws2)
            assert again["headers"]["eventId"] == event["headers"]["eventId"]
            ack(ws2, again)
            wait_for(lambda: hub.stats()["pending"] == 0)


def test_client_may_close_first_after_disconnect():
    hub = make_hub(disconnect_grace=5)
    with serve(hub) as base:
        with ws_connect(base) as ws:
            hub.drop_connections("bye")
            assert recv_frame(ws)["headers"]["topic"] == "disconnect"
        wait_for(lambda: hub.stats()["connections_open"] == 0, timeout=4)  # before the 5 s grace


def test_every_new_connection_dropped_via_control_route():
    hub = make_hub(disconnect_grace=2)
    with serve(hub) as base:
        reply = httpx.post(
            base + "/_emulator/stream/drop", json={"reason": "server restart", "new_connections": "all"}
        )
        assert reply.status_code == 200 and reply.json()["drop_new_connections"] == "all"
        for _ in range(3):  # a reconnect loop keeps getting dropped
            with ws_connect(base) as ws:
                frame = recv_frame(ws)
                assert frame["headers"]["topic"] == "disconnect"
                assert json.loads(frame["data"])["reason"] == "server restart"
        assert httpx.post(base + "/_emulator/stream/drop", json={"new_connections": 0}).status_code == 200
        hub.publish_event("user_add_org", {"userId": ["u1"]})
        with ws_connect(base) as ws:
            assert recv_frame(ws)["type"] == "EVENT"
        stats = httpx.get(base + "/_emulator/stream/stats").json()
    assert stats["connections_opened"] == 4 and stats["connections_dropped"] == 3


def test_drop_next_n_connections_only():
    hub = make_hub(disconnect_grace=2)
    hub.drop_new_connections(1)
    with serve(hub) as base:
        with ws_connect(base) as ws:
            assert recv_frame(ws)["headers"]["topic"] == "disconnect"
        with ws_connect(base) as ws:
            hub.publish_event("user_add_org", {"userId": ["u1"]})
            assert recv_frame(ws)["type"] == "EVENT"


@pytest.mark.parametrize(
    "body", ['{"new_connections": -1}', '{"new_connections": "some"}', "[1]", "{bad", '{"reason": 5}']
)
def test_drop_control_rejects_bad_input(body):
    with serve(make_hub()) as base:
        reply = httpx.post(base + "/_emulator/stream/drop", content=body)
    assert reply.status_code == 400 and "error" in reply.json()


def test_each_event_goes_to_exactly_one_of_several_connections():
    hub = make_hub(ack_timeout=5)
    with serve(hub) as base, ws_connect(base) as a, ws_connect(base) as b:
        wait_for(lambda: hub.stats()["connections"] == 2)  # both registered before publishing
        ids = {hub.publish_event("todo_task_create", {"taskId": str(i)}) for i in range(30)}
        seen: dict[str, list[str]] = {"a": [], "b": []}
        for name, ws in (("a", a), ("b", b)):
            while True:
                try:
                    frame = recv_frame(ws, timeout=0.5)
                except TimeoutError:
                    break
                seen[name].append(frame["headers"]["eventId"])
                ack(ws, frame)
        assert seen["a"] and seen["b"]  # spread across connections
        assert sorted(seen["a"] + seen["b"]) == sorted(ids)  # each exactly once
        wait_for(lambda: hub.stats()["pending"] == 0)


def test_garbage_from_client_is_counted_not_fatal():
    hub = make_hub()
    with serve(hub) as base, ws_connect(base) as ws:
        ws.send("not json")
        ws.send(json.dumps({"code": 200}))
        hub.publish_event("user_add_org", {"userId": ["u1"]})
        ack(ws, recv_frame(ws))
        wait_for(lambda: hub.stats()["events_acked"] == 1)
    assert hub.stats()["bad_frames"] == 2
