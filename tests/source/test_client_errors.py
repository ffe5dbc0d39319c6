"""The client's error paths against respx mocks: each envelope, throttling, ban, quota, garbage."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from dingvault.source.client import DingTalkClient
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
    TransientError,
)

from .conftest import API, OAPI, fast_config

USER_LIST = f"{OAPI}/topapi/v2/user/list"
SPACES = f"{API}/v1.0/drive/spaces"
OK_LEGACY = {"errcode": 0, "errmsg": "ok", "result": {"has_more": False, "list": []}}


async def test_legacy_success_sends_token_in_query_and_json_body(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    route = mock.post(USER_LIST).respond(json=OK_LEGACY)
    body = await client.oapi("POST", "/topapi/v2/user/list", json={"dept_id": 1, "cursor": 0, "size": 100})
    assert body["result"]["has_more"] is False
    request = route.calls.last.request
    assert request.url.params["access_token"] == "tok-1"
    assert request.headers["content-type"].startswith("application/json")
    assert b'"dept_id":1' in request.content
    assert client.calls["/topapi/v2/user/list"] == 1


async def test_new_api_sends_token_header_and_json_encodes_array_params(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    route = mock.get(f"{API}/v1.0/hrm/employees/dimissionInfos").respond(json={"result": []})
    await client.api("GET", "/v1.0/hrm/employees/dimissionInfos", params={"userIdList": ["a", "b"]})
    request = route.calls.last.request
    assert request.headers["x-acs-dingtalk-access-token"] == "tok-1"
    assert request.url.params["userIdList"] == '["a","b"]'
    assert "access_token" not in request.url.params


async def test_path_parameters_are_quoted(client: DingTalkClient, mock: respx.MockRouter) -> None:
    route = mock.get(url__regex=rf"{API}/v1.0/calendar/users/.+/calendars/primary/events").respond(
        json={"events": []}
    )
    await client.api(
        "GET",
        "/v1.0/calendar/users/{userId}/calendars/{calendarId}/events",
        path={"userId": "ab/c+d", "calendarId": "primary"},
    )
    assert "/users/ab%2Fc%2Bd/" in str(route.calls.last.request.url)
    assert client.calls["/v1.0/calendar/users/{userId}/calendars/{calendarId}/events"] == 1


@pytest.mark.parametrize("code", [40014, 42001])
async def test_legacy_token_error_refreshes_once_and_retries(
    client: DingTalkClient, mock: respx.MockRouter, code: int
) -> None:
    mock.post(f"{API}/v1.0/oauth2/accessToken").mock(
        side_effect=[
            httpx.Response(200, json={"accessToken": "tok-old", "expireIn": 7200}),
            httpx.Response(200, json={"accessToken": "tok-new", "expireIn": 7200}),
        ]
    )
    route = mock.post(USER_LIST).mock(
        side_effect=[
            httpx.Response(200, json={"errcode": code, "errmsg": "不合法的access_token"}),
            httpx.Response(200, json=OK_LEGACY),
        ]
    )
    await client.oapi("POST", "/topapi/v2/user/list", json={})
    assert [c.request.url.params["access_token"] for c in route.calls] == ["tok-old", "tok-new"]


async def test_new_api_invalid_authentication_refreshes_once_then_gives_up(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(SPACES).respond(
        400, json={"code": "InvalidAuthentication", "message": "不合法的access_token", "requestid": "R1"}
    )
    with pytest.raises(AuthenticationError) as info:
        await client.api("GET", "/v1.0/drive/spaces")
    assert info.value.endpoint == "/v1.0/drive/spaces"
    assert client.calls["/v1.0/drive/spaces"] == 2  # original + one retry after the refresh
    assert client.stats()["token_fetches"] == 2


async def test_token_is_refreshed_before_expiry(mock: respx.MockRouter) -> None:
    token_route = mock.post(f"{API}/v1.0/oauth2/accessToken").mock(
        side_effect=[
            httpx.Response(200, json={"accessToken": "short", "expireIn": 1}),
            httpx.Response(200, json={"accessToken": "long", "expireIn": 7200}),
        ]
    )
    route = mock.post(USER_LIST).respond(json=OK_LEGACY)
    async with DingTalkClient(fast_config(token_refresh_margin=600)) as c:
        await c.oapi("POST", "/topapi/v2/user/list", json={})
        time.sleep(0.6)  # past the half-life of the 1-second token
        await c.oapi("POST", "/topapi/v2/user/list", json={})
    assert token_route.call_count == 2
    assert route.calls.last.request.url.params["access_token"] == "long"


async def test_bad_credentials_are_an_authentication_error(mock: respx.MockRouter) -> None:
    mock.post(f"{API}/v1.0/oauth2/accessToken").respond(
        400,
        json={"code": "invalidClientIdOrSecret", "message": "无效的clientId或clientSecret", "requestid": "X"},
    )
    async with DingTalkClient(fast_config()) as c:
        with pytest.raises(AuthenticationError) as info:
            await c.api("GET", "/v1.0/drive/spaces")
    assert info.value.code == "invalidClientIdOrSecret"
    assert "s3cret-value" not in str(info.value)


async def test_secret_not_in_config_repr() -> None:
    assert "s3cret-value" not in repr(fast_config())


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(200, json={"errcode": 90018, "errmsg": "qps"}), "90018"),
        (httpx.Response(200, json={"errcode": 90002, "errmsg": "全局限流"}), "90002"),
        (httpx.Response(200, json={"errcode": -1, "errmsg": "系统繁忙"}), "-1"),
        (
            httpx.Response(
                200,
                json={"errcode": 15, "errmsg": "timeout", "sub_code": "isp.top-remote-connection-timeout"},
            ),
            "15",
        ),
        (httpx.Response(200, json={"errcode": 88, "errmsg": "鉴权异常", "sub_code": ""}), "88"),
        (httpx.Response(502, text="Bad gateway"), None),
        (httpx.Response(200, text='{"errcode":0,"result":'), None),
        (
            httpx.Response(
                200,
                text="<html><body>Service Unavailable</body></html>",
                headers={"content-type": "text/html"},
            ),
            None,
        ),
    ],
)
async def test_legacy_retryable_answers_are_retried(
    client: DingTalkClient, mock: respx.MockRouter, answer: httpx.Response, code: str | None
) -> None:
    route = mock.post(USER_LIST).mock(side_effect=[answer, httpx.Response(200, json=OK_LEGACY)])
    body = await client.oapi("POST", "/topapi/v2/user/list", json={})
    assert body["errcode"] == 0
    assert route.call_count == 2
    assert client.retries == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(
            403,
            json={
                "code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                "message": "qps",
                "requestid": "r",
            },
        ),
        httpx.Response(
            403, json={"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "qps", "requestid": "r"}
        ),
        httpx.Response(
            403, json={"code": "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi", "message": "qpm"}
        ),
        httpx.Response(429, text=""),
        httpx.Response(504, json={"code": "gatewayTimeout", "message": "timeout"}),
        httpx.Response(500, json={"code": "systemError.busy", "message": "请求太频繁"}),
        httpx.Response(503, text="oops"),
    ],
)
async def test_new_api_retryable_answers_are_retried(
    client: DingTalkClient, mock: respx.MockRouter, answer: httpx.Response
) -> None:
    route = mock.get(SPACES).mock(
        side_effect=[answer, httpx.Response(200, json={"spaces": [], "nextToken": ""})]
    )
    body = await client.api("GET", "/v1.0/drive/spaces")
    assert body == {"spaces": [], "nextToken": ""}
    assert route.call_count == 2


async def test_connection_errors_are_retried(client: DingTalkClient, mock: respx.MockRouter) -> None:
    route = mock.get(SPACES).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"spaces": []}),
        ]
    )
    assert await client.api("GET", "/v1.0/drive/spaces") == {"spaces": []}
    assert route.call_count == 3


async def test_persistent_throttling_gives_up_with_a_clear_error(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    route = mock.post(USER_LIST).respond(json={"errcode": 90018, "errmsg": "qps limit"})
    with pytest.raises(Throttled) as info:
        await client.oapi("POST", "/topapi/v2/user/list", json={})
    assert route.call_count == 4
    message = str(info.value)
    assert "/topapi/v2/user/list" in message and "4 attempts" in message and "qps limit" in message


async def test_persistent_html_page_is_a_bad_response_naming_endpoint_and_content(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(SPACES).respond(200, text="<!DOCTYPE html><html><title>Welcome to nginx</title></html>")
    with pytest.raises(BadResponse) as info:
        await client.api("GET", "/v1.0/drive/spaces")
    assert "/v1.0/drive/spaces" in str(info.value)
    assert "Welcome to nginx" in str(info.value)


async def test_malformed_json_gives_up_with_bad_response(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(SPACES).respond(200, content=b"\xff\xfe{not json")
    with pytest.raises(BadResponse, match="malformed JSON"):
        await client.api("GET", "/v1.0/drive/spaces")


async def test_json_that_is_not_an_object_is_a_bad_response(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(SPACES).respond(200, json=[1, 2, 3])
    with pytest.raises(BadResponse, match="JSON object"):
        await client.api("GET", "/v1.0/drive/spaces")


async def test_scope_message_names_required_scopes_from_new_api(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(SPACES).respond(
        403,
        json={
            "code": "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "requestid": "RID",
            "message": "没有调用该接口的权限",
            "accessdenieddetail": {"requiredScopes": ["Drive.Space.Read"]},
        },
    )
    with pytest.raises(PermissionDenied) as info:
        await client.api("GET", "/v1.0/drive/spaces")
    err = info.value
    assert err.required_scopes == ["Drive.Space.Read"]
    assert "Drive.Space.Read" in str(err)
    assert err.request_id == "RID" and err.status == 403
    assert client.calls["/v1.0/drive/spaces"] == 1  # not retried


async def test_legacy_60011_names_the_scope_from_the_table(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.post(f"{OAPI}/topapi/report/list").respond(
        json={"errcode": 60011, "errmsg": "no permission", "request_id": "q"}
    )
    with pytest.raises(PermissionDenied) as info:
        await client.oapi("POST", "/topapi/report/list", json={})
    assert info.value.required_scopes == ["qyapi_report_query"]
    assert info.value.code == "60011" and info.value.request_id == "q"


async def test_legacy_60011_for_an_undocumented_endpoint_says_so(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.post(f"{OAPI}/attendance/list").respond(json={"errcode": 60011, "errmsg": "no permission"})
    with pytest.raises(PermissionDenied, match="not documented"):
        await client.oapi("POST", "/attendance/list", json={})


@pytest.mark.parametrize(
    ("answer", "exc_type"),
    [
        (httpx.Response(200, json={"errcode": 60003, "errmsg": "部门不存在"}), NotFound),
        (httpx.Response(200, json={"errcode": 33012, "errmsg": "无效的USERID"}), NotFound),
        (httpx.Response(200, json={"errcode": 60020, "errmsg": "ip"}), IpNotWhitelisted),
        (httpx.Response(200, json={"errcode": 50004, "errmsg": "range"}), PermissionDenied),
        (
            httpx.Response(
                200, json={"errcode": 88, "errmsg": "鉴权异常", "sub_code": "isv.x", "sub_msg": "m"}
            ),
            AuthenticationError,
        ),
        (httpx.Response(200, json={"errcode": 40035, "errmsg": "不合法的参数"}), DingTalkError),
        (httpx.Response(200, json={"errcode": "abc"}), BadResponse),
    ],
)
async def test_legacy_final_errors_are_mapped_and_not_retried(
    client: DingTalkClient, mock: respx.MockRouter, answer: httpx.Response, exc_type: type[Exception]
) -> None:
    route = mock.post(USER_LIST).mock(return_value=answer)
    with pytest.raises(exc_type) as info:
        await client.oapi("POST", "/topapi/v2/user/list", json={})
    if exc_type is not BadResponse:
        assert route.call_count == 1
    assert info.value.endpoint == "/topapi/v2/user/list"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "exc_type"),
    [
        (httpx.Response(404, json={"code": "dentryNotExist", "message": "x", "requestid": "r"}), NotFound),
        (httpx.Response(400, json={"code": "processInstanceNotExist", "message": "x"}), NotFound),
        (httpx.Response(403, json={"code": "permissionDenied", "message": "x"}), PermissionDenied),
        (
            httpx.Response(403, json={"code": "Forbidden.AccessDenied.IpNotInWhiteList", "message": "x"}),
            IpNotWhitelisted,
        ),
        (httpx.Response(401, json={"code": "authFailed", "message": "鉴权失败"}), AuthenticationError),
        (httpx.Response(400, json={"code": "invalidParameter", "message": "bad"}), DingTalkError),
    ],
)
async def test_new_final_errors_are_mapped(
    client: DingTalkClient, mock: respx.MockRouter, answer: httpx.Response, exc_type: type[Exception]
) -> None:
    route = mock.get(SPACES).mock(return_value=answer)
    with pytest.raises(exc_type) as info:
        await client.api("GET", "/v1.0/drive/spaces")
    assert route.call_count == 1
    assert not isinstance(info.value, TransientError)


async def test_quota_stops_non_exempt_calls_but_not_contacts(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    spaces = mock.get(SPACES).respond(
        403, json={"code": "Forbidden.AccessDenied.ApiCountLimitForOrg", "message": "quota"}
    )
    reports = mock.post(f"{OAPI}/topapi/report/list").respond(json={"errcode": 0, "result": {}})
    users = mock.post(USER_LIST).respond(json=OK_LEGACY)
    with pytest.raises(QuotaExhausted):
        await client.api("GET", "/v1.0/drive/spaces")
    with pytest.raises(QuotaExhausted):
        await client.oapi("POST", "/topapi/report/list", json={})
    assert reports.call_count == 0  # failed fast, no call wasted
    assert (await client.oapi("POST", "/topapi/v2/user/list", json={}))["errcode"] == 0  # exempt
    assert spaces.call_count == 1 and users.call_count == 1
    assert client.stats()["quota_exhausted"] is True


async def test_legacy_90020_is_quota(client: DingTalkClient, mock: respx.MockRouter) -> None:
    mock.post(f"{OAPI}/attendance/list").respond(json={"errcode": 90020, "errmsg": "quota"})
    with pytest.raises(QuotaExhausted):
        await client.oapi("POST", "/attendance/list", json={})


async def test_ip_ban_json_pauses_every_call_for_the_announced_wait(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    ban = {"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": "u"}
    route = mock.get(SPACES).mock(
        side_effect=[httpx.Response(200, json=ban), httpx.Response(200, json={"spaces": []})]
    )
    started = time.monotonic()
    assert await client.api("GET", "/v1.0/drive/spaces") == {"spaces": []}
    assert time.monotonic() - started >= 0.05 * 0.9  # wait=5 units of 0.01 s
    assert route.call_count == 2
    assert client.ban_gate.bans == 1
    assert client.retries == 0  # a ban wait is not a failed attempt


async def test_ip_ban_html_page_is_detected(client: DingTalkClient, mock: respx.MockRouter) -> None:
    page = "<html><body><h1>访问被拒绝 (punish: deny)</h1></body></html>"
    route = mock.post(USER_LIST).mock(
        side_effect=[
            httpx.Response(200, text=page, headers={"content-type": "text/html"}),
            httpx.Response(200, json=OK_LEGACY),
        ]
    )
    await client.oapi("POST", "/topapi/v2/user/list", json={})
    assert client.ban_gate.bans == 1 and route.call_count == 2


async def test_persistent_ban_gives_up_with_ip_banned(client: DingTalkClient, mock: respx.MockRouter) -> None:
    mock.get(SPACES).respond(200, json={"status": 1111, "wait": 1, "punish": "deny"})
    with pytest.raises(IpBanned) as info:
        await client.api("GET", "/v1.0/drive/spaces")
    assert info.value.wait_seconds == pytest.approx(0.01)


async def test_ban_is_shared_by_other_apis(client: DingTalkClient, mock: respx.MockRouter) -> None:
    client.ban_gate.ban(0.2)
    mock.post(USER_LIST).respond(json=OK_LEGACY)
    started = time.monotonic()
    await client.oapi("POST", "/topapi/v2/user/list", json={})
    assert time.monotonic() - started >= 0.18


async def test_stats_count_calls_per_template_and_errors(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.get(url__regex=rf"{API}/v1.0/storage/spaces/\w+/dentries").mock(
        side_effect=[
            httpx.Response(504, json={"code": "x", "message": "t"}),
            httpx.Response(200, json={"dentries": []}),
        ]
    )
    for space in ("s1",):
        await client.api("GET", "/v1.0/storage/spaces/{spaceId}/dentries", path={"spaceId": space})
    stats = client.stats()
    assert stats["calls"]["/v1.0/storage/spaces/{spaceId}/dentries"] == 2
    assert stats["errors"] == {"/v1.0/storage/spaces/{spaceId}/dentries x": 1}
    assert stats["retries"] == 1


async def test_bare_429_counts_as_throttling(client: DingTalkClient, mock: respx.MockRouter) -> None:
    mock.get(SPACES).mock(
        side_effect=[httpx.Response(429, text="Too Many Requests"), httpx.Response(200, json={"spaces": []})]
    )
    await client.api("GET", "/v1.0/drive/spaces")
    assert client.throttled == 1
