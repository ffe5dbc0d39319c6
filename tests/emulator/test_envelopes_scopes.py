"""Both error envelopes, token sources and scope refusals (§0.1, §0.2, §1.5)."""

from __future__ import annotations

from emulator_support import make_emu


def test_legacy_accepts_token_in_query_or_form_and_body_as_json_or_form() -> None:
    emu = make_emu()
    tok = emu.token()
    as_json = emu.client.post(
        "/topapi/v2/department/listsub", params={"access_token": tok}, json={"dept_id": 1}
    ).json()
    as_form = emu.client.post(
        "/topapi/v2/department/listsub", data={"access_token": tok, "dept_id": "1"}
    ).json()
    assert as_json["errcode"] == 0 and as_json["result"] == as_form["result"]
    assert isinstance(as_json["request_id"], str) and as_json["errmsg"] == "ok"


def test_legacy_errors_are_http_200_with_errcode() -> None:
    emu = make_emu()
    r = emu.client.post("/topapi/v2/department/listsub", json={"dept_id": 1})
    assert r.status_code == 200 and r.json()["errcode"] == 40014 and r.json()["errmsg"]
    r = emu.client.post(
        "/topapi/v2/department/listsub", params={"access_token": "made-up"}, json={"dept_id": 1}
    )
    assert r.json()["errcode"] == 40014
    r = emu.client.post("/topapi/v2/department/get", params=emu.q(), json={"dept_id": 99})
    assert r.status_code == 200 and r.json()["errcode"] == 60003
    r = emu.client.post(
        "/topapi/v2/department/listsub",
        params=emu.q(),
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.json()["errcode"] == 40035


def test_new_api_errors_have_status_code_message_requestid_and_headers() -> None:
    emu = make_emu()
    r = emu.client.get("/v1.0/contact/empLeaveRecords", params={"maxResults": 5})
    assert r.status_code == 400
    assert set(r.json()) >= {"code", "message", "requestid"} and r.json()["code"] == "InvalidAuthentication"
    ok = emu.client.get(
        "/v1.0/contact/empLeaveRecords",
        params={"startTime": "2026-01-01T00:00:00Z", "maxResults": 5},
        headers=emu.h(),
    )
    assert ok.status_code == 200 and "errcode" not in ok.json()
    assert ok.headers["server"] == "DingTalk/1.0.0" and ok.headers["x-acs-request-id"]
    assert ok.headers["content-type"].startswith("application/json")


def test_missing_scope_new_api_403_with_required_scopes() -> None:
    emu = make_emu(scopes={"qyapi_get_member"})
    r = emu.client.get("/v1.0/workflow/processInstances", params={"processInstanceId": "x"}, headers=emu.h())
    assert r.status_code == 403
    body = r.json()
    assert body["code"] == "Forbidden.AccessDenied.AccessTokenPermissionDenied"
    assert body["accessdenieddetail"]["requiredScopes"] == ["Workflow.Instance.Read"]


def test_missing_scope_legacy_60011_and_granted_scope_works() -> None:
    emu = make_emu(scopes={"qyapi_get_member"})
    r = emu.client.post(
        "/topapi/report/list", params=emu.q(), json={"start_time": 0, "end_time": 1, "cursor": 0, "size": 10}
    )
    assert r.status_code == 200 and r.json()["errcode"] == 60011
    admin = emu.state.org.people.admin
    ok = emu.client.post("/topapi/v2/user/get", params=emu.q(), json={"userid": admin.userid}).json()
    assert ok["errcode"] == 0 and ok["result"]["userid"] == admin.userid


def test_attachment_download_needs_the_write_scope() -> None:
    emu = make_emu(scopes={"Workflow.Instance.Read"})
    r = emu.client.post(
        "/v1.0/workflow/processInstances/spaces/files/urls/download",
        json={"processInstanceId": "x", "fileId": "1"},
        headers=emu.h(),
    )
    assert r.status_code == 403 and r.json()["accessdenieddetail"]["requiredScopes"] == [
        "Workflow.Instance.Write"
    ]


def test_unknown_paths_answer_in_their_generation() -> None:
    emu = make_emu()
    r = emu.client.get("/v1.0/nothing/here", headers=emu.h())
    assert r.status_code == 404 and r.json()["code"] == "InvalidAction.NotFound" and r.json()["requestid"]
    r = emu.client.post("/topapi/nothing", params=emu.q())
    assert r.json()["errcode"] == 404
    r = emu.client.get("/v1.0/workflow/processes/instanceIds/query", headers=emu.h())  # wrong method
    assert r.status_code == 405 and r.json()["code"] == "InvalidAction.NotFound"
