"""The Stream-mode event listener: the official ``dingtalk-stream`` SDK under a guarded loop.

What comes from the SDK: the frame classes, ``route_message`` (which answers SYSTEM pings and
``disconnect``), the ``EventHandler``/``CallbackHandler`` contract and the ACK frames. What is
ours, and why:

* **durable-then-ACK** - the handlers write each event to the ``ServiceState`` inbox (SQLite,
  fsynced) and only then return ``200``; if the write fails they answer ``500`` so DingTalk
  re-pushes it later (dingtalk-api.md §7.2). A crash before the write loses nothing: the event was
  never ACKed.
* **dedupe** - the inbox's primary key is the ``eventId`` (robot messages: ``msgId``); a
  redelivered event is ACKed again (DingTalk must stop re-pushing it) but not queued twice.
* **reconnect with back-off** - ``DingTalkStreamClient.start`` reconnects at once after a
  ``disconnect`` frame, and a gateway that drops every new connection would turn that into a
  tight loop. ``StreamListener.run`` opens connections itself (with ``httpx``, without blocking the
  event loop) and waits ``Backoff.next()`` between them: exponential with jitter, reset once a
  connection has lived ``stable_after`` seconds.
* **gaps** - every disconnect is reported to ``on_gap(start, end)`` once the next connection is up,
  so the runner can run a catch-up incremental for the period missed (robot messages sent while
  no connection was open are not re-pushed by DingTalk; events are, but only while queued).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import httpx
import websockets
from dingtalk_stream import AckMessage, CallbackHandler, Credential, DingTalkStreamClient, EventHandler
from dingtalk_stream.frames import CallbackMessage, EventMessage
from dingtalk_stream.version import VERSION_STRING

from dingvault.service.state import ServiceState

log = logging.getLogger(__name__)

OPEN_CONNECTION_PATH = "/v1.0/gateway/connections/open"
ROBOT_MESSAGE_TOPIC = "/v1.0/im/bot/messages/get"


class _QuietPings(logging.Filter):
    """The SDK logs every gateway ping (a SYSTEM frame it answers correctly) as an "unknown
    message topic" warning; that is noise every 30 s, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str)
            and record.msg.startswith("unknown message topic")
            and "ping" in str(record.args)
        )


_SDK_LOG = logging.getLogger("dingtalk_stream.client")
_SDK_LOG.addFilter(_QuietPings())


class Backoff:
    """Exponential back-off with full jitter; ``reset()`` after a connection proved stable."""

    def __init__(
        self, initial: float = 0.5, maximum: float = 60.0, *, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self.failures)
        self.failures = min(self.failures + 1, 30)
        # Half fixed, half random: never zero (no tight loop), never in lock-step with others.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0


class _DurableEvents(EventHandler):
    def __init__(self, listener: StreamListener) -> None:
        super().__init__()
        self.listener = listener

    async def process(self, event: EventMessage) -> tuple[int, str]:
        h = event.headers
        event_id = h.event_id or h.message_id
        if not event_id:
            return AckMessage.STATUS_BAD_REQUEST, "event without eventId"
        if h.event_corp_id:
            self.listener.learn_corp(str(h.event_corp_id))
        return await self.listener.store(
            str(event_id), "event", str(h.event_type or ""), h.event_born_time, event.data
        )


class _DurableRobotMessages(CallbackHandler):
    def __init__(self, listener: StreamListener) -> None:
        super().__init__()
        self.listener = listener

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        data = message.data if isinstance(message.data, dict) else {}
        # Dedupe by the chat message's own id: DingTalk may push one message in two frames.
        msg_id = data.get("msgId") or message.headers.message_id
        if not msg_id:
            return AckMessage.STATUS_BAD_REQUEST, "robot message without msgId"
        born = data.get("createAt")
        born_ms = int(born) if isinstance(born, int | str) and str(born).isdigit() else None
        return await self.listener.store(f"msg:{msg_id}", "callback", ROBOT_MESSAGE_TOPIC, born_ms, data)


