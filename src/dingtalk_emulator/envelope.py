"""Both response envelopes, token checks and scope checks, as two endpoint decorators.

Every DingTalk endpoint of the emulator is written as `async def handler(call: Call) -> dict | Response`
and wrapped by one of:

    @legacy_endpoint("qyapi_get_member")     oapi style: token from query `access_token` (or the form);
                                             params = query + body (JSON or form-urlencoded);
                                             returns HTTP 200 {"errcode":0,"errmsg":"ok",**dict,"request_id"};
                                             raise LegacyError(errcode, errmsg) for errors (still HTTP 200).
    @api_endpoint("Workflow.Instance.Read")  /v1.0 style: token from header `x-acs-dingtalk-access-token`;
                                             params = query; body = JSON; returns the dict as JSON (HTTP 200);
                                             raise ApiError(status, code, message) → {"code","message","requestid"}.

`scope=None` means no scope check; `token=False` means no token at all (token endpoints).
`call.state` is the EmulatorState (found on `request.app.state.emulator`), `call.token` the Token.
Scope refusal: new API → 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` with
`accessdenieddetail.requiredScopes`; legacy → errcode 60011 (reference §0.1, §0.6, §1.5).
Token refusal: new API → 400 `InvalidAuthentication` "不合法的access_token" (the reference shows this body
for a bad token; for a missing or expired one it shows nothing, so the same is used — uncertain);
legacy → 40014 (bad/missing) or 42001 (expired).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON_TYPE = "application/json;charset=utf-8"
KNOWN_SCOPES: set[str] = set()  # every scope some endpoint checks; the default grant is all of them


class LegacyError(Exception):
    def __init__(self, errcode: int, errmsg: str, **extra: Any) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode, self.errmsg, self.extra = errcode, errmsg, extra


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=status, media_type=JSON_TYPE, headers=headers)


def legacy_request_id() -> str:
    return os.urandom(6).hex()


def api_request_id() -> str:
    h = os.urandom(16).hex().upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def api_headers(rid: str) -> dict[str, str]:
    return {"Server": "DingTalk/1.0.0", "x-acs-request-id": rid, "x-acs-trace-id": os.urandom(10).hex()}


def _ok_headers() -> dict[str, str]:
    """`api_headers(api_request_id())` from one random read (every successful new-API answer)."""
    h = os.urandom(26).hex()
    u = h[:32].upper()
    rid = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
    return {"Server": "DingTalk/1.0.0", "x-acs-request-id": rid, "x-acs-trace-id": h[32:]}


def legacy_error_response(errcode: int, errmsg: str, **extra: Any) -> Response:
    return json_response({"errcode": errcode, "errmsg": errmsg, **extra, "request_id": legacy_request_id()})


def api_error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    rid = api_request_id()
    body = {"code": code, "requestid": rid, "message": message, **extra}
    return json_response(body, status=status, headers=api_headers(rid))


@dataclass
class Call:
    request: Request
    state: Any
    params: dict[str, Any]  # legacy: query + body merged; new API: query string
    body: dict[str, Any] = field(default_factory=dict)  # new API JSON body (legacy: same as params)
    token: Any = None

    @property
    def path_params(self) -> dict[str, Any]:
        return self.request.path_params


Handler = Callable[[Call], Awaitable[dict[str, Any] | Response]]


async def _read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    ctype = request.headers.get("content-type", "")
    if "json" in ctype or raw.lstrip()[:1] in (b"{", b"["):
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("body is not a JSON object")
        return data
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _granted(state: Any, scope: str | None) -> bool:
    return scope is None or state.config.scopes is None or scope in state.config.scopes


def legacy_endpoint(
    scope: str | None, *, token: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    if scope:
        KNOWN_SCOPES.add(scope)

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            state = request.app.state.emulator
            try:
                try:
                    body = await _read_body(request)
                except (ValueError, UnicodeDecodeError):
                    raise LegacyError(40035, "不合法的参数: 请求体无法解析") from None
                params: dict[str, Any] = {**request.query_params, **body}
                call = Call(request, state, params, body)
                if token:
                    tok, why = state.tokens.check(params.get("access_token"))
                    if tok is None:
                        if why == "expired":
                            raise LegacyError(42001, "access_token超时")  # (uncertain wording)
                        raise LegacyError(40014, "不合法的access_token")
                    call.token = tok
                if not _granted(state, scope):
                    raise LegacyError(
                        60011, "没有调用该接口的权限", sub_code="60011", sub_msg=f"缺少权限点 {scope}"
                    )
                result = await handler(call)
            except LegacyError as e:
                return legacy_error_response(e.errcode, e.errmsg, **e.extra)
            if isinstance(result, Response):
                return result
            return json_response({"errcode": 0, "errmsg": "ok", **result, "request_id": legacy_request_id()})

        return endpoint

    return wrap


def api_endpoint(
    scope: str | None, *, token: bool = True, user_token: bool = False
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    if scope:
        KNOWN_SCOPES.add(scope)

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            state = request.app.state.emulator
            try:
                try:
                    body = (
                        await _read_body(request)
                        if request.method in ("POST", "PUT", "PATCH", "DELETE")
                        else {}
                    )
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(400, "InvalidParameter", "body is not valid JSON") from None
                call = Call(request, state, dict(request.query_params), body)
                if token:
                    tok, _why = state.tokens.check(request.headers.get("x-acs-dingtalk-access-token"))
                    if tok is None:
                        raise ApiError(400, "InvalidAuthentication", "不合法的access_token")
                    if user_token and tok.kind != "user":
                        raise ApiError(400, "InvalidAuthentication", "需要用户的access_token")  # (uncertain)
                    call.token = tok
                if not _granted(state, scope):
                    raise ApiError(
                        403,
                        "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                        "没有调用该接口的权限，接口权限申请参考：https://open.dingtalk.com/document/orgapp-server/add-api-permission",
                        accessdenieddetail={"requiredScopes": [scope]},
                    )
                result = await handler(call)
            except ApiError as e:
                return api_error_response(e.status, e.code, e.message, **e.extra)
            if isinstance(result, Response):
                return result
            return json_response(result, headers=_ok_headers())

        return endpoint

    return wrap


# -- parameter helpers (raise the generation's own error) ---------------------------------------


def legacy_int(params: dict[str, Any], name: str, default: int | None = None) -> int:
    """An integer legacy param; missing and no default → 40035, not an integer → 400002."""
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise LegacyError(40035, f"不合法的参数: 缺少参数 {name}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LegacyError(400002, f"无效的参数 {name}") from None


def api_int(
    params: dict[str, Any], name: str, default: int | None = None, code: str = "invalidParameter"
) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise ApiError(400, code, f"{name} is mandatory for this action")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, code, f"{name} is invalid") from None


def api_bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"
