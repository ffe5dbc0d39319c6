"""Acceptance: records that go out of the API's reach between two runs (dingtalk-api.md §3.4, §5.2).

A disbanded group's file space answers `conversationNotExist`; a department group is known only
through its live department; "my docs" opens only as its owner. What the backup captured before
stays live in it; what it never saw is not expected; what joined and stays is captured.
"""

from __future__ import annotations

from dingvault.cli.demo_run import reachable_truth, truth_items

from .emulator_env import assert_complete, catalog_live, control, install, start_emulator


def _mutate(emu, op: str, **params) -> dict:
    return control(emu, "POST", "mutate", json={"op": op, **params})


def test_groups_spaces_and_my_docs_that_go_out_of_reach(tmp_path):
    emu = start_emulator()
    try:
        base = emu.base_url
        inst = install(emu, tmp_path)
        assert inst.backup("full").status == "ok"
        with inst.session() as s:
            spaces_before = catalog_live(s, "drive_space")
            files_before = catalog_live(s, "file")
        # A group (created by the app) whose file space holds files, captured by the full run.
        with_files = {str(f["id"]).split("/")[0] for f in truth_items(base, "file") if not f.get("deleted")}
        group = next(
            g
            for g in truth_items(base, "group")
            if g["origin"] == "api" and g["status"] == 1 and str(g["spaceId"]) in with_files
        )
        space = str(group["spaceId"])
        assert space in spaces_before
        _mutate(emu, "group.disband", openConversationId=group["id"])
        # A department (with its group) created and removed between the runs.
        dept = _mutate(emu, "dept.create")
        assert any(
            g.get("deptId") == dept["dept_id"] for g in truth_items(base, "group")
        )  # its group is born
        _mutate(emu, "dept.remove", dept_id=dept["dept_id"])
        # Someone who joins and leaves between the runs, and someone who joins and stays.
        gone = _mutate(emu, "user.join")
        truth_items(base, "wiki_workspace")  # the emulator gives a newcomer "my docs" when next looked at
        _mutate(emu, "user.leave", userid=gone["userid"])
        stays = _mutate(emu, "user.join")

        groups = {g["id"]: g for g in truth_items(base, "group")}
        (dept_group,) = [g for g in groups.values() if g.get("deptId") == dept["dept_id"]]
        assert dept_group["status"] == 2 and not dept_group.get("deleted")
        assert dept_group["id"] not in reachable_truth(base, "group")
        assert group["id"] in reachable_truth(base, "group")  # the app keeps its chatid
        assert space not in reachable_truth(base, "drive_space")
        assert not {f for f in reachable_truth(base, "file") if f.startswith(space + "/")}
        personal = {
            w.get("owner"): w["id"] for w in truth_items(base, "wiki_workspace") if w["type"] == "PERSONAL"
        }
        assert personal[gone["unionid"]] not in reachable_truth(base, "wiki_workspace")
        assert personal[stays["unionid"]] in reachable_truth(base, "wiki_workspace")

        assert inst.backup("incremental").status == "ok"
        with inst.session() as s:
            assert_complete(inst, s)
            # Captured before the group was disbanded: kept, and not taken for deleted.
            assert space in catalog_live(s, "drive_space")
            assert {f for f in files_before if f.startswith(space + "/")} <= catalog_live(s, "file")
            # A newcomer's "my docs" is found by the next run.
            assert personal[stays["unionid"]] in catalog_live(s, "wiki_workspace")
    finally:
        emu.stop()
