"""Exclusive DingTalk endpoints (§3.5, §6.5): refused for a standard org; group inventory paging and
file audit log paging (nextGmtCreate/nextBizId) without gaps or duplicates, matching truth."""

from __future__ import annotations

from typing import Any

import pytest
from test_files_storage import Emu, make_emu


@pytest.fixture
def ex() -> Emu:
    return make_emu(seed=51, exclusive=True)


def test_standard_org_is_refused() -> None:
    e = make_emu(seed=51)
    r = e.get("/v1.0/exclusive/securities/orgGroupInfos", pageStart=1, pageSize=10, uuid="u1")
    assert r.status_code == 403 and r.json()["code"] == "Forbidden.AccessDenied.NotExclusiveOrg"
    assert e.get("/v1.0/exclusive/fileAuditLogs", startDate=0, endDate=1).status_code == 403
    assert e.truth("org_group") == [] and e.truth("file_audit_log") == []


def test_group_inventory_pages_cover_truth(ex: Emu) -> None:
    seen: list[dict[str, Any]] = []
    page = 1
    while True:
        r = ex.get("/v1.0/exclusive/securities/orgGroupInfos", pageStart=page, pageSize=7, uuid="scan-1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["itemCount"] == len(body["items"])
        seen += body["items"]
        if page * 7 >= body["totalCount"]:
            break
        page += 1
    truth = {t["id"]: t for t in ex.truth("org_group")}
    assert [i["openConversationId"] for i in seen] and {i["openConversationId"] for i in seen} == set(truth)
    assert len(seen) == len(truth)
    item = seen[0]
    for key, typ in {
        "groupName": str,
        "groupMembersCount": int,
        "groupOwnerUserId": str,
        "status": int,
        "groupCreateTime": int,
    }.items():
        assert isinstance(item[key], typ)
    api_groups = {g["id"] for g in ex.truth("group")}
    assert api_groups < set(truth)  # the inventory also lists groups created in the client
    assert (
        ex.get("/v1.0/exclusive/securities/orgGroupInfos", pageStart=1, pageSize=7).status_code == 400
    )  # uuid required


def test_audit_log_paging_has_no_gaps(ex: Emu) -> None:
    truth = ex.truth("file_audit_log")
    start, end = truth[10]["gmtCreate"], truth[-10]["gmtCreate"]
    expected = [t["id"] for t in truth if start <= t["gmtCreate"] <= end]
    got: list[str] = []
    params: dict[str, Any] = {"startDate": start, "endDate": end, "pageSize": 17}
    while True:
        r = ex.get("/v1.0/exclusive/fileAuditLogs", **params)
        assert r.status_code == 200, r.text
        rows = r.json()["list"]
        got += [x["bizId"] for x in rows]
        if len(rows) < 17:
            break
        params["nextGmtCreate"], params["nextBizId"] = rows[-1]["gmtCreate"], rows[-1]["bizId"]
    assert got == expected
    row = ex.get("/v1.0/exclusive/fileAuditLogs", startDate=start, endDate=end, pageSize=1).json()["list"][0]
    assert set(row) >= {
        "operatorName",
        "userId",
        "platform",
        "action",
        "actionView",
        "resource",
        "bizId",
        "gmtCreate",
    }
    assert (
        ex.get("/v1.0/exclusive/fileAuditLogs", startDate=start, endDate=end, pageSize=501).status_code == 400
    )


def test_outside_audit_groups(ex: Emu) -> None:
    groups = ex.post("/v1.0/exclusive/audits/outsideGroups/query", {"pageNumber": 1, "pageSize": 10}).json()[
        "responseBody"
    ]
    assert groups["total"] == len(groups["groupList"]) > 0
    cid = groups["groupList"][0]["openConversationId"]
    msgs, token = [], None
    while True:
        body: dict[str, Any] = {"openConversationId": cid, "maxResults": 15}
        if token:
            body["nextToken"] = token
        rb = ex.post("/v1.0/exclusive/audits/outsideGroups/messages/query", body).json()["responseBody"]
        msgs += rb["messageList"]
        token = rb["nextToken"]
        if not token:
            break
    assert len(msgs) == 40 and all(m["openConversationId"] == cid for m in msgs)
