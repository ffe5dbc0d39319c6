"""Stream mode (dingtalk-api.md §7.2): connection registration and the WebSocket hub.

Interface (stable; the rest of the emulator codes against it):

    hub = StreamHub(app_key=..., app_secret=..., corp_id=..., unified_app_id=...)
    hub.routes()                      -> Starlette routes: POST /v1.0/gateway/connections/open, WS /connect,
                                         POST /_emulator/stream/drop, GET /_emulator/stream/stats
    hub.publish_event(event_type, data: dict) -> eventId    (EVENT frame, re-pushed until ACKed)
    hub.publish_callback(topic, data: dict)   -> messageId  (CALLBACK frame, fire-and-forget)
    hub.drop_connections(reason)      -> sends SYSTEM/disconnect to every open connection
    hub.drop_new_connections(count)   -> the next `count` connections (None = all, 0 = stop) get a
                                         `disconnect` right after they open (exercises reconnect loops)
    hub.stats()                       -> dict (connections, pending un-ACKed, delivered, ...)

Protocol as the real gateway speaks it (§7.2): the open call returns `{endpoint, ticket}`; the ticket is
valid 90 s and for one WebSocket only.  Server frames are JSON text with `data` a JSON *string*.  EVENTs
go to one randomly chosen open connection that subscribed `EVENT *` and are re-pushed until ACKed with
`code: 200` (with `status: SUCCESS`, or without `status`, which is what SDK 0.24.3 sends); `status:
LATER` or a non-200 code asks for a later re-push.  Events published while no subscribed connection is
open wait in the queue.  CALLBACKs (robot messages) are fire-and-forget: sent once to one subscribed
connection, or dropped when there is none.

Thread model: the WebSocket handlers run on the server's event loop; `publish_*` may be called from any
thread (Starlette runs sync endpoints in a worker thread), so shared state sits behind one lock and
frames reach a connection through its own asyncio queue via `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

OPEN_CONNECTION_PATH = "/v1.0/gateway/connections/open"
CONNECT_PATH = "/connect"
ROBOT_MESSAGE_TOPIC = "/v1.0/im/bot/messages/get"

_SUBSCRIPTION_TYPES = {"EVENT", "CALLBACK"}


@dataclass
class _Disconnect:
    """Outbox marker: send SYSTEM/disconnect, then close after the grace period."""

    reason: str


@dataclass
class _Connection:
    id: str
    wants_events: bool
    callback_topics: frozenset[str]
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[str | _Disconnect | None]
    closing: bool = False

    def push(self, item: str | _Disconnect | None) -> bool:
        """Hand a frame to the connection's sender task from any thread; False if its loop is gone."""
        try:
            self.loop.call_soon_threadsafe(self.outbox.put_nowait, item)
        except RuntimeError:  # loop closed: the connection is dead, its events will be re-pushed
            self.closing = True
            return False
        return True


@dataclass
class _PendingEvent:
    message_id: str
    event_id: str
    frame: str
    due: float = 0.0  # monotonic time at which it is (re-)pushed; 0 = as soon as a connection exists
    connection_id: str | None = None
    attempts: int = 0


@dataclass
class _Counters:
    tickets_issued: int = 0
    auth_failed: int = 0
    tickets_rejected: int = 0
    connections_opened: int = 0
    connections_dropped: int = 0
    events_published: int = 0
    events_delivered: int = 0  # every push, first or repeated
    events_redelivered: int = 0
    events_acked: int = 0
    events_later: int = 0  # ACKed with status LATER or a non-200 code
    events_expired: int = 0  # gave up (max_attempts) or evicted (max_pending)
    callbacks_published: int = 0
    callbacks_delivered: int = 0
    callbacks_dropped: int = 0  # no connection subscribed to the topic
    callbacks_acked: int = 0
    pings_sent: int = 0
    pings_acked: int = 0
    bad_frames: int = 0


