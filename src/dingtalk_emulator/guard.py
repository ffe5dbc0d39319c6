"""Rate limits, fault injection and call statistics, as one ASGI wrapper.

Interface (stable; the rest of the emulator codes against it):

    guard = Guard(limits="realistic"|"off", faults=SPEC|None, seed=N,
                  monthly_quota=None|int, on_token_fault=callable)
    app = guard.wrap(app)             -> ASGI app that throttles / injects faults / counts calls
    guard.routes()                    -> Starlette routes: GET /_emulator/stats, POST /_emulator/stats/reset,
                                         GET|PUT /_emulator/faults, GET|PUT /_emulator/limits
    guard.stats()                     -> dict (calls per API template, throttled, faults, failed)

What passes through untouched: WebSockets (the Stream connection), `/_emulator/...` control paths.
Blob downloads (paths under `blob_prefixes`) are never limited; only the `truncate` fault touches them.
Everything else is an API call: it is counted under its route template, checked against the limits
(`limits.py`), and may be given a fault (`faults.py`).  Answers follow the call's API generation:
legacy oapi paths get HTTP 200 + `errcode`, `/v1.0|/v2.0` paths get an HTTP status + `code` (§0.1, §0.5).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, compile_path

from dingtalk_emulator.faults import Decision, FaultPlan, FaultSpec, FaultSpecError
from dingtalk_emulator.limits import LimitSettings, RateLimiter, Verdict, is_new_api
from dingtalk_emulator.routing import SegmentIndex, literal_segments
from dingtalk_emulator.stats import CallStats

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_PREFIX = "/_emulator/"
# Where the emulator serves file bytes (the stand-in for OSS pre-signed URLs).  Real downloads go to
# object storage, not the API gateway, so they are not rate limited.
DEFAULT_BLOB_PREFIXES: tuple[str, ...] = ("/_oss/", "/_blob/")
UNMATCHED = "(unmatched)"

_ERRCODE = re.compile(rb'"errcode"\s*:\s*(-?\d+)')


# ---------------------------------------------------------------------- answers


def _legacy_body(errcode: int, errmsg: str, **extra: Any) -> bytes:
    body = {"errcode": errcode, "errmsg": errmsg, **extra, "request_id": uuid.uuid4().hex[:12]}
    return json.dumps(body, ensure_ascii=False).encode()


def _api_body(code: str, message: str) -> tuple[bytes, str]:
    rid = str(uuid.uuid4()).upper()
    return json.dumps({"code": code, "requestid": rid, "message": message}, ensure_ascii=False).encode(), rid


_JSON = b"application/json;charset=utf-8"
_HTML = b"text/html;charset=utf-8"

# Exact errmsg texts for 90018/90020 were not seen (uncertain); the codes are what clients act on.
QPS_ERRMSG = "当前企业调用该接口的频率超过限制，请稍后重试"
QUOTA_ERRMSG = "当前企业本月调用次数已超过限额"
QPS_MESSAGE = "当前应用调用该接口的频率超过限制"
QUOTA_MESSAGE = "当前组织本月调用接口次数已达上限"

BAN_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>访问被拒绝</title></head>'
    "<body><h1>访问被拒绝</h1><p>您的访问过于频繁，请稍后再试。</p></body></html>"
)
GATEWAY_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>{status} {reason}</title></head><body>'
    "<center><h1>{status} {reason}</h1></center><hr><center>Tengine</center></body></html>"
)
BUSY_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>钉钉</title></head>'
    "<body><p>系统繁忙，请稍后再试</p></body></html>"
)


async def _respond(send: Send, status: int, body: bytes, ctype: bytes, rid: str | None = None) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if rid is not None:  # new-API answers carry the gateway's headers (§0.1)
        headers += [(b"server", b"DingTalk/1.0.0"), (b"x-acs-request-id", rid.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_error(
    send: Send, new_api: bool, status: int, code: str, message: str, legacy: bytes
) -> None:
    if new_api:
        body, rid = _api_body(code, message)
        await _respond(send, status, body, _JSON, rid)
    else:
        await _respond(send, 200, legacy, _JSON)


async def _answer_qps(send: Send, new_api: bool) -> None:
    await _answer_error(
        send,
        new_api,
        403,
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        QPS_MESSAGE,
        _legacy_body(90018, QPS_ERRMSG),
    )


async def _answer_quota(send: Send, new_api: bool) -> None:
    # The new-API status for ApiCountLimitForOrg is not stated; 403 like its siblings (uncertain).
    await _answer_error(
        send,
        new_api,
        403,
        "Forbidden.AccessDenied.ApiCountLimitForOrg",
        QUOTA_MESSAGE,
        _legacy_body(90020, QUOTA_ERRMSG),
    )


async def _answer_ban(send: Send, style: str) -> None:
    # The IP ban comes from the anti-abuse layer, not the API: no errcode/code, the same for both
    # generations.  Its HTTP status was not seen (uncertain): 200, so clients must read the body.
    if style == "html":
        await _respond(send, 200, BAN_HTML.encode(), _HTML)
    else:
        body = {"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": str(uuid.uuid4())}
        await _respond(send, 200, json.dumps(body).encode(), _JSON)


async def _drop_connection(send: Send, *, flush: bool) -> None:
    """Close the client's TCP connection: `flush=False` is a reset (RST, nothing sent), `flush=True`
    closes after what was already written (a cut-short body).

    Reaching the socket needs the server's transport; under uvicorn `send` is a method of its
    request cycle, which holds it.  Anywhere else (in-process test transports) the nearest equivalent
    is an exception the client side sees as a failed request.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionResetError("emulated connection reset")
    if flush:
        transport.close()
    else:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # Tell uvicorn the peer is gone, so it neither answers 500 nor logs an incomplete response.
    if hasattr(cycle, "disconnected"):
        cycle.disconnected = True
    await asyncio.sleep(0)


