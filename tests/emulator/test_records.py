"""Attendance (§6.1), calendar (§6.2), todo (§6.3) and reports (§6.4): shapes, paging, windows."""

from __future__ import annotations

from emulator_support import Emu

from dingtalk_emulator.company.seeding import iso_seconds, local_datetime

DAY = 86_400_000


def test_attendance_list_pages_with_offset_and_has_more(emu: Emu) -> None:
    now = emu.now_ms()
    users = [u.userid for u in emu.state.org.people.users[:5]]
    body = {
        "workDateFrom": local_datetime(now - 7 * DAY),
        "workDateTo": local_datetime(now),
        "userIdList": users,
        "limit": 7,
    }
    got, offset = [], 0
    while True:
        r = emu.client.post("/attendance/list", params=emu.q(), json={**body, "offset": offset}).json()
        assert r["errcode"] == 0 and isinstance(r["hasMore"], bool)
        got += r["recordresult"]
        if not r["hasMore"]:
            break
        offset += 7
    assert len(got) == 5 * 5 * 2  # 5 users × 5 weekdays × on/off duty
    ids = {str(g["id"]) for g in got}
    truth = {
        t["id"]
        for t in emu.truth("attendance")
        if t["userId"] in users and t["workDate"] + DAY > now - 7 * DAY
    }
    assert ids == truth
    rec = got[0]
    assert rec["timeResult"] in {"Normal", "Early", "Late", "SeriousLate", "Absenteeism", "NotSigned"}
    assert (
        isinstance(rec["workDate"], int)
        and isinstance(rec["userCheckTime"], int)
        and rec["checkType"] in {"OnDuty", "OffDuty"}
    )


def test_attendance_window_and_user_limits(emu: Emu) -> None:
    now = emu.now_ms()
    users = [u.userid for u in emu.state.org.people.users]
    too_long = {
        "workDateFrom": local_datetime(now - 8 * DAY),
        "workDateTo": local_datetime(now),
        "userIdList": users[:2],
        "offset": 0,
        "limit": 10,
    }
    assert emu.client.post("/attendance/list", params=emu.q(), json=too_long).json()["errcode"] != 0
    too_many = {
        **too_long,
        "workDateFrom": local_datetime(now - 2 * DAY),
        "userIdList": users + [f"x{n}" for n in range(51 - len(users))],
    }
    assert emu.client.post("/attendance/list", params=emu.q(), json=too_many).json()["errcode"] != 0
    big_page = {**too_long, "workDateFrom": local_datetime(now - 2 * DAY), "limit": 51}
    assert emu.client.post("/attendance/list", params=emu.q(), json=big_page).json()["errcode"] != 0


def test_attendance_list_record_returns_punches(emu: Emu) -> None:
    now = emu.now_ms()
    u = emu.state.org.people.users[2].userid
    r = emu.client.post(
        "/attendance/listRecord",
        params=emu.q(),
        json={
            "userIds": [u],
            "checkDateFrom": local_datetime(now - 7 * DAY),
            "checkDateTo": local_datetime(now),
        },
    ).json()
    assert r["errcode"] == 0 and r["recordresult"]
    assert all(
        p["userId"] == u and p["timeResult"] != "NotSigned" and "userLatitude" in p for p in r["recordresult"]
    )


def _events(emu: Emu, unionid: str, **params) -> tuple[list[dict], str]:
    out, token = [], None
    while True:
        q = {"maxResults": 4, **params}
        if token:
            q["nextToken"] = token
        r = emu.client.get(
            f"/v1.0/calendar/users/{unionid}/calendars/primary/events", params=q, headers=emu.h()
        )
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["events"]
        token = body.get("nextToken")
        if not token:
            return out, body["syncToken"]


