"""Bad input never crashes the emulator: every endpoint answers garbage with its own error envelope."""

from __future__ import annotations

import pytest
from emulator_support import make_emu

LEGACY = [
    "/topapi/v2/department/listsub",
    "/topapi/v2/department/listsubid",
    "/topapi/v2/department/get",
    "/topapi/user/listid",
    "/topapi/v2/user/list",
    "/topapi/v2/user/get",
    "/topapi/processinstance/listids",
    "/topapi/processinstance/get",
    "/attendance/list",
    "/attendance/listRecord",
    "/topapi/report/list",
]
NEW_POST = [
    "/v1.0/workflow/processes/instanceIds/query",
    "/v1.0/workflow/processInstances/spaces/files/urls/download",
    "/v1.0/todo/users/{unionId}/org/tasks/query",
]
NEW_GET = [
    "/v1.0/contact/empLeaveRecords",
    "/v1.0/hrm/employees/dismissions",
    "/v1.0/hrm/employees/dimissionInfos",
    "/v1.0/workflow/processes/managements/templates",
    "/v1.0/workflow/processInstances",
    "/v1.0/calendar/users/{unionId}/calendars/primary/events",
    "/v1.0/calendar/users/{unionId}/calendars/other/events",
]
GARBAGE = [
    {},
    {"dept_id": "abc", "cursor": "x", "size": "-3", "userid": "", "offset": "1e9", "limit": None},
    {
        "start_time": "yesterday",
        "end_time": [],
        "process_code": {"a": 1},
        "userIdList": "not json",
        "workDateFrom": "2026-13-45 99:99:99",
        "workDateTo": 5,
    },
    {
        "userIds": list(range(60)),
        "checkDateFrom": "",
        "userid_list": ",,,",
        "process_instance_id": "../../etc",
    },
]
NEW_GARBAGE = [
    {},
    {
        "processCode": 5,
        "startTime": "soon",
        "maxResults": "many",
        "nextToken": "??",
        "userIds": "x",
        "statuses": ["DONE"],
    },
    {
        "startTime": "2026-99-01",
        "maxResults": "0",
        "userIdList": "[1,2",
        "processInstanceId": "\u0000",
        "timeMin": "bad",
        "syncToken": "%%%",
        "showDeleted": "maybe",
    },
    {
        "nextToken": -5,
        "isDone": "perhaps",
        "fileId": {"x": 1},
        "timeMin": "2026-01-01T00:00:00Z",
        "timeMax": "2020-01-01T00:00:00Z",
    },
]


@pytest.fixture(scope="module")
def emu():
    e = make_emu()
    yield e
    e.client.close()


@pytest.mark.parametrize("path", LEGACY)
def test_legacy_garbage_gets_errcode(emu, path: str) -> None:
    q = emu.q()
    for body in GARBAGE:
        for send in ("json", "form"):
            kw = {"json": body} if send == "json" else {"data": {k: str(v) for k, v in body.items()}}
            r = emu.client.post(path, params=q, **kw)
            assert r.status_code == 200, (path, body, r.text)
            data = r.json()
            assert isinstance(data["errcode"], int) and "request_id" in data, (path, body, data)
    raw = emu.client.post(path, params=q, content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert raw.status_code == 200 and raw.json()["errcode"] != 0


@pytest.mark.parametrize("path", NEW_POST + NEW_GET)
def test_new_api_garbage_gets_a_4xx_envelope(emu, path: str) -> None:
    h = emu.h()
    path = path.replace("{unionId}", emu.state.org.people.users[1].unionid)
    for body in NEW_GARBAGE:
        if path in NEW_POST or "/org/tasks/" in path or "instanceIds" in path or "urls/download" in path:
            r = emu.client.post(path, json=body, headers=h)
        else:
            r = emu.client.get(path, params={k: str(v) for k, v in body.items()}, headers=h)
        assert r.status_code < 500, (path, body, r.text)
        if r.status_code >= 400:
            data = r.json()
            assert {"code", "message", "requestid"} <= set(data), (path, body, data)
    bad_json = emu.client.post(path, content=b"{oops", headers={**h, "content-type": "application/json"})
    assert bad_json.status_code in (400, 405)


def test_unknown_user_paths(emu) -> None:
    h = emu.h()
    for path in (
        "/v1.0/calendar/users/nobody/calendars",
        "/v1.0/calendar/users/nobody/calendars/primary/events",
    ):
        r = emu.client.get(path, headers=h)
        assert r.status_code == 400 and r.json()["code"]
    r = emu.client.post("/v1.0/todo/users/nobody/org/tasks/query", json={}, headers=h)
    assert r.status_code == 400


def test_download_url_garbage(emu) -> None:
    assert emu.client.get("/_oss/approval/x/y/z").status_code == 403
    assert (
        emu.client.get("/_oss/approval/x/y/z", params={"Expires": "soon", "Signature": "s"}).status_code
        == 403
    )
