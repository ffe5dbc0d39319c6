"""Turning an HTTP answer from either API generation into a payload or a typed error.

Kept apart from the client so the mapping (dingtalk-api.md §0.1, §0.5, §0.6) can be read and
tested as a table.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from dingvault.source.errors import (
    AuthenticationError,
    BadResponse,
    DingTalkError,
    IpBanned,
    IpNotWhitelisted,
    NotFound,
    PermissionDenied,
    QuotaExhausted,
    Throttled,
    TokenExpired,
    TransientError,
)
from dingvault.source.scopes import scope_for

# Legacy errcodes (HTTP 200 envelope).
LEGACY_TOKEN_CODES = frozenset({40001, 40014, 42001})
# 90018 per-app QPS, 90002 global per-API, 90001/90003-90014/90017/90019: other throttling codes.
LEGACY_THROTTLE_CODES = frozenset({90001, 90002, 90018, 90019, 90017, *range(90003, 90015)})
LEGACY_QUOTA_CODE = 90020
# -1 system busy, 15 remote timeout (isp.top-remote-connection-timeout); 88 only with an empty sub_code.
LEGACY_TRANSIENT_CODES = frozenset({-1, 15})
LEGACY_NOT_FOUND_CODES = frozenset({60003, 33012, 60121, 40016})

NEW_THROTTLE_CODES = frozenset(
    {
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi",
        "Forbidden.AccessDenied.QpsLimitForApi",
        "request.overlimit",
        "systemError.busy",
    }
)
NEW_QUOTA_CODE = "Forbidden.AccessDenied.ApiCountLimitForOrg"
NEW_SCOPE_CODE = "Forbidden.AccessDenied.AccessTokenPermissionDenied"
NEW_IP_WHITELIST_CODE = "Forbidden.AccessDenied.IpNotInWhiteList"
# Operator-level denials: the app has the scope but the unionId used cannot see the resource.
NEW_OPERATOR_DENIED = frozenset(
    {"permissionDenied", "no.priviledge", "noPermission", "orgAuthLevelNotEnough"}
)
# `fileArchived`: DingTalk un-archives the file on access; asking again later succeeds (§5.4).
NEW_TRANSIENT_CODES = frozenset({"fileArchived", "operationTimeout", "systemError", "internalError"})

# Words seen on (or typical of) the anti-crawler block page; an HTML page without them is treated
# as a garbled answer (retried), one with them as the per-IP ban (§0.5). The real page's text is
# not documented (uncertain), hence the generous list.
_BAN_MARKERS = re.compile(
    r"punish|deny|denied|x5sec|blocked|forbidden|频繁|封禁|禁止|拒绝|限制访问|访问受限",
    re.IGNORECASE,
)


def _snippet(body: bytes, limit: int = 160) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text + ("…" if len(body) > limit else "")


def _looks_html(content_type: str, body: bytes) -> bool:
    if "html" in content_type.lower():
        return True
    head = body[:64].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def ban_from_json(body: Any, *, default_wait: float, wait_unit: float) -> float | None:
    """Seconds to wait if `body` is the per-IP ban JSON `{"status":1111,...,"punish":"deny"}`."""
    if not isinstance(body, dict):
        return None
    if str(body.get("status")) != "1111" and body.get("punish") != "deny":
        return None
    wait = body.get("wait")
    # The reference pairs `"wait":5` with a 5-minute block, so `wait` is read as minutes
    # (uncertain; `wait_unit` makes the unit configurable).
    try:
        return float(wait) * wait_unit if wait is not None else default_wait
    except (TypeError, ValueError):
        return default_wait


def interpret(
    *,
    generation: str,
    endpoint: str,
    status: int,
    content_type: str,
    body: bytes,
    ban_default_wait: float,
    ban_wait_unit: float,
) -> dict[str, Any]:
    """Return the JSON payload of a successful answer, or raise the matching `DingTalkError`."""
    kw: dict[str, Any] = {"endpoint": endpoint, "status": status}
    if _looks_html(content_type, body):
        if _BAN_MARKERS.search(body[:4096].decode("utf-8", errors="replace")):
            raise IpBanned(
                f"IP ban page instead of JSON: {_snippet(body)}", wait_seconds=ban_default_wait, **kw
            )
        if status >= 500:
            raise TransientError(f"HTTP {status} with an HTML page: {_snippet(body)}", **kw)
        raise BadResponse(f"an HTML page where JSON was expected: {_snippet(body)}", **kw)
    if status == 204 or (not body.strip() and 200 <= status < 300):
        return {}
    if status == 429 and not body.strip().startswith(b"{"):
        raise Throttled(f"HTTP 429: {_snippet(body)}", **kw)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        if status >= 500:
            raise TransientError(f"HTTP {status}: {_snippet(body)}", **kw) from None
        raise BadResponse(f"malformed JSON (HTTP {status}): {_snippet(body)}", **kw) from None
    wait = ban_from_json(payload, default_wait=ban_default_wait, wait_unit=ban_wait_unit)
    if wait is not None:
        raise IpBanned(f"IP ban answer: {_snippet(body)}", wait_seconds=wait, **kw)
    if not isinstance(payload, dict):
        raise BadResponse(f"expected a JSON object, got {type(payload).__name__}: {_snippet(body)}", **kw)
    if generation == "oapi":
        return _legacy(payload, status, kw)
    return _new(payload, status, kw)


def _legacy(payload: dict[str, Any], status: int, kw: dict[str, Any]) -> dict[str, Any]:
    if status >= 500:
        raise TransientError(f"HTTP {status}: {payload.get('errmsg') or payload}", **kw)
    raw_code = payload.get("errcode", 0)
    try:
        code = int(raw_code)
    except (TypeError, ValueError):
        raise BadResponse(f"non-numeric errcode {raw_code!r}", **kw) from None
    if code == 0 and status < 400:
        return payload
    message = str(payload.get("errmsg") or payload.get("sub_msg") or "error")
    kw = {**kw, "code": str(code), "request_id": payload.get("request_id")}
    if code in LEGACY_TOKEN_CODES:
        raise TokenExpired(message, **kw)
    if code in LEGACY_THROTTLE_CODES:
        raise Throttled(message, **kw)
    if code == LEGACY_QUOTA_CODE:
        raise QuotaExhausted(message, **kw)
    if code in LEGACY_TRANSIENT_CODES:
        raise TransientError(message, **kw)
    if code == 88:
        # 鉴权异常 with an empty sub_code is a disguised timeout (§0.5); with a sub_code it is real.
        if not payload.get("sub_code"):
            raise TransientError(message, **kw)
        raise AuthenticationError(
            f"{message}: {payload.get('sub_code')} {payload.get('sub_msg') or ''}".strip(), **kw
        )
    if code == 60011:
        scope = scope_for(kw["endpoint"])
        if scope is None:
            message = f"{message} (the scope this endpoint needs is not documented)"
        raise PermissionDenied(message, required_scopes=[scope] if scope else None, **kw)
    if code == 50004:
        raise PermissionDenied(f"{message} (department outside the app's contacts range)", **kw)
    if code == 60020:
        raise IpNotWhitelisted(message, **kw)
    if code in LEGACY_NOT_FOUND_CODES:
        raise NotFound(message, **kw)
    raise DingTalkError(message, **kw)


def _new(payload: dict[str, Any], status: int, kw: dict[str, Any]) -> dict[str, Any]:
    if 200 <= status < 300:
        return payload
    code = str(payload.get("code") or payload.get("Code") or f"HTTP{status}")
    message = str(payload.get("message") or payload.get("Message") or "error")
    kw = {**kw, "code": code, "request_id": payload.get("requestid") or payload.get("requestId")}
    if code == "InvalidAuthentication":
        raise TokenExpired(message, **kw)
    if code in NEW_THROTTLE_CODES or status == 429:
        raise Throttled(message, **kw)
    if code == NEW_QUOTA_CODE:
        raise QuotaExhausted(message, **kw)
    if code == NEW_SCOPE_CODE:
        detail = payload.get("accessdenieddetail") or {}
        scopes = detail.get("requiredScopes") if isinstance(detail, dict) else None
        if not scopes:
            fallback = scope_for(kw["endpoint"])
            scopes = [fallback] if fallback else None
        raise PermissionDenied(message, required_scopes=list(scopes or []), **kw)
    if code == NEW_IP_WHITELIST_CODE:
        raise IpNotWhitelisted(message, **kw)
    if status == 401 or code in (
        "authFailed",
        "invalidClientIdOrSecret",
        "invalid.client",
        "unauthorized.client",
    ):
        raise AuthenticationError(message, **kw)
    if status >= 500 or code in NEW_TRANSIENT_CODES:
        raise TransientError(message, **kw)
    if code in NEW_OPERATOR_DENIED:
        raise PermissionDenied(message, **kw)
    if status == 404 or code.endswith(("NotExist", "NotFound", "notExist", "notFound")):
        raise NotFound(message, **kw)
    raise DingTalkError(message, **kw)