def test_calendar_paging_and_sync_token(emu: Emu) -> None:
    user = emu.state.org.people.users[7]
    cals = emu.client.get(f"/v1.0/calendar/users/{user.unionid}/calendars", headers=emu.h()).json()
    assert cals["response"]["calendars"][0]["id"] == "primary"
    events, sync = _events(emu, user.unionid)
    truth = {t["id"] for t in emu.truth("calendar_event") if t["id"].startswith(user.unionid + "/")}
    assert {f"{user.unionid}/{e['id']}" for e in events} == truth and len(events) > 4
    starts = [e["start"]["dateTime"] for e in events]
    assert starts == sorted(starts)
    # Nothing changed: an incremental sync is empty.
    assert _events(emu, user.unionid, syncToken=sync)[0] == []
    emu.clock.advance(60)
    upd = emu.mutate("calendar.update", unionId=user.unionid, eventId=events[0]["id"], summary="改期會議")
    dele = emu.mutate("calendar.delete", unionId=user.unionid, eventId=events[1]["id"])
    new = emu.mutate("calendar.create", unionId=user.unionid, summary="新會議")
    changed, sync2 = _events(emu, user.unionid, syncToken=sync)
    by_id = {e["id"]: e for e in changed}
    assert set(by_id) == {upd["eventId"], dele["eventId"], new["eventId"]}
    assert (
        by_id[upd["eventId"]]["summary"] == "改期會議"
        and by_id[upd["eventId"]]["updateTime"] > events[0]["updateTime"]
    )
    assert by_id[dele["eventId"]]["status"] == "cancelled"
    assert sync2 != sync
    # A full listing hides the deleted event unless showDeleted=true.
    full, _ = _events(emu, user.unionid)
    assert dele["eventId"] not in {e["id"] for e in full}
    with_deleted, _ = _events(emu, user.unionid, showDeleted="true")
    assert dele["eventId"] in {e["id"] for e in with_deleted}
    assert [e for e in emu.truth("calendar_event") if e["id"].endswith("/" + dele["eventId"])][0][
        "deleted"
    ] is True
    assert [name for name, _ in emu.events].count("calendar_event_change") == 3


def test_calendar_window_limit(emu: Emu) -> None:
    user = emu.state.org.people.users[7]
    now = emu.now_ms()
    r = emu.client.get(
        f"/v1.0/calendar/users/{user.unionid}/calendars/primary/events",
        params={"timeMin": iso_seconds(now - 400 * DAY), "timeMax": iso_seconds(now)},
        headers=emu.h(),
    )
    assert r.status_code == 400
    r = emu.client.get(
        f"/v1.0/calendar/users/{user.unionid}/calendars/primary/events",
        params={"maxResults": 101},
        headers=emu.h(),
    )
    assert r.status_code == 400


def test_todo_query_pages_and_hides_old_completed(emu: Emu) -> None:
    # A small profile has enough todos per user to need two pages.
    from emulator_support import make_emu

    small = make_emu(profile="small")
    user = small.state.org.people.users[4]
    got, token = [], "0"
    while True:
        r = small.client.post(
            f"/v1.0/todo/users/{user.unionid}/org/tasks/query", json={"nextToken": token}, headers=small.h()
        ).json()
        got += r["todoCards"]
        token = r.get("nextToken")
        if not token:
            break
        assert isinstance(token, str)
    now = small.now_ms()
    assert all(not t["isDone"] or now - t["modifiedTime"] <= 180 * DAY for t in got)
    book = small.state.org.todo
    hidden = [t for t in book.tasks_of(user.unionid) if t["isDone"] and now - t["modifiedTime"] > 180 * DAY]
    assert len(got) + len(hidden) == book.per_user and hidden
    open_only = small.client.post(
        f"/v1.0/todo/users/{user.unionid}/org/tasks/query",
        json={"nextToken": "0", "isDone": False},
        headers=small.h(),
    ).json()
    assert all(t["isDone"] is False for t in open_only["todoCards"])
    created = small.mutate("todo.create", unionId=user.unionid, subject="簽署合同")
    again = small.client.post(
        f"/v1.0/todo/users/{user.unionid}/org/tasks/query",
        json={"nextToken": "0", "isDone": False},
        headers=small.h(),
    ).json()
    assert created["taskId"] in {t["taskId"] for t in again["todoCards"]}


