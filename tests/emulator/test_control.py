"""The control API: org info, truth, mutations (truth changes, events, cursors), random ops, persistence."""

from __future__ import annotations

from pathlib import Path

from emulator_support import Emu, make_emu

DAY = 86_400_000


def test_org_lists_credentials_bases_and_counts(emu: Emu) -> None:
    org = emu.org
    for key in (
        "corpId",
        "appKey",
        "appSecret",
        "robotCode",
        "agentId",
        "unifiedAppId",
        "apiBase",
        "oapiBase",
    ):
        assert org[key], key
    assert org["corpId"].startswith("ding")
    for kind in (
        "department",
        "user",
        "resigned_user",
        "approval_template",
        "approval",
        "attendance",
        "calendar_event",
        "todo",
        "report",
    ):
        assert org["counts"][kind] == len(emu.truth(kind)), kind
    assert org["counts"]["user"] == 50


def test_truth_jsonl_and_unknown_kind(emu: Emu) -> None:
    import json

    r = emu.client.get("/_emulator/truth", params={"kind": "user", "format": "jsonl"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == emu.truth("user")
    bad = emu.client.get("/_emulator/truth", params={"kind": "nope"})
    assert bad.status_code == 404 and "user" in bad.json()["kinds"]


def test_bad_mutations_are_400_and_change_nothing(emu: Emu) -> None:
    before = emu.truth("user")
    assert emu.client.post("/_emulator/mutate", json={"op": "no.such"}).status_code == 400
    assert (
        emu.client.post("/_emulator/mutate", json={"op": "user.leave", "userid": "ghost"}).status_code == 400
    )
    assert emu.client.post("/_emulator/mutate", content=b"[1,2").status_code == 400
    assert emu.client.post("/_emulator/mutate", json={"count": 3}).status_code == 400
    assert emu.truth("user") == before and emu.events == []


def test_approval_lifecycle_bumps_version_and_emits_bpms_events(emu: Emu) -> None:
    started = emu.mutate("approval.start")
    pid = started["processInstanceId"]
    item = next(a for a in emu.truth("approval") if a["id"] == pid)
    assert item["status"] == "RUNNING" and item["version"] == 1
    assert [e[0] for e in emu.events] == ["bpms_instance_change", "bpms_task_change"]
    assert emu.events[0][1]["type"] == "start" and emu.events[0][1]["processInstanceId"] == pid
    # The new instance is listed in today's window.
    now = emu.now_ms()
    ids = emu.client.post(
        "/v1.0/workflow/processes/instanceIds/query",
        json={"processCode": started["processCode"], "startTime": now - DAY, "maxResults": 20},
        headers=emu.h(),
    ).json()["result"]["list"]
    assert pid in ids
    emu.clock.advance(600)
    done = emu.mutate("approval.finish", processInstanceId=pid, result="refuse")
    assert done["version"] == 2
    item = next(a for a in emu.truth("approval") if a["id"] == pid)
    assert (item["status"], item["result"], item["version"]) == ("COMPLETED", "refuse", 2)
    finish = [d for name, d in emu.events if name == "bpms_instance_change" and d["type"] == "finish"]
    assert finish and finish[0]["result"] == "refuse"
    assert any(name == "bpms_task_change" and d["type"] == "finish" for name, d in emu.events)
    detail = emu.client.get(
        "/v1.0/workflow/processInstances", params={"processInstanceId": pid}, headers=emu.h()
    ).json()["result"]
    assert detail["status"] == "COMPLETED" and detail["result"] == "refuse" and "approverUserIds" in detail
    # Finishing twice is refused.
    assert (
        emu.client.post(
            "/_emulator/mutate", json={"op": "approval.finish", "processInstanceId": pid}
        ).status_code
        == 400
    )


def test_terminate_a_generated_running_approval(emu: Emu) -> None:
    running = [a for a in emu.truth("approval") if a["status"] == "RUNNING"]
    assert running
    out = emu.mutate("approval.terminate", processInstanceId=running[0]["id"])
    item = next(a for a in emu.truth("approval") if a["id"] == running[0]["id"])
    assert item["status"] == "TERMINATED" and item["version"] == 2 == out["version"]
    term = [d for name, d in emu.events if name == "bpms_instance_change"][-1]
    assert term["type"] == "terminate" and "result" not in term


def test_contact_mutations_change_truth_and_emit_events(emu: Emu) -> None:
    joined = emu.mutate("user.join")
    assert joined["userid"] in {u["id"] for u in emu.truth("user")}
    dept = emu.mutate("dept.create", name="澳門新項目組", parent_id=1)
    moved = emu.mutate("user.move", userid=joined["userid"], dept_id=dept["dept_id"])
    assert moved["dept_id"] == dept["dept_id"]
    r = emu.client.post("/topapi/user/listid", params=emu.q(), json={"dept_id": dept["dept_id"]}).json()
    assert r["result"]["userid_list"] == [joined["userid"]]
    left = emu.mutate("user.leave", userid=joined["userid"])
    users = {u["id"]: u for u in emu.truth("user")}
    assert users[joined["userid"]]["deleted"] is True
    assert left["userid"] in {u["id"] for u in emu.truth("resigned_user")}
    emu.mutate("dept.rename", dept_id=dept["dept_id"], name="澳門項目組")
    emu.mutate("dept.remove", dept_id=dept["dept_id"])
    d = next(x for x in emu.truth("department") if x["id"] == str(dept["dept_id"]))
    assert d["deleted"] is True and d["name"] == "澳門項目組"
    names = [name for name, _ in emu.events]
    assert names == [
        "user_add_org",
        "org_dept_create",
        "user_modify_org",
        "user_leave_org",
        "org_dept_modify",
        "org_dept_remove",
    ]
    assert emu.events[0][1]["userId"] == [joined["userid"]] and emu.events[1][1]["deptId"] == [
        dept["dept_id"]
    ]
    # A non-empty department cannot be removed.
    busy = emu.state.org.people.users[9].dept_id_list[0]
    assert (
        emu.client.post("/_emulator/mutate", json={"op": "dept.remove", "dept_id": busy}).status_code == 400
    )


def test_todo_and_report_mutations(emu: Emu) -> None:
    t = emu.mutate("todo.create", subject="跟進付款")
    emu.clock.advance(60)
    emu.mutate("todo.update", taskId=t["taskId"], isDone=True)
    item = next(x for x in emu.truth("todo") if x["id"] == t["taskId"])
    assert item["isDone"] is True
    emu.mutate("todo.delete", taskId=t["taskId"])
    assert next(x for x in emu.truth("todo") if x["id"] == t["taskId"])["deleted"] is True
    assert [n for n, _ in emu.events] == ["todo_task_create", "todo_task_update", "todo_task_delete"]
    before = len(emu.truth("report"))
    rep = emu.mutate("report.create", template_name="日報", text="今日完成付款審批")
    assert len(emu.truth("report")) == before + 1
    now = emu.now_ms()
    listed = emu.client.post(
        "/topapi/report/list",
        params=emu.q(),
        json={"start_time": now - DAY, "end_time": now + 1, "cursor": 0, "size": 20},
    ).json()
    assert rep["report_id"] in {r["report_id"] for r in listed["result"]["data_list"]}


def test_random_ops_are_deterministic_and_span_families() -> None:
    a, b = make_emu(), make_emu()
    ra = a.client.post("/_emulator/mutate", json={"op": "random", "count": 40, "seed": 9}).json()["results"]
    rb = b.client.post("/_emulator/mutate", json={"op": "random", "count": 40, "seed": 9}).json()["results"]
    strip = [{k: v for k, v in r.items() if k not in ("leaveTime",)} for r in ra]
    assert strip == [{k: v for k, v in r.items() if k not in ("leaveTime",)} for r in rb]
    families = {r["op"].split(".")[0] for r in ra}
    assert {"approval", "user", "calendar", "todo"} <= families
    assert a.truth("approval") == b.truth("approval")


def test_state_dir_replays_mutations_after_restart(tmp_path: Path) -> None:
    first = make_emu(state_dir=str(tmp_path))
    pid = first.mutate("approval.start")["processInstanceId"]
    first.mutate("approval.finish", processInstanceId=pid, result="agree")
    joined = first.mutate("user.join")["userid"]
    first.client.post("/_emulator/mutate", json={"op": "random", "count": 10, "seed": 2})
    expected = {
        k: first.truth(k) for k in ("approval", "user", "calendar_event", "todo", "report", "department")
    }
    assert (tmp_path / "mutations.jsonl").read_text().count("\n") >= 13
    # A torn last line (crash mid-write) is skipped, not fatal.
    with open(tmp_path / "mutations.jsonl", "a") as f:
        f.write('{"op": "user.jo')
    second = make_emu(state_dir=str(tmp_path))
    for kind, items in expected.items():
        assert second.truth(kind) == items, kind
    assert joined in {u["id"] for u in second.truth("user")}


def test_clock_endpoint_moves_time_forward(emu: Emu) -> None:
    tok = emu.token()
    r = emu.client.post("/_emulator/clock", json={"advanceSeconds": 7201})
    assert r.status_code == 200
    assert (
        emu.client.post(
            "/topapi/v2/department/listsub", params={"access_token": tok}, json={"dept_id": 1}
        ).json()["errcode"]
        == 42001
    )
    assert emu.client.post("/_emulator/clock", json={"advanceSeconds": -5}).status_code == 400


def test_state_dir_of_another_company_or_unwritable_is_refused(tmp_path: Path) -> None:
    import pytest

    first = make_emu(state_dir=str(tmp_path), seed=1)
    first.mutate("user.join")
    with pytest.raises(ValueError, match="seed 1"):
        make_emu(state_dir=str(tmp_path), seed=2)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="--state"):
        make_emu(state_dir=str(blocker))


def test_event_data_uses_only_documented_fields(emu: Emu) -> None:
    instance_fields = {
        "processInstanceId",
        "processCode",
        "bizCategoryId",
        "businessId",
        "title",
        "type",
        "result",
        "createTime",
        "finishTime",
        "staffId",
        "url",
        "businessType",
    }
    task_fields = {
        "processInstanceId",
        "processCode",
        "bizCategoryId",
        "businessId",
        "title",
        "type",
        "result",
        "remark",
        "taskId",
        "createTime",
        "finishTime",
        "staffId",
    }
    pid = emu.mutate("approval.start")["processInstanceId"]
    emu.mutate("approval.finish", processInstanceId=pid)
    emu.mutate("user.join")
    emu.mutate("dept.create")
    for name, data in emu.events:
        if name == "bpms_instance_change":
            assert set(data) <= instance_fields, set(data) - instance_fields
        elif name == "bpms_task_change":
            assert set(data) <= task_fields, set(data) - task_fields
        elif name.startswith("user_"):
            assert set(data) == {"timeStamp", "userId"} and isinstance(data["timeStamp"], str)
        elif name.startswith("org_dept_"):
            assert set(data) == {"deptId"} and isinstance(data["deptId"][0], int)
    assert {n for n, _ in emu.events} == {
        "bpms_instance_change",
        "bpms_task_change",
        "user_add_org",
        "org_dept_create",
    }