class _Truncated(Exception):
    """Raised into the app's `send` to stop it once a download has been cut short."""


# ---------------------------------------------------------------------- route templates


class _TemplateIndex:
    """Maps a concrete path to its route template, e.g. `/v1.0/storage/spaces/5/dentries` ->
    `/v1.0/storage/spaces/{spaceId}/dentries`, by matching the app's own routes (cached per path)."""

    CACHE_LIMIT = 50_000

    def __init__(self, routes: list[BaseRoute]) -> None:
        self._entries: list[tuple[re.Pattern[str], str]] = []
        self._collect(routes, "")
        self._cache: dict[str, str] = {}
        # Only the templates whose literal leading segments agree with a path are tried, in order.
        self._by_segments = SegmentIndex([(literal_segments(t), (rx, t)) for rx, t in self._entries])

    def _collect(self, routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):
                regex = route.path_regex if not prefix else compile_path(prefix + route.path)[0]
                self._entries.append((regex, prefix + route.path))
            elif isinstance(route, Mount):
                children = getattr(route, "routes", None)
                if children:
                    self._collect(list(children), prefix + route.path)
                else:
                    self._entries.append(
                        (compile_path(prefix + route.path + "/{path:path}")[0], prefix + route.path)
                    )

    def template(self, path: str) -> str:
        found = self._cache.get(path)
        if found is None:
            found = UNMATCHED
            for regex, template in self._by_segments.candidates(path):
                if regex.match(path):
                    found = template
                    break
            if len(self._cache) >= self.CACHE_LIMIT:
                self._cache.clear()  # paths with ids are unbounded; a cold cache only costs a scan
            self._cache[path] = found
        return found


def _find_routes(app: Any) -> list[BaseRoute]:
    """The routes of a Starlette app, looking through a few layers of middleware wrappers."""
    for _ in range(8):
        if app is None:
            break
        routes = getattr(app, "routes", None)
        if routes is not None:
            return list(routes)
        app = getattr(app, "app", None)
    return []


# ---------------------------------------------------------------------- the guard