def _error(status: int, code: str, message: str) -> JSONResponse:
    # New-API error envelope (§0.1): lowercase `requestid`.
    return JSONResponse(
        {"requestid": str(uuid.uuid4()).upper(), "code": code, "message": message}, status_code=status
    )


class StreamHub:
    """The app's Stream gateway: tickets, open WebSockets, the un-ACKed event queue."""

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        corp_id: str,
        unified_app_id: str,
        ack_timeout: float = 5.0,
        ticket_ttl: float = 90.0,
        ping_interval: float | None = 30.0,
        disconnect_grace: float = 10.0,
        max_attempts: int | None = None,
        max_pending: int = 100_000,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.corp_id = corp_id
        self.unified_app_id = unified_app_id
        # How long an EVENT waits for its ACK before it is pushed again (seconds).
        self.ack_timeout = ack_timeout
        self.ticket_ttl = ticket_ttl
        # The gateway's keep-alive: SYSTEM/ping with an `opaque` the client echoes.  The real interval
        # is not documented (uncertain); None disables pings.
        self.ping_interval = ping_interval
        self.disconnect_grace = disconnect_grace
        self.max_attempts = max_attempts
        self.max_pending = max_pending
        # Wall clock for the `time`/`eventBornTime` headers: pass the emulator's clock so frames agree
        # with the data's own timestamps when a test moves time forward.  Timeouts use monotonic time.
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[float, bool, frozenset[str]]] = {}
        self._connections: dict[str, _Connection] = {}
        self._pending: OrderedDict[str, _PendingEvent] = OrderedDict()
        self._callbacks_sent: OrderedDict[str, bool] = OrderedDict()  # messageId -> delivered
        self._pings: dict[str, str] = {}  # messageId -> opaque, awaiting the echo
        self._drop_new: int | None = 0  # None = drop every new connection
        self._drop_reason = "connection is expired"
        self._seq = 0
        self._c = _Counters()

    # ------------------------------------------------------------------ public interface

    def routes(self) -> list[BaseRoute]:
        return [
            Route(OPEN_CONNECTION_PATH, self._open_connection, methods=["POST"]),
            WebSocketRoute(CONNECT_PATH, self._websocket),
            Route("/_emulator/stream/drop", self._control_drop, methods=["POST"]),
            Route("/_emulator/stream/stats", self._control_stats, methods=["GET"]),
        ]

    def publish_event(self, event_type: str, data: dict[str, Any]) -> str:
        now_ms = int(self._clock() * 1000)
        event_id = uuid.uuid4().hex
        message_id = self._message_id(now_ms)
        frame = {
            "specVersion": "1.0",
            "type": "EVENT",
            "headers": {
                "topic": "*",
                "messageId": message_id,
                "contentType": "application/json",
                "time": str(now_ms),
                "eventType": event_type,
                "eventId": event_id,
                "eventCorpId": self.corp_id,
                "eventBornTime": str(now_ms),
                "eventUnifiedAppId": self.unified_app_id,
            },
            "data": json.dumps(data, ensure_ascii=False),
        }
        text = json.dumps(frame, ensure_ascii=False)
        with self._lock:
            self._c.events_published += 1
            self._pending[message_id] = _PendingEvent(message_id, event_id, text)
            while len(self._pending) > self.max_pending:
                # Bounded memory beats an unbounded queue nobody drains; the loss is counted.
                self._pending.popitem(last=False)
                self._c.events_expired += 1
        self._dispatch_due()
        return event_id

    def publish_callback(self, topic: str, data: dict[str, Any]) -> str:
        now_ms = int(self._clock() * 1000)
        message_id = self._message_id(now_ms)
        frame = {
            "specVersion": "1.0",
            "type": "CALLBACK",
            "headers": {
                "appId": self.unified_app_id,
                "contentType": "application/json",
                "messageId": message_id,
                "time": str(now_ms),
                "topic": topic,
            },
            "data": json.dumps(data, ensure_ascii=False),
        }
        text = json.dumps(frame, ensure_ascii=False)
        with self._lock:
            self._c.callbacks_published += 1
            targets = [c for c in self._connections.values() if not c.closing and topic in c.callback_topics]
            target = self._rng.choice(targets) if targets else None
        delivered = target is not None and target.push(text)
        with self._lock:
            if delivered:
                self._c.callbacks_delivered += 1
            else:
                self._c.callbacks_dropped += 1
            self._callbacks_sent[message_id] = delivered
            while len(self._callbacks_sent) > 10_000:
                self._callbacks_sent.popitem(last=False)
        return message_id

    def callback_delivered(self, message_id: str) -> bool:
        """Whether a CALLBACK was handed to a connection (False: nobody listened; it is lost)."""
        with self._lock:
            return self._callbacks_sent.get(message_id, False)

    def drop_connections(self, reason: str = "connection is expired") -> None:
        with self._lock:
            victims = [c for c in self._connections.values() if not c.closing]
            for conn in victims:
                conn.closing = True
            self._c.connections_dropped += len(victims)
        for conn in victims:
            conn.push(_Disconnect(reason))

    def drop_new_connections(self, count: int | None = None, reason: str = "connection is expired") -> None:
        """Drop the next `count` connections right after they open (None = every one, 0 = stop)."""
        with self._lock:
            self._drop_new = count
            self._drop_reason = reason

    def stats(self) -> dict[str, Any]:
        with self._lock:
            c = self._c
            in_flight = sum(1 for p in self._pending.values() if p.connection_id is not None)
            return {
                "connections": sum(1 for x in self._connections.values() if not x.closing),
                "connections_open": len(self._connections),
                "connections_opened": c.connections_opened,
                "connections_dropped": c.connections_dropped,
                "tickets_issued": c.tickets_issued,
                "tickets_rejected": c.tickets_rejected,
                "auth_failed": c.auth_failed,
                "pending": len(self._pending),
                "pending_unacked": in_flight,
                "queued": len(self._pending) - in_flight,
                "delivered": c.events_delivered,
                "events_published": c.events_published,
                "events_redelivered": c.events_redelivered,
                "events_acked": c.events_acked,
                "events_later": c.events_later,
                "events_expired": c.events_expired,
                "callbacks_published": c.callbacks_published,
                "callbacks_delivered": c.callbacks_delivered,
                "callbacks_dropped": c.callbacks_dropped,
                "callbacks_acked": c.callbacks_acked,
                "pings_sent": c.pings_sent,
                "pings_acked": c.pings_acked,
                "bad_frames": c.bad_frames,
            }

    # ------------------------------------------------------------------ HTTP: register a connection

    async def _open_connection(self, request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalidParameter", "body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "invalidParameter", "body must be a JSON object")
        if body.get("clientId") != self.app_key or body.get("clientSecret") != self.app_secret:
            with self._lock:
                self._c.auth_failed += 1
            # The real 401 body, seen in the wild (§0.1).
            return _error(401, "authFailed", "鉴权失败")
        subs = body.get("subscriptions", [])
        if not isinstance(subs, list):
            return _error(400, "invalidParameter", "subscriptions must be a list")
        wants_events = False
        topics: set[str] = set()
        for sub in subs:
            # Validation strictness of the real gateway is not documented (uncertain); be strict so a
            # client that sends a malformed subscription finds out here rather than by missing events.
            if not isinstance(sub, dict) or sub.get("type") not in _SUBSCRIPTION_TYPES:
                return _error(
                    400, "invalidParameter", f"bad subscription {sub!r}: type must be EVENT or CALLBACK"
                )
            topic = sub.get("topic")
            if not isinstance(topic, str) or not topic:
                return _error(400, "invalidParameter", f"bad subscription {sub!r}: topic is required")
            if sub["type"] == "EVENT":
                if topic != "*":  # §7.1: over Stream only `EVENT *` exists
                    return _error(400, "invalidParameter", "EVENT subscriptions take topic '*' only")
                wants_events = True
            else:
                topics.add(topic)
        ticket = str(uuid.uuid4())
        now = time.monotonic()
        with self._lock:
            self._tickets = {t: v for t, v in self._tickets.items() if v[0] > now}
            self._tickets[ticket] = (now + self.ticket_ttl, wants_events, frozenset(topics))
            self._c.tickets_issued += 1
        scheme = "wss" if request.url.scheme == "https" else "ws"
        return JSONResponse({"endpoint": f"{scheme}://{request.url.netloc}{CONNECT_PATH}", "ticket": ticket})

    def _redeem(self, ticket: str | None) -> tuple[bool, frozenset[str]] | None:
        with self._lock:
            entry = self._tickets.pop(ticket, None) if ticket else None  # single use
            if entry is None or entry[0] <= time.monotonic():
                self._c.tickets_rejected += 1
                return None
            return entry[1], entry[2]

    # ------------------------------------------------------------------ WebSocket

    async def _websocket(self, websocket: WebSocket) -> None:
        granted = self._redeem(websocket.query_params.get("ticket"))
        if granted is None:
            # Closing before accept makes the server refuse the handshake (HTTP 403).
            await websocket.close(code=1008)
            return
        conn = _Connection(
            id=uuid.uuid4().hex,
            wants_events=granted[0],
            callback_topics=granted[1],
            loop=asyncio.get_running_loop(),
            outbox=asyncio.Queue(),
        )
        # Registered before the handshake completes: a client that sees itself connected is already a
        # delivery target (frames wait in the outbox until the sender task starts).
        with self._lock:
            self._connections[conn.id] = conn
            self._c.connections_opened += 1
            drop = self._drop_new is None or self._drop_new > 0
            if drop:
                conn.closing = True
                self._c.connections_dropped += 1
                if self._drop_new is not None:
                    self._drop_new -= 1
            reason = self._drop_reason
        tasks: list[asyncio.Task[None]] = []
        try:
            await websocket.accept()
            tasks.append(asyncio.create_task(self._sender(websocket, conn)))
            tasks.append(asyncio.create_task(self._ticker(conn)))
            if drop:
                conn.push(_Disconnect(reason))
            else:
                self._dispatch_due()  # queued events go out on the first connection
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
                self._on_client_frame(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the socket went away under us (e.g. closed after `disconnect`)
        finally:
            with self._lock:
                self._connections.pop(conn.id, None)
            for task in tasks:
                task.cancel()
            # Un-ACKed events that went to this connection are re-pushed when their ACK timeout passes.

    async def _sender(self, websocket: WebSocket, conn: _Connection) -> None:
        try:
            while True:
                item = await conn.outbox.get()
                if item is None:
                    return
                if isinstance(item, _Disconnect):
                    await websocket.send_text(self._system_frame("disconnect", {"reason": item.reason}))
                    # §7.2: the server closes ~10 s after `disconnect` unless the client closes first
                    # (the receive loop then ends and cancels this task).
                    await asyncio.sleep(self.disconnect_grace)
                    await websocket.close(code=1000)
                    return
                await websocket.send_text(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a dead socket: the receive loop will notice and clean up
            log.debug("stream sender for %s stopped: %s", conn.id, exc)

    async def _ticker(self, conn: _Connection) -> None:
        tick = max(0.01, min(self.ack_timeout / 4, 0.5))
        next_ping = time.monotonic() + (self.ping_interval or 0)
        while True:
            await asyncio.sleep(tick)
            self._dispatch_due()
            if self.ping_interval and not conn.closing and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + self.ping_interval
                opaque = secrets.token_hex(8)
                message_id = self._message_id(int(self._clock() * 1000))
                with self._lock:
                    self._pings[message_id] = opaque
                    if len(self._pings) > 1000:
                        self._pings.pop(next(iter(self._pings)))
                    self._c.pings_sent += 1
                conn.push(self._system_frame("ping", {"opaque": opaque}, message_id))

    def _on_client_frame(self, text: str) -> None:
        try:
            frame = json.loads(text)
            message_id = frame["headers"]["messageId"]
            code = int(frame.get("code", 200))
        except (ValueError, KeyError, TypeError):
            with self._lock:
                self._c.bad_frames += 1
            return
        status = None
        raw = frame.get("data")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        if isinstance(raw, dict):
            status = raw.get("status")
        with self._lock:
            event = self._pending.get(message_id)
            if event is not None:
                if code == 200 and status in (None, "SUCCESS"):
                    del self._pending[message_id]
                    self._c.events_acked += 1
                else:
                    # LATER (or a failure code): push again after the ACK timeout.
                    event.due = time.monotonic() + self.ack_timeout
                    self._c.events_later += 1
            elif self._pings.pop(message_id, None) is not None:
                self._c.pings_acked += 1
            elif message_id in self._callbacks_sent:
                self._c.callbacks_acked += 1
            # Anything else (an ACK of a disconnect, a duplicate ACK) needs no action.

    # ------------------------------------------------------------------ delivery

    def _dispatch_due(self) -> None:
        now = time.monotonic()
        sends: list[tuple[_Connection, str]] = []
        with self._lock:
            targets = [c for c in self._connections.values() if c.wants_events and not c.closing]
            for message_id, event in list(self._pending.items()):
                if event.due > now:
                    continue
                if self.max_attempts is not None and event.attempts >= self.max_attempts:
                    del self._pending[message_id]
                    self._c.events_expired += 1
                    continue
                if not targets:
                    event.connection_id = None  # queued until a subscribed connection opens
                    event.due = 0.0
                    continue
                conn = self._rng.choice(targets)
                event.connection_id = conn.id
                event.due = now + self.ack_timeout
                event.attempts += 1
                self._c.events_delivered += 1
                if event.attempts > 1:
                    self._c.events_redelivered += 1
                sends.append((conn, event.frame))
        for conn, text in sends:
            conn.push(text)

    def _message_id(self, now_ms: int) -> str:
        # Same shape as the real ids, e.g. "213d841d_972_1898bb26334_70a7".
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{secrets.token_hex(4)}_{seq}_{now_ms:x}_{secrets.token_hex(2)}"

    def _system_frame(self, topic: str, data: dict[str, Any], message_id: str | None = None) -> str:
        now_ms = int(self._clock() * 1000)
        headers = {
            "topic": topic,
            "messageId": message_id or self._message_id(now_ms),
            "contentType": "application/json",
            "time": str(now_ms),
        }
        return json.dumps(
            {"specVersion": "1.0", "type": "SYSTEM", "headers": headers, "data": json.dumps(data)}
        )

    # ------------------------------------------------------------------ control routes

    async def _control_drop(self, request: Request) -> JSONResponse:
        """`{"reason": "...", "new_connections": 0 | N | "all"}`: drop open connections, and optionally
        every (or the next N) new connection too."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return JSONResponse({"error": "body is not valid JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        reason = body.get("reason", "connection is expired")
        new = body.get("new_connections", 0)
        if not isinstance(reason, str):
            return JSONResponse({"error": "reason must be a string"}, status_code=400)
        if new == "all":
            new = None
        elif not isinstance(new, int) or isinstance(new, bool) or new < 0:
            return JSONResponse(
                {"error": 'new_connections must be a non-negative integer or "all"'}, status_code=400
            )
        self.drop_new_connections(new, reason)
        before = self.stats()["connections"]
        self.drop_connections(reason)
        return JSONResponse({"dropped": before, "drop_new_connections": "all" if new is None else new})

    async def _control_stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.stats())
