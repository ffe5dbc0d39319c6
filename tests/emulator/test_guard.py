"""Rate limits, faults and call stats of the emulator's Guard, on a small app served by real uvicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from dingtalk_emulator.faults import CALL_FAULTS, FaultPlan, FaultSpec, FaultSpecError
from dingtalk_emulator.guard import Guard
from dingtalk_emulator.limits import is_quota_exempt

BLOB = bytes(range(256)) * 40  # 10,240 bytes


async def legacy_ok(request: Request) -> JSONResponse:
    return JSONResponse(
        {"errcode": 0, "errmsg": "ok", "result": {"list": [{"userid": "u1"}], "has_more": False}}
    )


async def legacy_bad_token(request: Request) -> JSONResponse:
    return JSONResponse({"errcode": 40014, "errmsg": "不合法的access_token"})


async def dentries(request: Request) -> JSONResponse:
    return JSONResponse({"dentries": [{"id": request.path_params["dentry"]}] * 20, "nextToken": ""})


async def space(request: Request) -> JSONResponse:
    return JSONResponse({"spaceId": request.path_params["spaceId"]})


async def token(request: Request) -> JSONResponse:
    return JSONResponse({"accessToken": "t", "expireIn": 7200})


async def denied(request: Request) -> JSONResponse:
    return JSONResponse({"code": "InvalidAuthentication", "message": "x", "requestid": "r"}, status_code=400)


async def blob(request: Request) -> Response:
    return Response(BLOB, media_type="application/octet-stream")


def make_app(guard: Guard):
    routes = [
        Route("/topapi/v2/user/list", legacy_ok, methods=["POST"]),
        Route("/topapi/processinstance/listids", legacy_ok, methods=["POST"]),
        Route("/topapi/report/list", legacy_bad_token, methods=["POST"]),
        Route("/v1.0/storage/spaces/{spaceId}/dentries", space, methods=["GET"]),
        Mount("/v1.0/wiki", routes=[Route("/nodes/{dentry}", dentries)]),
        Route("/v1.0/oauth2/accessToken", token, methods=["POST"]),
        Route("/v1.0/contact/empLeaveRecords", token),
        Route("/v1.0/calendar/denied", denied),
        Route("/_blob/{key}", blob, methods=["GET", "HEAD"]),
        *guard.routes(),
    ]
    return guard.wrap(Starlette(routes=routes))


@contextmanager
def serve(guard: Guard) -> Iterator[httpx.Client]:
    config = uvicorn.Config(make_app(guard), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


class FakeClock:
    def __init__(self, t: float = 1_780_000_000.5) -> None:  # mid-second, mid-month (2026-05)
        self.t = t

    def __call__(self) -> float:
        return self.t


def legacy(client: httpx.Client, path: str = "/topapi/v2/user/list") -> httpx.Response:
    return client.post(path, json={"dept_id": 1, "cursor": 0, "size": 50})


# ---------------------------------------------------------------------------------------------- limits


def test_qps_limit_per_template_with_each_generations_answer():
    clock = FakeClock()
    with serve(Guard(clock=clock)) as c:
        for i in range(20):  # different concrete paths, one template, one bucket
            assert c.get(f"/v1.0/storage/spaces/{i}/dentries").status_code == 200
        refused = c.get("/v1.0/storage/spaces/99/dentries")
        assert refused.status_code == 403
        assert refused.json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
        assert (
            refused.json()["requestid"] and refused.headers["x-acs-request-id"] == refused.json()["requestid"]
        )
        for _ in range(20):
            assert legacy(c).json()["errcode"] == 0  # another API has its own 20/s
        over = legacy(c)
        assert over.status_code == 200 and over.json()["errcode"] == 90018
        clock.t += 1.0  # next one-second window
        assert c.get("/v1.0/storage/spaces/1/dentries").status_code == 200
        assert legacy(c).json()["errcode"] == 0
        stats = c.get("/_emulator/stats").json()
    assert stats["calls"]["/v1.0/storage/spaces/{spaceId}/dentries"] == 22
    assert stats["calls_by_method"]["POST /topapi/v2/user/list"] == 22
    assert stats["throttled_by"] == {"qps": 2} and stats["failed"] == 2


def test_ip_ban_after_threshold_lasts_then_lifts():
    clock = FakeClock()
    guard = Guard(clock=clock, ip_ban_threshold=30, ip_ban_window=20, ip_ban_seconds=300)
    with serve(guard) as c:
        for i in range(30):
            if i % 15 == 0:
                clock.t += 1.0  # stay under the QPS limit; all inside the 20 s window
            assert legacy(c).json()["errcode"] == 0
        banned = legacy(c)
        body = banned.json()
        assert "errcode" not in body and body["status"] == 1111 and body["punish"] == "deny"
        assert body["source"] == "x5" and body["wait"] == 5 and body["uuid"]
        clock.t += 200
        assert (
            c.get("/v1.0/storage/spaces/1/dentries").json()["status"] == 1111
        )  # every API, both generations
        clock.t += 101
        assert legacy(c).json()["errcode"] == 0
        assert c.get("/_emulator/stats").json()["throttled_by"]["ip_ban"] == 2


def test_calls_spread_beyond_the_window_are_not_banned():
    clock = FakeClock()
    with serve(Guard(clock=clock, ip_ban_threshold=30, ip_ban_window=20)) as c:
        for _ in range(60):
            clock.t += 1.0  # 60 calls over 60 s: never more than 20 within 20 s
            assert legacy(c).json()["errcode"] == 0


def test_ban_html_variant_selectable_at_run_time():
    clock = FakeClock()
    with serve(Guard(clock=clock, ip_ban_threshold=2)) as c:
        reply = c.put("/_emulator/limits", json={"ban": "html"})
        assert reply.status_code == 200 and reply.json()["ban"] == "html"
        legacy(c), legacy(c)
        page = legacy(c)
        assert page.headers["content-type"].startswith("text/html") and "<html" in page.text
        assert c.put("/_emulator/limits", json={"reset": True}).status_code == 200
        assert legacy(c).json()["errcode"] == 0


def test_monthly_quota_counts_only_non_exempt_apis():
    clock = FakeClock()
    with serve(Guard(clock=clock, monthly_quota=3)) as c:
        for _ in range(3):
            assert c.post("/topapi/processinstance/listids", json={}).json()["errcode"] == 0
        over = c.post("/topapi/processinstance/listids", json={})
        assert over.status_code == 200 and over.json()["errcode"] == 90020
        refused = c.get("/v1.0/storage/spaces/1/dentries")
        assert (
            refused.status_code == 403
            and refused.json()["code"] == "Forbidden.AccessDenied.ApiCountLimitForOrg"
        )
        for _ in range(5):  # exempt: token, contacts, resigned employees
            assert c.post("/v1.0/oauth2/accessToken", json={}).status_code == 200
            assert legacy(c).json()["errcode"] == 0
            assert c.get("/v1.0/contact/empLeaveRecords").status_code == 200
        clock.t += 31 * 86400  # next month
        assert c.post("/topapi/processinstance/listids", json={}).json()["errcode"] == 0
        stats = c.get("/_emulator/stats").json()
    assert stats["throttled_by"]["quota"] == 2 and stats["quota_used"] == 1


def test_quota_exempt_list():
    for path in (
        "/gettoken",
        "/v1.0/oauth2/accessToken",
        "/v1.0/oauth2/{corpId}/token",
        "/topapi/v2/user/get",
        "/topapi/v2/user/list",
        "/topapi/user/listid",
        "/topapi/v2/department/listsub",
        "/topapi/v2/department/listsubid",
        "/topapi/v2/department/get",
        "/v1.0/contact/empLeaveRecords",
        "/v1.0/hrm/employees/dismissions",
        "/v1.0/hrm/employees/dimissionInfos",
    ):
        assert is_quota_exempt(path), path
    for path in (
        "/topapi/processinstance/listids",
        "/v1.0/workflow/processInstances",
        "/attendance/list",
        "/v1.0/storage/spaces/{spaceId}/dentries",
        "/v1.0/calendar/users/{userId}/calendars/{calendarId}/events",
        "/topapi/report/list",
    ):
        assert not is_quota_exempt(path), path


def test_token_endpoint_is_rate_limited_too():
    clock = FakeClock()
    with serve(Guard(clock=clock)) as c:
        codes = [c.post("/v1.0/oauth2/accessToken", json={}).status_code for _ in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 403


def test_limits_off_and_unguarded_paths():
    clock = FakeClock()
    with serve(Guard(clock=clock, limits="off", ip_ban_threshold=5)) as c:
        assert all(legacy(c).json()["errcode"] == 0 for _ in range(50))
    with serve(Guard(clock=clock, qps=1, ip_ban_threshold=3)) as c:
        for _ in range(10):  # control paths and blob downloads are never limited (nor counted as calls)
            assert c.get("/_emulator/stats").status_code == 200
            assert c.get("/_blob/k").content == BLOB
        stats = c.get("/_emulator/stats").json()
        assert stats["total"] == 0 and stats["downloads"] == 10 and stats["download_bytes"] == 10 * len(BLOB)


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "fast"},
        {"qps": 0},
        {"qps": "x"},
        {"ban": "xml"},
        {"nope": 1},
        [1],
        {"monthly_quota": -1},
        {"qps": 1.5},
    ],
)
def test_limits_control_rejects_bad_input(body):
    with serve(Guard()) as c:
        reply = c.put("/_emulator/limits", json=body)
        assert reply.status_code == 400 and reply.json()["error"]
        assert c.get("/_emulator/limits").json()["qps"] == 20  # unchanged


def test_limits_can_be_switched_off_at_run_time():
    clock = FakeClock()
    with serve(Guard(clock=clock, qps=2)) as c:
        assert [legacy(c).json()["errcode"] for _ in range(3)] == [0, 0, 90018]
        assert c.put("/_emulator/limits", json={"mode": "off"}).json()["mode"] == "off"
        assert all(legacy(c).json()["errcode"] == 0 for _ in range(10))


def test_guard_rejects_bad_constructor_arguments():
    with pytest.raises(ValueError, match="limits"):
        Guard(limits="strict")
    with pytest.raises(FaultSpecError, match="unknown fault 'bogus'"):
        Guard(faults="bogus=0.1")


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("throttle", "not KEY=VALUE"),
        ("throttle=", "not KEY=VALUE"),
        ("throttle=abc", "not a number"),
        ("throttle=1.5", "between 0 and 1"),
        ("5xx=-0.1", "between 0 and 1"),
        ("throttle=0.6,5xx=0.6", "add up to 1.2"),
        ("token_expire_after=0", "integer >= 1"),
        ("ban_once_after=2.5", "not an integer"),
        ("throttle=0.1,throttle=0.2", "repeats"),
        ("ban=xml", "choose one of json, html"),
        ("explode=0.1", "unknown fault 'explode'"),
        ("timeout_delay=100", "between 0 and 60"),
    ],
)
def test_bad_fault_specs_are_refused_clearly(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        FaultSpec.parse(spec)


def test_fault_spec_text_and_json_forms_agree():
    text = "throttle=0.1,5xx=0.02,timeout=0.01,reset=0.005,malformed=0.005,html=0.005,truncate=0.05,token_expire_after=500,ban_once_after=2000"
    parsed = FaultSpec.parse(text)
    assert parsed == FaultSpec.parse(parsed.to_dict()) == FaultSpec.parse(parsed.to_text())
    assert (
        parsed.rates["truncate"] == 0.05
        and parsed.token_expire_after == 500
        and parsed.ban_once_after == 2000
    )
    with pytest.raises(FaultSpecError):
        FaultSpec.parse({"throttle": True})


def kinds(plan: FaultPlan, n: int) -> list[str | None]:
    return [plan.for_call().kind for _ in range(n)]


def test_faults_are_reproducible_by_seed_and_roughly_at_their_rates():
    spec = FaultSpec.parse("throttle=0.2,5xx=0.1,reset=0.05")
    a, b, other = FaultPlan(spec, seed=5), FaultPlan(spec, seed=5), FaultPlan(spec, seed=6)
    run = kinds(a, 2000)
    assert run == kinds(b, 2000)
    assert run != kinds(other, 2000)
    assert (
        300 < run.count("throttle") < 500 and 130 < run.count("5xx") < 270 and 50 < run.count("reset") < 150
    )
    assert set(run) == {None, "throttle", "5xx", "reset"}
    a.load(spec, seed=5)  # reloading restarts the sequence
    assert kinds(a, 2000) == run
    assert kinds(FaultPlan(FaultSpec.parse("throttle=0.2,5xx=0.1,reset=0.05,seed=5"), seed=99), 2000) == run


def test_same_seed_same_faults_over_http():
    def observe() -> list[tuple[int, str]]:
        with serve(Guard(limits="off", faults="throttle=0.3,busy=0.2,html=0.1", seed=11)) as c:
            out = []
            for _ in range(40):
                r = legacy(c)
                out.append((r.status_code, r.text[:12]))
            return out

    first = observe()
    assert first == observe()
    assert len({t for t in first}) > 2


def call_kinds_of(guard_spec: str, call) -> list[httpx.Response]:
    with serve(Guard(limits="off", faults=guard_spec, seed=3)) as c:
        replies = [call(c) for _ in range(12)]
        stats = c.get("/_emulator/stats").json()
    kind = guard_spec.split("=")[0]
    assert stats["faults"][kind] == 12 and stats["failed"] == 12 and stats["total"] == 12
    return replies


def test_throttle_fault_uses_each_generations_envelope():
    for r in call_kinds_of("throttle=1", legacy):
        assert r.status_code == 200 and r.json()["errcode"] == 90018
    for r in call_kinds_of("throttle=1", lambda c: c.get("/v1.0/storage/spaces/1/dentries")):
        assert r.status_code == 403 and r.json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"


def test_5xx_fault():
    replies = call_kinds_of("5xx=1", lambda c: c.get("/v1.0/storage/spaces/1/dentries"))
    assert {r.status_code for r in replies} <= {500, 502, 503} and len({r.status_code for r in replies}) >= 2
    for r in replies:
        if r.status_code == 500:
            assert r.json()["code"] == "systemError"
        else:
            assert "<html" in r.text


def test_timeout_fault():
    for r in call_kinds_of("timeout=1", lambda c: c.get("/v1.0/storage/spaces/1/dentries")):
        assert r.status_code == 504 and r.json()["code"]
    seen = set()
    for r in call_kinds_of("timeout=1", legacy):
        body = r.json()
        assert r.status_code == 200 and body["errcode"] in (88, 15)
        if body["errcode"] == 88:
            assert body["sub_code"] == ""  # empty sub_code = timeout (§0.5)
        else:
            assert body["sub_code"] == "isp.top-remote-connection-timeout"
        seen.add(body["errcode"])
    assert seen == {88, 15}


def test_busy_fault():
    for r in call_kinds_of("busy=1", legacy):
        assert r.status_code == 200 and r.json()["errcode"] == -1 and r.json()["errmsg"] == "系统繁忙"
    for r in call_kinds_of("busy=1", lambda c: c.get("/v1.0/storage/spaces/1/dentries")):
        assert r.status_code == 500 and r.json()["code"] == "systemError.busy"


def test_malformed_fault_is_a_200_with_cut_json():
    for r in call_kinds_of("malformed=1", legacy):
        assert r.status_code == 200 and r.text.startswith('{"errcode"')
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)


def test_html_fault_where_json_was_expected():
    replies = call_kinds_of("html=1", lambda c: c.get("/v1.0/storage/spaces/1/dentries"))
    assert {r.status_code for r in replies} == {200, 502}
    assert all(r.headers["content-type"].startswith("text/html") and "<html" in r.text for r in replies)


def test_reset_fault_closes_without_answer_and_server_survives():
    with serve(Guard(limits="off", faults="reset=1")) as c:
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                legacy(c)
        assert c.put("/_emulator/faults", json={}).status_code == 200
        assert legacy(c).json()["errcode"] == 0
        assert c.get("/_emulator/stats").json()["faults"]["reset"] == 3


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET over a bare socket; returns (promised Content-Length, body bytes received before close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    return length, body


def test_truncate_fault_cuts_downloads_short():
    with serve(Guard(faults="truncate=1", seed=2)) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/_blob/a")
        port = int(str(c.base_url).rsplit(":", 1)[1])
        promised, got = raw_get(port, "/_blob/b")
        assert promised == len(BLOB) and 0 < len(got) < promised and BLOB.startswith(got)
        assert legacy(c).json()["errcode"] == 0  # API calls are untouched by `truncate`
        stats = c.get("/_emulator/stats").json()
    assert stats["faults"]["truncate"] == 2 and stats["total"] == 1


def test_token_expire_every_n_calls_invokes_callback():
    fired: list[float] = []
    guard = Guard(
        limits="off", faults="token_expire_after=3", on_token_fault=lambda: fired.append(time.time())
    )
    with serve(guard) as c:
        for _ in range(7):
            assert legacy(c).json()["errcode"] == 0
        assert c.get("/_emulator/stats").json()["faults"]["token_expire"] == 2
    assert len(fired) == 2


def test_ban_once_after_n_calls():
    with serve(Guard(limits="off", faults="ban_once_after=4,ban=html")) as c:
        replies = [legacy(c) for _ in range(8)]
    assert [r.headers["content-type"].startswith("text/html") for r in replies] == [False] * 3 + [True] + [
        False
    ] * 4
    assert all(r.json()["errcode"] == 0 for i, r in enumerate(replies) if i != 3)


def test_faults_set_at_run_time_and_validated():
    with serve(Guard(limits="off")) as c:
        assert c.get("/_emulator/faults").json()["faults"] == {}
        bad = c.put("/_emulator/faults", json={"throttle": 2})
        assert bad.status_code == 400 and "between 0 and 1" in bad.json()["error"]
        assert c.put("/_emulator/faults", content=b"{not json").status_code == 400
        ok = c.put("/_emulator/faults", json={"throttle": 1.0})
        assert ok.status_code == 200 and ok.json()["spec"] == "throttle=1.0"
        assert legacy(c).json()["errcode"] == 90018
        assert c.put("/_emulator/faults", json="busy=1").json()["faults"] == {"busy": 1.0}
        assert legacy(c).json()["errcode"] == -1
        assert c.put("/_emulator/faults", json=None).json()["faults"] == {}
        assert legacy(c).json()["errcode"] == 0


def test_every_call_fault_kind_is_known_to_the_guard():
    # A spec naming each kind at 1/len must run without hitting the guard's "unknown kind" branch.
    spec = ",".join(f"{k}={1 / len(CALL_FAULTS):.4f}" for k in CALL_FAULTS if k != "reset")
    with serve(Guard(limits="off", faults=spec, seed=1)) as c:
        for _ in range(60):
            legacy(c)
        faults = c.get("/_emulator/stats").json()["faults"]
    assert set(faults) == set(CALL_FAULTS) - {"reset"}


# ---------------------------------------------------------------------------------------------- stats


def test_stats_count_templates_methods_and_failures_then_reset():
    with serve(Guard(limits="off")) as c:
        c.get("/v1.0/wiki/nodes/a")
        c.get("/v1.0/wiki/nodes/b")  # mounted route: template includes the mount prefix
        c.post("/topapi/report/list", json={})  # HTTP 200 but errcode 40014: a failure
        c.get("/v1.0/calendar/denied")  # HTTP 400: a failure
        c.get("/no/such/api")  # 404, counted as unmatched
        stats = c.get("/_emulator/stats").json()
        assert stats["calls"] == {
            "/v1.0/wiki/nodes/{dentry}": 2,
            "/topapi/report/list": 1,
            "/v1.0/calendar/denied": 1,
            "(unmatched)": 1,
        }
        assert stats["calls_by_method"]["GET /v1.0/wiki/nodes/{dentry}"] == 2
        assert stats["total"] == 5 and stats["failed"] == 3 and stats["ok"] == 2
        reset = c.post("/_emulator/stats/reset").json()
        assert reset["total"] == 0 and reset["calls"] == {}


def test_truncate_spares_head_requests():
    with serve(Guard(faults="truncate=1")) as c:
        head = c.head("/_blob/a")
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(BLOB)
        assert c.get("/_emulator/stats").json()["faults"] == {}


def test_a_failing_token_hook_does_not_break_the_call():
    def broken() -> None:
        raise RuntimeError("token store unavailable")

    with serve(Guard(limits="off", faults="token_expire_after=1", on_token_fault=broken)) as c:
        assert legacy(c).json()["errcode"] == 0
        assert c.get("/_emulator/stats").json()["faults"]["token_expire"] == 1
