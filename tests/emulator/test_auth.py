"""Token endpoints (§1.1–1.3), expiry on the emulator clock, user OAuth (§1.5)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from emulator_support import Emu


def test_new_api_token_is_reused_while_valid_and_renewed_after_expiry(emu: Emu) -> None:
    body = {"appKey": emu.org["appKey"], "appSecret": emu.org["appSecret"]}
    first = emu.client.post("/v1.0/oauth2/accessToken", json=body).json()
    assert first["expireIn"] == 7200 and isinstance(first["accessToken"], str)
    emu.clock.advance(3600)
    assert (
        emu.client.post("/v1.0/oauth2/accessToken", json=body).json()["accessToken"] == first["accessToken"]
    )
    emu.clock.advance(7201)
    second = emu.client.post("/v1.0/oauth2/accessToken", json=body).json()
    assert second["accessToken"] != first["accessToken"]


def test_expired_token_is_refused_by_both_generations(emu: Emu) -> None:
    tok = emu.token()
    emu.clock.advance(7201)
    legacy = emu.client.post(
        "/topapi/v2/department/listsub", params={"access_token": tok}, json={"dept_id": 1}
    )
    assert legacy.status_code == 200 and legacy.json()["errcode"] == 42001
    new = emu.client.get(
        "/v1.0/contact/empLeaveRecords",
        params={"startTime": "2026-01-01T00:00:00Z", "maxResults": 10},
        headers={"x-acs-dingtalk-access-token": tok},
    )
    assert new.status_code == 400
    body = new.json()
    assert body["code"] == "InvalidAuthentication" and "requestid" in body and "message" in body


def test_control_expire_invalidates_tokens(emu: Emu) -> None:
    tok = emu.token()
    assert emu.client.post("/_emulator/tokens/expire").status_code == 200
    r = emu.client.post("/topapi/v2/department/listsub", params={"access_token": tok}, json={"dept_id": 1})
    assert r.json()["errcode"] == 42001
    assert emu.token() != tok


def test_legacy_gettoken_shares_the_same_token(emu: Emu) -> None:
    new = emu.token()
    r = emu.client.get(
        "/gettoken", params={"appkey": emu.org["appKey"], "appsecret": emu.org["appSecret"]}
    ).json()
    assert r["errcode"] == 0 and r["errmsg"] == "ok" and r["access_token"] == new and r["expires_in"] == 7200


def test_wrong_secrets(emu: Emu) -> None:
    r = emu.client.post("/v1.0/oauth2/accessToken", json={"appKey": emu.org["appKey"], "appSecret": "nope"})
    assert r.status_code == 400 and r.json()["code"] == "invalidClientIdOrSecret"
    r = emu.client.get("/gettoken", params={"appkey": emu.org["appKey"], "appsecret": "nope"})
    assert r.status_code == 200 and r.json()["errcode"] != 0 and "access_token" not in r.json()
    corp = emu.org["corpId"]
    good = {
        "client_id": emu.org["appKey"],
        "client_secret": emu.org["appSecret"],
        "grant_type": "client_credentials",
    }
    assert (
        emu.client.post(f"/v1.0/oauth2/{corp}/token", json={**good, "client_secret": "x"}).json()["code"]
        == "invalid.client"
    )
    assert (
        emu.client.post(f"/v1.0/oauth2/{corp}/token", json={**good, "grant_type": "password"}).json()["code"]
        == "unsupported.grant.type"
    )
    r = emu.client.post("/v1.0/oauth2/dingOTHERCORP/token", json=good)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized.client"
    ok = emu.client.post(f"/v1.0/oauth2/{corp}/token", json=good).json()
    assert ok["expires_in"] == 7200 and ok["access_token"] == emu.token()


def test_token_endpoint_wants_json_not_form(emu: Emu) -> None:
    r = emu.client.post(
        "/v1.0/oauth2/accessToken", data={"appKey": emu.org["appKey"], "appSecret": emu.org["appSecret"]}
    )
    assert r.status_code == 400 and "body is mandatory" in r.json()["message"]


def _authorize(emu: Emu, user: str) -> str:
    r = emu.client.get(
        "/oauth2/auth",
        params={
            "redirect_uri": "http://app.example/cb",
            "response_type": "code",
            "client_id": emu.org["appKey"],
            "scope": "openid",
            "state": "s1",
            "login_user": user,
        },
        follow_redirects=False,
    )
    assert r.status_code == 302
    q = parse_qs(urlparse(r.headers["location"]).query)
    assert q["state"] == ["s1"]
    return q["authCode"][0]


def test_user_oauth_code_flow_and_refresh(emu: Emu) -> None:
    user = emu.state.org.people.users[5]
    page = emu.client.get(
        "/oauth2/auth",
        params={
            "redirect_uri": "http://app.example/cb",
            "client_id": emu.org["appKey"],
            "response_type": "code",
        },
    )
    assert page.status_code == 200 and user.name in page.text
    code = _authorize(emu, user.userid)
    creds = {"clientId": emu.org["appKey"], "clientSecret": emu.org["appSecret"]}
    tok = emu.client.post(
        "/v1.0/oauth2/userAccessToken", json={**creds, "code": code, "grantType": "authorization_code"}
    ).json()
    assert tok["expireIn"] == 7200 and tok["corpId"] == emu.org["corpId"] and tok["refreshToken"]
    me = emu.client.get(
        "/v1.0/contact/users/me", headers={"x-acs-dingtalk-access-token": tok["accessToken"]}
    ).json()
    assert me["unionId"] == user.unionid and me["nick"] == user.name and me["stateCode"] == user.state_code
    # The code is single-use.
    again = emu.client.post(
        "/v1.0/oauth2/userAccessToken", json={**creds, "code": code, "grantType": "authorization_code"}
    )
    assert again.status_code == 400
    refreshed = emu.client.post(
        "/v1.0/oauth2/userAccessToken",
        json={**creds, "refreshToken": tok["refreshToken"], "grantType": "refresh_token"},
    )
    assert refreshed.status_code == 200 and refreshed.json()["accessToken"] == tok["accessToken"]
    # An app token is not a user token.
    assert emu.client.get("/v1.0/contact/users/me", headers=emu.h()).status_code == 400


def test_authorize_rejects_unknown_client(emu: Emu) -> None:
    r = emu.client.get(
        "/oauth2/auth",
        params={"redirect_uri": "http://app.example/cb", "client_id": "other", "state": "z"},
        follow_redirects=False,
    )
    assert r.status_code == 302
    assert parse_qs(urlparse(r.headers["location"]).query)["error"] == ["invalid_client"]


def test_expired_tokens_are_pruned_but_recent_ones_still_say_expired(monkeypatch) -> None:
    from emulator_support import FakeClock

    import dingtalk_emulator.tokens as tokens_mod

    monkeypatch.setattr(tokens_mod, "PRUNE_AT", 50)
    clock = FakeClock()
    store = tokens_mod.TokenStore(clock)
    old = store.app_token().value
    clock.advance(7200 + 2 * 86400)  # long expired
    recent = store.app_token().value
    store.expire_all()
    for _ in range(60):  # every expiry forces a new token
        store.app_token()
        store.expire_all()
    assert store.check(old) == (None, "invalid")  # pruned
    assert store.check(recent) == (None, "expired")  # expired less than a day ago: still known
    assert len(store._tokens) <= 61
