"""Approvals (§4): templates, id listing windows and paging (new + legacy), details, attachments."""

from __future__ import annotations

import hashlib

from emulator_support import Emu

DAY = 86_400_000


def _templates(emu: Emu) -> list[dict]:
    admin = emu.org["adminUserId"]
    r = emu.client.get(
        "/v1.0/workflow/processes/managements/templates", params={"userId": admin}, headers=emu.h()
    ).json()
    assert r["success"] is True
    return r["result"]


def test_templates_are_the_real_kinds(emu: Emu) -> None:
    titles = {t["flowTitle"] for t in _templates(emu)}
    assert {"請假", "報銷", "合同審批", "付款申請", "採購"} <= titles
    assert {t["id"] for t in emu.truth("approval_template")} == {t["processCode"] for t in _templates(emu)}
    non_admin = emu.state.org.people.users[20].userid
    r = emu.client.get(
        "/v1.0/workflow/processes/managements/templates", params={"userId": non_admin}, headers=emu.h()
    )
    assert r.status_code in (400, 403)


def _walk_new(emu: Emu, code: str, start: int, end: int, size: int = 20) -> list[str]:
    ids, token = [], 0
    while True:
        body = {
            "processCode": code,
            "startTime": start,
            "endTime": end,
            "maxResults": size,
            "nextToken": token,
        }
        r = emu.client.post("/v1.0/workflow/processes/instanceIds/query", json=body, headers=emu.h())
        assert r.status_code == 200, r.text
        res = r.json()["result"]
        ids += res["list"]
        if not res.get("nextToken"):
            return ids
        assert isinstance(res["nextToken"], str)  # a Long in the request, a String in the response
        token = int(res["nextToken"])


def test_windows_over_a_year_list_exactly_the_reachable_truth(emu: Emu) -> None:
    now = emu.now_ms()
    listed: set[str] = set()
    for t in _templates(emu):
        start = now - 365 * DAY
        while start < now:
            end = min(start + 120 * DAY, now)
            listed.update(_walk_new(emu, t["processCode"], start, end))
            start = end + 1
    reachable = {a["id"] for a in emu.truth("approval") if a["createTime"] >= now - 365 * DAY}
    assert listed == reachable and len(listed) > 100
    # Some history is older than a year: unreachable, as on a non-premium org.
    assert len(emu.truth("approval")) > len(reachable)


def test_window_errors(emu: Emu) -> None:
    code = _templates(emu)[0]["processCode"]
    now = emu.now_ms()
    url = "/v1.0/workflow/processes/instanceIds/query"

    def err(body: dict) -> str:
        r = emu.client.post(url, json={"processCode": code, **body}, headers=emu.h())
        assert r.status_code == 400, r.text
        return r.json()["code"]

    assert err({"startTime": now - 121 * DAY}) == "invalidInstanceListIdsStartTime"
    assert err({"startTime": now - 200 * DAY, "endTime": now - 50 * DAY}) == "invalidInstanceListIdsStartTime"
    assert (
        err({"startTime": now - 366 * DAY, "endTime": now - 300 * DAY}) == "invalidInstanceListIdsStartTime"
    )
    assert err({"startTime": now - 10 * DAY, "maxResults": 21}) == "invalidMaxResults"
    assert err({"startTime": now - 10 * DAY, "userIds": [str(n) for n in range(11)]}) == "invalidUserIds"
    r = emu.client.post(url, json={"processCode": "PROC-NOPE", "startTime": now}, headers=emu.h())
    assert r.json()["code"] == "invalidProcessCode"


def test_legacy_listids_next_cursor_absent_when_done(emu: Emu) -> None:
    code = _templates(emu)[1]["processCode"]
    now = emu.now_ms()
    ids, cursor = [], 0
    while True:
        r = emu.client.post(
            "/topapi/processinstance/listids",
            params=emu.q(),
            json={"process_code": code, "start_time": now - 119 * DAY, "size": 7, "cursor": cursor},
        ).json()
        assert r["errcode"] == 0
        ids += r["result"]["list"]
        if "next_cursor" not in r["result"]:
            break
        cursor = r["result"]["next_cursor"]
        assert isinstance(cursor, int)
    assert ids == _walk_new(emu, code, now - 119 * DAY, now)
    bad = emu.client.post(
        "/topapi/processinstance/listids",
        params=emu.q(),
        json={"process_code": code, "start_time": now - 121 * DAY},
    ).json()
    assert bad["errcode"] != 0


def test_status_and_user_filters(emu: Emu) -> None:
    code = _templates(emu)[0]["processCode"]
    now = emu.now_ms()
    r = emu.client.post(
        "/v1.0/workflow/processes/instanceIds/query",
        json={"processCode": code, "startTime": now - 119 * DAY, "maxResults": 20, "statuses": ["RUNNING"]},
        headers=emu.h(),
    ).json()
    truth = {a["id"]: a for a in emu.truth("approval")}
    assert all(truth[i]["status"] == "RUNNING" for i in r["result"]["list"])


def test_detail_new_and_legacy_agree(emu: Emu) -> None:
    code = _templates(emu)[2]["processCode"]
    now = emu.now_ms()
    pid = _walk_new(emu, code, now - 100 * DAY, now)[0]
    new = emu.client.get(
        "/v1.0/workflow/processInstances", params={"processInstanceId": pid}, headers=emu.h()
    ).json()
    assert new["success"] == "true"
    res = new["result"]
    legacy = emu.client.post(
        "/topapi/processinstance/get", params=emu.q(), json={"process_instance_id": pid}
    ).json()["process_instance"]
    assert res["title"] == legacy["title"] and res["status"] == legacy["status"]
    assert res["originatorUserId"] == legacy["originator_userid"]
    assert [f["value"] for f in res["formComponentValues"]] == [
        f["value"] for f in legacy["form_component_values"]
    ]
    assert res["createTime"].endswith("Z") and len(legacy["create_time"]) == 19
    assert res["status"] in {"RUNNING", "TERMINATED", "COMPLETED"}
    assert res["operationRecords"][0]["type"] == "START_PROCESS_INSTANCE"
    missing = emu.client.get(
        "/v1.0/workflow/processInstances",
        params={"processInstanceId": "00000000-0000-0000-0000-000000000000"},
        headers=emu.h(),
    )
    assert missing.status_code == 400 and missing.json()["code"] == "processInstanceNotExist"


def test_attachment_urls_serve_the_truth_bytes_for_15_minutes(emu: Emu) -> None:
    item = next(a for a in emu.truth("approval") if a["attachments"])
    att = item["attachments"][0]
    body = {"processInstanceId": item["id"], "fileId": att["fileId"]}
    r = emu.client.post(
        "/v1.0/workflow/processInstances/spaces/files/urls/download", json=body, headers=emu.h()
    ).json()
    assert (
        r["success"] is True
        and r["result"]["fileId"] == att["fileId"]
        and isinstance(r["result"]["spaceId"], int)
    )
    url = r["result"]["downloadUri"]
    got = emu.client.get(url)
    assert (
        got.status_code == 200
        and hashlib.sha256(got.content).hexdigest() == att["sha256"]
        and len(got.content) == att["size"]
    )
    assert emu.client.get(url.replace("Signature=", "Signature=0")).status_code == 403
    emu.clock.advance(15 * 60 + 1)
    assert emu.client.get(url).status_code == 403
    bad = emu.client.post(
        "/v1.0/workflow/processInstances/spaces/files/urls/download",
        json={**body, "fileId": "1"},
        headers=emu.h(),
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalidFileId"
