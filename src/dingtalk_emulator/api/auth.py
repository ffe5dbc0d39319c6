"""Token endpoints (§1.1–1.3) and user OAuth (§1.5): authorisation page, userAccessToken, users/me."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dingtalk_emulator.envelope import ApiError, Call, LegacyError, api_endpoint, legacy_endpoint


def _org(call: Call) -> Any:
    return call.state.org


@api_endpoint(None, token=False)
async def access_token(call: Call) -> dict[str, Any]:
    """POST /v1.0/oauth2/accessToken {"appKey","appSecret"} → {"accessToken","expireIn"}."""
    if "json" not in call.request.headers.get("content-type", "") and call.body:
        # The real endpoint accepts JSON only (reference §0.2).
        raise ApiError(400, "MissingParameter", "body is mandatory for this action")
    if not call.body:
        raise ApiError(400, "MissingParameter", "body is mandatory for this action")
    org = _org(call)
    if call.body.get("appKey") != org.app_key or call.body.get("appSecret") != org.app_secret:
        raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
    tok = call.state.tokens.app_token()
    return {"accessToken": tok.value, "expireIn": call.state.tokens.seconds_left(tok)}


@legacy_endpoint(None, token=False)
async def gettoken(call: Call) -> dict[str, Any]:
    """GET /gettoken?appkey&appsecret → {"access_token","expires_in"} in the legacy envelope."""
    org = _org(call)
    if call.params.get("appkey") != org.app_key or call.params.get("appsecret") != org.app_secret:
        # (uncertain) the reference quotes no body for a wrong secret here; 40089 is the legacy
        # "invalid corpid/corpsecret" code.
        raise LegacyError(40089, "不合法的appKey或appSecret")
    tok = call.state.tokens.app_token()
    return {"access_token": tok.value, "expires_in": call.state.tokens.seconds_left(tok)}


@api_endpoint(None, token=False)
async def corp_token(call: Call) -> Response | dict[str, Any]:
    """POST /v1.0/oauth2/{corpId}/token {client_id, client_secret, grant_type} → {access_token, expires_in}."""
    org = _org(call)
    body = call.body
    if body.get("grant_type") != "client_credentials":
        raise ApiError(400, "unsupported.grant.type", "不支持的grant_type")
    if body.get("client_id") != org.app_key or body.get("client_secret") != org.app_secret:
        raise ApiError(400, "invalid.client", "无效的client_id或client_secret")
    if call.path_params["corpId"] != org.corp_id:
        raise ApiError(401, "unauthorized.client", "应用未被该组织授权")
    tok = call.state.tokens.app_token()
    return {"access_token": tok.value, "expires_in": call.state.tokens.seconds_left(tok)}


def _redirect_with(uri: str, **params: str) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(uri + sep + urlencode(params), status_code=302)


async def authorize(request: Request) -> Response:
    """The login.dingtalk.com authorisation page (§1.5 step 1–2), emulated.

    GET shows a page where one picks the employee who "logs in"; submitting it (or passing
    `login_user=<userid|unionid>` directly, for automated tests) redirects to
    `redirect_uri?authCode=...&state=...`, or `redirect_uri?error=...&state=...`.
    """
    state = request.app.state.emulator
    org = state.org
    q = dict(request.query_params)
    if request.method == "POST":
        q.update({k: str(v) for k, v in (await request.form()).items()})
    redirect_uri, st = q.get("redirect_uri", ""), q.get("state", "")
    if not redirect_uri:
        return HTMLResponse("<h1>redirect_uri is required</h1>", status_code=400)
    if q.get("client_id") != org.app_key:
        return _redirect_with(redirect_uri, error="invalid_client", state=st)
    if q.get("response_type", "code") != "code":
        return _redirect_with(redirect_uri, error="unsupported_response_type", state=st)
    login = q.get("login_user")
    if login:
        user = org.people.user(login) or org.people.by_unionid(login)
        if user is None:
            return _redirect_with(redirect_uri, error="access_denied", state=st)
        return _redirect_with(redirect_uri, authCode=state.tokens.issue_code(user.unionid), state=st)
    options = "".join(
        f'<option value="{html.escape(u.userid)}">{html.escape(u.name)} ({html.escape(u.title)})</option>'
        for u in org.people.users[:200]
    )
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in q.items()
        if k != "login_user"
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>钉钉登录 (emulator)</title>"
        f"<h1>{html.escape(org.name)}</h1><p>Choose the employee who signs in:</p>"
        f'<form method="post">{hidden}<select name="login_user">{options}</select>'
        '<button type="submit">授權 / Authorise</button></form>'
    )
    return HTMLResponse(page)


@api_endpoint(None, token=False)
async def user_access_token(call: Call) -> dict[str, Any]:
    """POST /v1.0/oauth2/userAccessToken (authorization_code | refresh_token grants)."""
    org = _org(call)
    body = call.body
    if body.get("clientId") != org.app_key or body.get("clientSecret") != org.app_secret:
        raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
    grant = body.get("grantType")
    if grant == "authorization_code":
        issued = call.state.tokens.redeem_code(str(body.get("code", "")))
        err = ("invalidAuthCode", "不合法的临时授权码")  # (uncertain) code name not in the reference
    elif grant == "refresh_token":
        issued = call.state.tokens.redeem_refresh(str(body.get("refreshToken", "")))
        err = ("invalidRefreshToken", "不合法的refreshToken")  # (uncertain)
    else:
        raise ApiError(400, "invalidParameter", "grantType must be authorization_code or refresh_token")
    if issued is None:
        raise ApiError(400, *err)
    tok, refresh = issued
    return {
        "accessToken": tok.value,
        "refreshToken": refresh,
        "expireIn": call.state.tokens.seconds_left(tok),
        "corpId": org.corp_id,
    }


@api_endpoint(None, user_token=True)
async def users_me(call: Call) -> dict[str, Any]:
    """GET /v1.0/contact/users/{unionId|me} with a user token."""
    people = call.state.org.people
    who = call.path_params["unionId"]
    unionid = call.token.unionid if who == "me" else who
    user = people.by_unionid(unionid)
    if user is None or (who != "me" and who != call.token.unionid):
        raise ApiError(403, "Forbidden.AccessDenied", "无权查询该用户")  # (uncertain)
    return {
        "nick": user.name,
        "avatarUrl": user.avatar,
        "mobile": user.mobile,
        "openId": "openid-" + user.unionid[:20],
        "unionId": user.unionid,
        "email": user.email,
        "stateCode": user.state_code,
    }


def routes(state: Any) -> list[Route]:
    return [
        Route("/v1.0/oauth2/accessToken", access_token, methods=["POST"]),
        Route("/gettoken", gettoken, methods=["GET"]),
        Route("/v1.0/oauth2/userAccessToken", user_access_token, methods=["POST"]),
        Route("/v1.0/oauth2/{corpId}/token", corp_token, methods=["POST"]),
        Route("/oauth2/auth", authorize, methods=["GET", "POST"]),
        Route("/v1.0/contact/users/{unionId}", users_me, methods=["GET"]),
    ]


def register(state: Any) -> None:
    return None
