"""Contacts (§2): departments BFS, user paging, user detail, resigned employees."""

from __future__ import annotations

import json

from emulator_support import Emu


def test_bfs_over_listsub_finds_the_truth_departments(emu: Emu) -> None:
    q = emu.q()
    seen: dict[str, dict] = {}
    queue = [1]
    while queue:
        dept_id = queue.pop(0)
        r = emu.client.post("/topapi/v2/department/listsub", params=q, json={"dept_id": dept_id}).json()
        assert r["errcode"] == 0
        ids = emu.client.post("/topapi/v2/department/listsubid", params=q, json={"dept_id": dept_id}).json()[
            "result"
        ]["dept_id_list"]
        assert ids == [d["dept_id"] for d in r["result"]]
        for d in r["result"]:
            assert isinstance(d["dept_id"], int) and d["parent_id"] == dept_id
            seen[str(d["dept_id"])] = d
            queue.append(d["dept_id"])
    truth = {t["id"]: t for t in emu.truth("department") if t["id"] != "1"}
    assert set(seen) == set(truth)
    assert {d["name"] for d in seen.values()} >= {
        "總經理辦公室",
        "財務部",
        "人力資源部",
        "法務部",
        "工程部",
        "設計部",
        "市場部",
        "客戶服務部",
    }


def test_department_get(emu: Emu) -> None:
    dept = emu.state.org.people.departments[1]
    r = emu.client.post("/topapi/v2/department/get", params=emu.q(), json={"dept_id": dept.dept_id}).json()
    assert r["result"]["name"] == dept.name and r["result"]["parent_id"] == 1
    assert isinstance(r["result"]["member_count"], int) and r["result"]["dept_group_chat_id"].startswith(
        "chat"
    )


def test_user_list_paginates_with_has_more_and_covers_listid(emu: Emu) -> None:
    q = emu.q()
    people = emu.state.org.people
    dept = max(people.departments[1:], key=lambda d: len(people.members(d.dept_id)))
    listed, cursor = [], 0
    while True:
        r = emu.client.post(
            "/topapi/v2/user/list", params=q, json={"dept_id": dept.dept_id, "cursor": cursor, "size": 2}
        ).json()["result"]
        assert isinstance(r["has_more"], bool) and isinstance(r["next_cursor"], int)
        listed += r["list"]
        if not r["has_more"]:
            break
        cursor = r["next_cursor"]
    ids = emu.client.post("/topapi/user/listid", params=q, json={"dept_id": dept.dept_id}).json()["result"][
        "userid_list"
    ]
    assert [u["userid"] for u in listed] == ids and len(ids) >= 3
    u = listed[0]
    assert (
        isinstance(u["hired_date"], int)
        and isinstance(u["active"], bool)
        and isinstance(u["dept_id_list"], list)
    )
    json.loads(u["extension"])  # a JSON string, as documented


def test_user_list_rejects_oversized_pages(emu: Emu) -> None:
    r = emu.client.post(
        "/topapi/v2/user/list", params=emu.q(), json={"dept_id": 1, "cursor": 0, "size": 101}
    ).json()
    assert r["errcode"] != 0


def test_user_get_and_unknown_or_resigned_users(emu: Emu) -> None:
    people = emu.state.org.people
    user = people.users[10]
    r = emu.client.post("/topapi/v2/user/get", params=emu.q(), json={"userid": user.userid}).json()
    assert (
        r["result"]["unionid"] == user.unionid
        and r["result"]["dept_order_list"][0]["dept_id"] == user.dept_id_list[0]
    )
    assert (
        emu.client.post("/topapi/v2/user/get", params=emu.q(), json={"userid": "nobody"}).json()["errcode"]
        == 33012
    )
    left = people.resigned[0].user.userid
    assert (
        emu.client.post("/topapi/v2/user/get", params=emu.q(), json={"userid": left}).json()["errcode"]
        == 60121
    )


def test_emp_leave_records_window_and_paging(emu: Emu) -> None:
    h = emu.h()
    too_wide = emu.client.get(
        "/v1.0/contact/empLeaveRecords",
        params={"startTime": "2024-01-01T00:00:00Z", "endTime": "2026-01-02T00:00:00Z", "maxResults": 10},
        headers=h,
    )
    assert too_wide.status_code == 400
    assert (
        emu.client.get(
            "/v1.0/contact/empLeaveRecords",
            params={"startTime": "2026-01-01T00:00:00Z", "maxResults": 51},
            headers=h,
        ).status_code
        == 400
    )
    start = "2025-03-03T00:00:00Z"  # 364 days before the test clock
    got, token = [], "0"
    while True:
        r = emu.client.get(
            "/v1.0/contact/empLeaveRecords",
            params={"startTime": start, "nextToken": token, "maxResults": 2},
            headers=h,
        ).json()
        got += r["records"]
        if not r.get("nextToken"):
            break
        token = r["nextToken"]
        assert isinstance(token, str)
    truth = [t for t in emu.truth("resigned_user") if t["leaveTime"] >= start]
    assert [g["userId"] for g in got] == [t["id"] for t in truth] and got
    assert all(g["leaveReason"] in {"oapi", "cancel", "leave", "unknown", "delete"} for g in got)


def test_hrm_dismissions_and_infos(emu: Emu) -> None:
    h = emu.h()
    r = emu.client.get(
        "/v1.0/hrm/employees/dismissions", params={"nextToken": 0, "maxResults": 50}, headers=h
    ).json()
    assert r["hasMore"] is False and isinstance(r["nextToken"], int)
    assert set(r["userIdList"]) == {t["id"] for t in emu.truth("resigned_user")}
    infos = emu.client.get(
        "/v1.0/hrm/employees/dimissionInfos",
        params={"userIdList": json.dumps(r["userIdList"][:3])},
        headers=h,
    ).json()
    assert [i["userId"] for i in infos["result"]] == r["userIdList"][:3]
    assert (
        emu.client.get(
            "/v1.0/hrm/employees/dimissionInfos", params={"userIdList": "[]"}, headers=h
        ).status_code
        == 400
    )


def test_legacy_dimission_endpoints(emu: Emu) -> None:
    q = emu.q()
    ids, offset = [], 0
    while True:
        r = emu.client.post(
            "/topapi/smartwork/hrm/employee/querydimission", params=q, json={"offset": offset, "size": 4}
        ).json()
        assert r["errcode"] == 0 and r["success"] is True
        ids += r["result"]["data_list"]
        if "next_cursor" not in r["result"]:
            break
        offset = r["result"]["next_cursor"]
    assert ids == [t["id"] for t in emu.truth("resigned_user")]
    r = emu.client.post(
        "/topapi/smartwork/hrm/employee/listdimission", params=q, json={"userid_list": ",".join(ids[:2])}
    ).json()
    assert [x["userid"] for x in r["result"]] == ids[:2] and isinstance(r["result"][0]["last_work_day"], int)