class Guard:
    def __init__(
        self,
        *,
        limits: str = "realistic",
        faults: str | None = None,
        seed: int = 0,
        monthly_quota: int | None = None,
        on_token_fault: Callable[[], None] | None = None,
        qps: int = 20,
        ip_ban_threshold: int = 10_000,
        ip_ban_window: float = 20.0,
        ip_ban_seconds: float = 300.0,
        ban_style: str = "json",
        blob_prefixes: tuple[str, ...] = DEFAULT_BLOB_PREFIXES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limits not in ("realistic", "off"):
            raise ValueError(f"limits must be 'realistic' or 'off', not {limits!r}")
        if ban_style not in ("json", "html"):
            raise ValueError(f"ban_style must be 'json' or 'html', not {ban_style!r}")
        self.limits = limits
        self.seed = seed
        self.monthly_quota = monthly_quota
        self.on_token_fault = on_token_fault
        self.ban_style = ban_style
        self.blob_prefixes = tuple(blob_prefixes)
        spec = FaultSpec.parse(faults)  # FaultSpecError (a ValueError) names the bad part
        self.faults = spec.to_text() or None
        self.plan = FaultPlan(spec, seed)
        self.limiter = RateLimiter(
            LimitSettings(
                enabled=limits == "realistic",
                qps=qps,
                ip_ban_threshold=ip_ban_threshold,
                ip_ban_window=ip_ban_window,
                ip_ban_seconds=ip_ban_seconds,
                monthly_quota=monthly_quota,
            ),
            clock,
        )
        self.calls = CallStats()
        self._index: _TemplateIndex | None = None
        self._app: Any = None

    # ------------------------------------------------------------------ public interface

    def wrap(self, app: Any) -> ASGIApp:
        self._app = app
        self._index = None  # built on the first request, once every route is registered
        return self

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_emulator/stats", self._get_stats, methods=["GET"]),
            Route("/_emulator/stats/reset", self._reset_stats, methods=["POST"]),
            Route("/_emulator/faults", self._get_faults, methods=["GET"]),
            Route("/_emulator/faults", self._put_faults, methods=["PUT"]),
            Route("/_emulator/limits", self._get_limits, methods=["GET"]),
            Route("/_emulator/limits", self._put_limits, methods=["PUT"]),
        ]

    def stats(self) -> dict[str, Any]:
        return self.calls.snapshot(
            quota_used=self.limiter.quota_used,
            limits=self.limits,
            fault_spec=self.plan.spec.to_dict(),
        )

    def set_faults(self, spec: str | dict[str, Any] | None) -> FaultSpec:
        """Replace the fault spec (and restart its seeded sequence); raises FaultSpecError."""
        parsed = FaultSpec.parse(spec)
        self.plan.load(parsed, self.seed)
        self.faults = parsed.to_text() or None
        return parsed

    def template_of(self, path: str) -> str:
        return self._templates().template(path)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            raise RuntimeError("Guard is not wrapping an app: call guard.wrap(app) and serve what it returns")
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await app(scope, receive, send)
            return
        if path.startswith(self.blob_prefixes):
            await self._download(scope, receive, send)
            return

        template = self._templates().template(path)
        self.calls.call(scope["method"], template)
        new_api = is_new_api(path)
        decision = self.plan.for_call()
        if decision.expire_tokens:
            self.calls.fault("token_expire")
            if self.on_token_fault is not None:
                try:
                    self.on_token_fault()
                except Exception:  # a broken hook must not turn into a 500 the client would misread
                    log.exception("on_token_fault callback failed")
        if decision.kind == "ban_once":
            self.calls.fault("ban_once")
            self.calls.failed()
            await _answer_ban(send, self._ban_style())
            return
        client = scope.get("client")
        verdict = self.limiter.check(template, client[0] if client else "-")
        if verdict is not Verdict.ALLOW:
            self.calls.throttled(verdict.value)
            self.calls.failed()
            if verdict is Verdict.QPS:
                await _answer_qps(send, new_api)
            elif verdict is Verdict.QUOTA:
                await _answer_quota(send, new_api)
            else:
                await _answer_ban(send, self._ban_style())
            return
        if decision.kind is not None:
            self.calls.fault(decision.kind)
            self.calls.failed()
            await self._inject(decision, new_api, scope, receive, send)
            return
        await self._forward(scope, receive, send, not new_api)

    def _templates(self) -> _TemplateIndex:
        if self._index is None:
            self._index = _TemplateIndex(_find_routes(self._app))
        return self._index

    def _ban_style(self) -> str:
        return self.plan.spec.ban or self.ban_style

    async def _forward(self, scope: Scope, receive: Receive, send: Send, legacy: bool) -> None:
        """Pass the call through, noting whether the answer was a failure (status or legacy errcode)."""
        status = 0  # 0: no response started yet
        peek = False  # a legacy JSON body whose errcode is still to be read

        async def watch(message: Message) -> None:
            nonlocal status, peek
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                if status >= 400:
                    self.calls.failed()
                elif legacy:  # only legacy answers hide errors behind HTTP 200
                    for name, value in message.get("headers", ()):
                        if name.lower() == b"content-type":
                            peek = b"json" in value
                            break
            elif peek and kind == "http.response.body":
                peek = False
                # The emulator writes errcode first, so the head of the body is enough.
                m = _ERRCODE.search(message.get("body", b"")[:256])
                if m and m.group(1) != b"0":
                    self.calls.failed()
            await send(message)

        try:
            await self._app(scope, receive, watch)
        except BaseException:
            if status < 400:  # not answered, or cut off mid-answer; a 4xx/5xx was counted already
                self.calls.failed()
            raise

    async def _inject(self, d: Decision, new_api: bool, scope: Scope, receive: Receive, send: Send) -> None:
        kind, v = d.kind, d.variant
        if kind == "throttle":
            await _answer_qps(send, new_api)
        elif kind == "5xx":
            if v < 0.5:
                # HTTP 500 with the generation's JSON error; a legacy 500 body was not seen (uncertain).
                if new_api:
                    body, rid = _api_body("systemError", "系统错误")
                    await _respond(send, 500, body, _JSON, rid)
                else:
                    await _respond(send, 500, _legacy_body(-1, "系统繁忙"), _JSON)
            else:
                status, reason = (
                    (502, "Bad Gateway") if v < 0.75 else (503, "Service Temporarily Unavailable")
                )
                page = GATEWAY_HTML.format(status=status, reason=reason).encode()
                await _respond(send, status, page, _HTML)
        elif kind == "timeout":
            delay = self.plan.spec.timeout_delay
            if delay:
                await asyncio.sleep(delay)
            if new_api:
                body, rid = _api_body("ServiceTimeout", "服务调用超时")  # body not seen (uncertain)
                await _respond(send, 504, body, _JSON, rid)
            elif v < 0.5:
                # §0.5: 88 with an *empty* sub_code means a timeout, safe to retry.
                await _respond(send, 200, _legacy_body(88, "鉴权异常", sub_code="", sub_msg=""), _JSON)
            else:
                body = _legacy_body(
                    15,
                    "远程服务调用超时",
                    sub_code="isp.top-remote-connection-timeout",
                    sub_msg="远程服务调用超时",
                )
                await _respond(send, 200, body, _JSON)
        elif kind == "busy":
            await _answer_error(
                send, new_api, 500, "systemError.busy", "请求太频繁", _legacy_body(-1, "系统繁忙")
            )
        elif kind == "reset":
            await _drop_connection(send, flush=False)
        elif kind == "malformed":
            status, body = await self._capture(scope, receive)
            cut = body[: max(1, len(body) // 2)] if len(body) > 1 else b'{"errcode":'
            await _respond(send, 200, cut, _JSON)
        elif kind == "html":
            if v < 0.5:
                await _respond(send, 200, BUSY_HTML.encode(), _HTML)
            else:
                await _respond(
                    send, 502, GATEWAY_HTML.format(status=502, reason="Bad Gateway").encode(), _HTML
                )
        else:  # pragma: no cover - FaultPlan only yields the kinds above
            raise AssertionError(kind)

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """Run the app and keep its answer (the real work happens; only the reply is spoiled)."""
        status = 500
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, keep)
        return status, b"".join(chunks)

    async def _download(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":  # HEAD and friends carry no body to cut short
            await self._app(scope, receive, send)
            return
        decision = self.plan.for_download()
        sent = 0
        cut_at: int | None = None

        async def relay(message: Message) -> None:
            nonlocal sent, cut_at
            if message["type"] == "http.response.start":
                if decision.kind == "truncate" and message["status"] in (200, 206):
                    length = None
                    for name, value in message.get("headers", ()):
                        if name.lower() == b"content-length":
                            length = int(value)
                    if length is None or length > 1:
                        # Cut somewhere between 10% and 90% of what was promised (or the first chunk).
                        cut_at = int((length or 0) * (0.1 + 0.8 * decision.variant))
                        self.calls.fault("truncate")
                await send(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            if cut_at is not None:
                room = max(cut_at - sent, 0) if cut_at else len(body) // 2
                if len(body) >= room or not message.get("more_body", False):
                    if room:
                        await send({"type": "http.response.body", "body": body[:room], "more_body": True})
                    sent += room
                    self.calls.download(sent)
                    await _drop_connection(send, flush=True)
                    raise _Truncated()
            sent += len(body)
            await send(message)
            if not message.get("more_body", False):
                self.calls.download(sent)

        try:
            await self._app(scope, receive, relay)
        except _Truncated:
            pass

    # ------------------------------------------------------------------ control routes

    async def _get_stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.stats())

    async def _reset_stats(self, request: Request) -> JSONResponse:
        self.calls.reset()
        return JSONResponse(self.stats())

    async def _get_faults(self, request: Request) -> JSONResponse:
        return JSONResponse({"faults": self.plan.spec.to_dict(), "spec": self.plan.spec.to_text()})

    async def _put_faults(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return JSONResponse({"error": "body is not valid JSON"}, status_code=400)
        try:
            spec = self.set_faults(body)
        except FaultSpecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": spec.to_dict(), "spec": spec.to_text()})

    def _limits_view(self) -> dict[str, Any]:
        s = self.limiter.settings
        return {
            "mode": self.limits,
            "qps": s.qps,
            "ip_ban_threshold": s.ip_ban_threshold,
            "ip_ban_window": s.ip_ban_window,
            "ip_ban_seconds": s.ip_ban_seconds,
            "monthly_quota": s.monthly_quota,
            "quota_used": self.limiter.quota_used,
            "ban": self.ban_style,
        }

    async def _get_limits(self, request: Request) -> JSONResponse:
        return JSONResponse(self._limits_view())

    async def _put_limits(self, request: Request) -> JSONResponse:
        """Change limits at run time: any of mode, qps, ip_ban_threshold, ip_ban_window, ip_ban_seconds,
        monthly_quota, ban; `"reset": true` also forgets counters, bans and the quota used."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not valid JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        allowed = {
            "mode",
            "qps",
            "ip_ban_threshold",
            "ip_ban_window",
            "ip_ban_seconds",
            "monthly_quota",
            "ban",
            "reset",
        }
        unknown = set(body) - allowed
        if unknown:
            return JSONResponse({"error": f"unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"}, 400)
        mode = body.get("mode", self.limits)
        ban = body.get("ban", self.ban_style)
        if mode not in ("realistic", "off"):
            return JSONResponse({"error": "mode must be 'realistic' or 'off'"}, status_code=400)
        if ban not in ("json", "html"):
            return JSONResponse({"error": "ban must be 'json' or 'html'"}, status_code=400)
        changes: dict[str, Any] = {"enabled": mode == "realistic"}
        for key, kind in (
            ("qps", int),
            ("ip_ban_threshold", int),
            ("ip_ban_window", float),
            ("ip_ban_seconds", float),
            ("monthly_quota", int),
        ):
            if key in body:
                value = body[key]
                if value is None and key == "monthly_quota":
                    changes[key] = None
                    continue
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or (kind is int and value != int(value))
                ):
                    return JSONResponse(
                        {"error": f"{key} must be a{'n integer' if kind is int else ' number'}"}, 400
                    )
                changes[key] = kind(value)
        try:
            self.limiter.configure(replace(self.limiter.settings, **changes))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.limits, self.ban_style = mode, ban
        self.monthly_quota = self.limiter.settings.monthly_quota
        if body.get("reset"):
            self.limiter.reset()
        return JSONResponse(self._limits_view())