def test_reports_window_and_cursor(emu: Emu) -> None:
    now = emu.now_ms()
    q = emu.q()
    assert (
        emu.client.post(
            "/topapi/report/list",
            params=q,
            json={"start_time": now - 181 * DAY, "end_time": now, "cursor": 0, "size": 20},
        ).json()["errcode"]
        != 0
    )
    assert (
        emu.client.post(
            "/topapi/report/list",
            params=q,
            json={"start_time": now - 10 * DAY, "end_time": now, "cursor": 0, "size": 21},
        ).json()["errcode"]
        != 0
    )
    got, cursor = [], 0
    while True:
        r = emu.client.post(
            "/topapi/report/list",
            params=q,
            json={"start_time": now - 180 * DAY, "end_time": now, "cursor": cursor, "size": 20},
        ).json()["result"]
        got += r["data_list"]
        if not r["has_more"]:
            break
        cursor = r["next_cursor"]
    ids = {g["report_id"] for g in got}
    truth = {t["id"] for t in emu.truth("report")}
    assert ids <= truth and len(ids) == len(got) > 20
    assert all(len(c["value"]) <= 1000 for g in got for c in g["contents"])
    who = got[0]["creator_id"]
    mine = emu.client.post(
        "/topapi/report/list",
        params=q,
        json={"start_time": now - 180 * DAY, "end_time": now, "cursor": 0, "size": 20, "userid": who},
    ).json()["result"]
    assert mine["data_list"] and all(g["creator_id"] == who for g in mine["data_list"])


def test_no_attendance_on_weekends_or_macau_holidays() -> None:
    from datetime import datetime

    from emulator_support import make_emu

    from dingtalk_emulator.company.seeding import MACAU_TZ

    small = make_emu(profile="small")  # 60 days back from 2026-03-02 reach New Year's Day
    days = {datetime.fromtimestamp(t["workDate"] / 1000, MACAU_TZ).date() for t in small.truth("attendance")}
    assert datetime(2026, 1, 2).date() in days  # a Friday
    assert datetime(2026, 1, 1).date() not in days  # New Year's Day, a Thursday
    assert all(d.weekday() < 5 for d in days)
    detail = small.client.get(
        "/v1.0/workflow/processInstances",
        params={"processInstanceId": small.state.org.approvals.instance_id(5)},
        headers=small.h(),
    ).json()["result"]
    assert {r["type"] for r in detail["operationRecords"]} <= {
        "START_PROCESS_INSTANCE",
        "ADD_REMARK",
        "EXECUTE_TASK_NORMAL",
        "TERMINATE_PROCESS_INSTANCE",
    }


def test_weekly_series_lists_past_instances_and_the_master(emu: Emu) -> None:
    book = emu.state.org.calendar
    u = min(book.series_users)
    user = book.staff[u]
    events, _ = _events(emu, user.unionid)
    masters = [e for e in events if "recurrence" in e]
    instances = [e for e in events if e.get("seriesMasterId")]
    assert len(masters) == 1 and masters[0]["recurrence"]["pattern"]["type"] == "weekly"
    assert instances and all(e["seriesMasterId"] == masters[0]["id"] for e in instances)
    now = emu.now_ms()
    from dingtalk_emulator.company.seeding import parse_iso

    assert all(parse_iso(e["start"]["dateTime"]) <= now for e in instances)  # no future instances
    assert len(instances) == book.series_past
    assert emu.org["counts"]["calendar_event"] == len(emu.truth("calendar_event"))


def test_series_master_filter(emu: Emu) -> None:
    book = emu.state.org.calendar
    user = book.staff[min(book.series_users)]
    events, _ = _events(emu, user.unionid)
    master = next(e for e in events if "recurrence" in e)
    only, _ = _events(emu, user.unionid, seriesMasterId=master["id"])
    assert only and {e["seriesMasterId"] for e in only} == {master["id"]}
    assert len(only) == book.series_past
