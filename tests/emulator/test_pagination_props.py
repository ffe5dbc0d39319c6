"""Property: whatever the page size, walking the pages yields the same records once each, in order."""

from __future__ import annotations

import pytest
from emulator_support import make_emu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dingtalk_emulator.company.seeding import local_datetime

DAY = 86_400_000
FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


EMU = None  # set by the module fixture: one small-profile emulator for every example
APPROVALS: list[tuple[str, str, int]] = []
EVENTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _world():
    global EMU
    EMU = make_emu(profile="small")
    book = EMU.state.org.approvals  # ids, templates and times straight from the model (cheap)
    APPROVALS[:] = [
        (book.instance_id(i), book.templates[i % len(book.templates)]["processCode"], book.created(i))
        for i in range(book.n)
    ]
    EVENTS[:] = [t["id"] for t in EMU.truth("calendar_event")]
    yield
    EMU.client.close()


def _users(size: int, dept_id: int) -> list[str]:
    q, out, cursor = EMU.q(), [], 0
    while True:
        r = EMU.client.post(
            "/topapi/v2/user/list", params=q, json={"dept_id": dept_id, "cursor": cursor, "size": size}
        ).json()["result"]
        out += [u["userid"] for u in r["list"]]
        if not r["has_more"]:
            return out
        cursor = r["next_cursor"]


@FAST
@given(size=st.integers(1, 100), which=st.integers(0, 10))
def test_user_list_pages(size: int, which: int) -> None:
    dept = EMU.state.org.people.departments[1 + which]
    assert _users(size, dept.dept_id) == [u.userid for u in EMU.state.org.people.members(dept.dept_id)]


def _approvals(size: int, code: str, start: int, end: int) -> list[str]:
    out, token = [], 0
    while True:
        r = EMU.client.post(
            "/v1.0/workflow/processes/instanceIds/query",
            json={
                "processCode": code,
                "startTime": start,
                "endTime": end,
                "maxResults": size,
                "nextToken": token,
            },
            headers=EMU.h(),
        ).json()["result"]
        out += r["list"]
        if not r.get("nextToken"):
            return out
        token = r["nextToken"]


@FAST
@given(size=st.integers(1, 20), t=st.integers(0, 5), back=st.integers(0, 240))
def test_approval_id_pages(size: int, t: int, back: int) -> None:
    now = EMU.now_ms()
    code = EMU.state.org.approvals.templates[t]["processCode"]
    start, end = now - (back + 120) * DAY, now - back * DAY
    got = _approvals(size, code, start, end)
    assert len(got) == len(set(got))
    truth = [pid for pid, pc, created in APPROVALS if pc == code and start <= created <= end]
    assert got == truth


@FAST
@given(size=st.integers(1, 20), back=st.integers(0, 200))
def test_report_pages(size: int, back: int) -> None:
    now = EMU.now_ms()
    start, end = now - (back + 30) * DAY, now - back * DAY
    out, cursor = [], 0
    while True:
        r = EMU.client.post(
            "/topapi/report/list",
            params=EMU.q(),
            json={"start_time": start, "end_time": end, "cursor": cursor, "size": size},
        ).json()["result"]
        out += [x["report_id"] for x in r["data_list"]]
        if not r["has_more"]:
            break
        cursor = r["next_cursor"]
    book = EMU.state.org.reports
    assert out == [book.report_id(i) for i in range(book.n) if start <= book.created(i) <= end]


@FAST
@given(limit=st.integers(1, 50), users=st.integers(1, 8))
def test_attendance_pages(limit: int, users: int) -> None:
    now = EMU.now_ms()
    ids = [u.userid for u in EMU.state.org.people.users[:users]]
    body = {
        "workDateFrom": local_datetime(now - 6 * DAY),
        "workDateTo": local_datetime(now),
        "userIdList": ids,
        "limit": limit,
    }
    out, offset = [], 0
    while True:
        r = EMU.client.post("/attendance/list", params=EMU.q(), json={**body, "offset": offset}).json()
        out += [x["id"] for x in r["recordresult"]]
        if not r["hasMore"]:
            break
        offset += limit
    full = EMU.client.post("/attendance/list", params=EMU.q(), json={**body, "offset": 0, "limit": 50}).json()
    assert len(out) == len(set(out)) and out[: len(full["recordresult"])] == [
        x["id"] for x in full["recordresult"]
    ]


@FAST
@given(size=st.integers(1, 100), who=st.integers(0, 99))
def test_calendar_pages(size: int, who: int) -> None:
    user = EMU.state.org.people.users[who]
    out, token = [], None
    while True:
        params = {"maxResults": size, **({"nextToken": token} if token else {})}
        r = EMU.client.get(
            f"/v1.0/calendar/users/{user.unionid}/calendars/primary/events", params=params, headers=EMU.h()
        ).json()
        out += [e["id"] for e in r["events"]]
        token = r.get("nextToken")
        if not token:
            break
    assert sorted(out) == sorted(t.split("/", 1)[1] for t in EVENTS if t.startswith(user.unionid + "/"))