class StreamListener(DingTalkStreamClient):
    """``dingtalk-stream``'s client with durable ACKs, dedupe, back-off and gap reports."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        api_base: str,
        state: ServiceState,
        on_stored: Callable[[], None] = lambda: None,
        on_gap: Callable[[float, float], None] = lambda start, end: None,
        on_corp: Callable[[str], None] = lambda corp_id: None,
        backoff: Backoff | None = None,
        stable_after: float = 30.0,
        metrics: Any = None,
    ) -> None:
        super().__init__(Credential(app_key, app_secret), logger=_SDK_LOG)
        self.api_base = api_base.rstrip("/")
        self.state = state
        self.on_stored = on_stored
        self.on_gap = on_gap
        self.on_corp = on_corp
        self.corp_id: str | None = None
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.metrics = metrics
        self.connected = False
        self.connections = 0
        self.duplicates = 0
        self.register_all_event_handler(_DurableEvents(self))
        self.register_callback_handler(ROBOT_MESSAGE_TOPIC, _DurableRobotMessages(self))
        self._stopping = asyncio.Event()
        self._ws: Any = None

    def learn_corp(self, corp_id: str) -> None:
        """The organisation's corpId, as every event's header carries it (first one wins)."""
        if self.corp_id is None:
            self.corp_id = corp_id
            self.on_corp(corp_id)

    # ---- the handlers' common path -------------------------------------------------------------
    async def store(
        self, event_id: str, source: str, type_: str, born_ms: int | None, data: Any
    ) -> tuple[int, str]:
        payload = data if isinstance(data, dict) else {"value": data}
        try:
            fresh = await asyncio.to_thread(self.state.add_event, event_id, source, type_, born_ms, payload)
        except Exception as exc:  # the disk is failing: do not ACK, DingTalk will re-push
            log.error("event %s could not be made durable (%s); not ACKed", event_id, exc)
            return AckMessage.STATUS_SYSTEM_EXCEPTION, "not stored"
        if self.metrics is not None:
            self.metrics.events_received.labels(source=source, duplicate=str(not fresh).lower()).inc()
        if fresh:
            self.on_stored()
        else:
            self.duplicates += 1
        return AckMessage.STATUS_OK, "OK"

    # ---- connection ---------------------------------------------------------------------------
    async def open_connection_async(self) -> dict[str, Any] | None:
        """The SDK's ``open_connection`` request, sent with httpx so it never blocks the loop."""
        topics: list[dict[str, str]] = []
        if self._is_event_required:
            topics.append({"type": "EVENT", "topic": "*"})
        topics += [{"type": "CALLBACK", "topic": t} for t in self.callback_handler_map]
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": topics,
            "ua": f"dingtalk-sdk-python/v{VERSION_STRING}-union dingvault",
            "localIp": "",
        }
        try:
            async with httpx.AsyncClient(timeout=15) as http:
                r = await http.post(self.api_base + OPEN_CONNECTION_PATH, json=body)
            r.raise_for_status()
            answer = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("stream: opening a connection failed: %s", exc)
            return None
        if not isinstance(answer, dict) or not answer.get("endpoint") or not answer.get("ticket"):
            log.warning("stream: open answer without endpoint/ticket")
            return None
        return answer

    def open_connection(self) -> dict[str, Any] | None:  # pragma: no cover - the blocking SDK path is unused
        raise RuntimeError("StreamListener opens connections with open_connection_async()")

    async def run(self) -> None:
        """Stay connected until ``stop()``; every reconnect waits its back-off."""
        self.pre_start()
        down_since: float | None = self.state.get("stream_down_since")
        while not self._stopping.is_set():
            connection = await self.open_connection_async()
            lived = 0.0
            if connection is not None:
                uri = f"{connection['endpoint']}?ticket={quote_plus(connection['ticket'])}"
                started = time.monotonic()
                try:
                    lived = await self._session(uri, down_since)
                except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                    log.warning("stream: connection ended: %s", exc)
                    lived = time.monotonic() - started
                finally:
                    if self.connected:
                        self.connected = False
                    down_since = time.time()
                    self.state.put("stream_down_since", down_since)
            if self._stopping.is_set():
                break
            if lived >= self.stable_after:
                self.backoff.reset()
            delay = self.backoff.next()
            if self.metrics is not None:
                self.metrics.reconnects.inc()
            log.info("stream: reconnecting in %.1f s", delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _session(self, uri: str, down_since: float | None) -> float:
        started = time.monotonic()
        async with websockets.connect(uri, open_timeout=15, ping_interval=30, ping_timeout=30) as ws:
            self.websocket = self._ws = ws
            self.connected = True
            self.connections += 1
            if self.metrics is not None:
                self.metrics.stream_connected.set(1)
            # The gap closes once events flow again; queued events arrive now, the catch-up run
            # covers what is not re-pushed (robot messages, anything a full queue dropped).
            if down_since is not None:
                self.on_gap(down_since, time.time())
            self.state.put("stream_down_since", None)
            tasks: set[asyncio.Task[Any]] = set()
            try:
                async for raw in ws:
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        log.warning("stream: unreadable frame ignored")
                        continue
                    task = asyncio.create_task(self.background_task(frame))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if self._stopping.is_set():
                        break
            finally:
                if self.metrics is not None:
                    self.metrics.stream_connected.set(0)
                # Let in-flight handlers finish their durable write and ACK before the socket goes.
                if tasks:
                    await asyncio.wait(tasks, timeout=10)
        return time.monotonic() - started

    async def stop(self) -> None:
        self._stopping.set()
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:  # already closed
                pass
