"""Targeted fetches against the emulator: an event stores exactly the record it names.

For each family with a single-record read, an emulator change announces itself over the Stream;
the running service captures it. Then, for the very event the service received:

* the stored item equals the emulator's truth (and a file's stored content its sha256);
* the targeted fetch alone (the same plan, without the families other events also touch) makes
  a handful of API calls, far fewer than the family's incremental;
* the family's incremental afterwards finds the item unchanged: the targeted fetch stored exactly
  the item the collector builds (no spurious version).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backup.emulator_env import attachment_sha256, stored_version
from dingvault.backup.stats import RunStats
from dingvault.cli.demo_run import truth_items
from dingvault.service.state import InboxEvent
from dingvault.service.targeted import plan_events

from .service_env import RunningService, mutate, wait_for

# A targeted fetch: a couple of reads per record (the record, its list entry or versions).
TARGETED_MAX_CALLS = 4


class Captured:
    """The service's committed event runs, with the events each one handled."""

    def __init__(self, svc: RunningService) -> None:
        self.svc = svc
        self.runs: list[tuple[RunStats, list[InboxEvent]]] = []
        coordinator = svc.app.coordinator
        forward = coordinator.on_committed

        def record(stats: RunStats, events: list[InboxEvent]) -> None:
            self.runs.append((stats, list(events)))
            if forward is not None:
                forward(stats, events)

        coordinator.on_committed = record

    def event(self, type_: str, match: dict[str, Any]) -> tuple[RunStats, InboxEvent]:
        def find() -> tuple[RunStats, InboxEvent] | None:
            for stats, events in self.runs:
                for ev in events:
                    if ev.type == type_ and all(_named(ev.data.get(k), v) for k, v in match.items()):
                        return stats, ev
            return None

        return wait_for(find, 60, f"a captured {type_} event naming {match}")


def _named(value: Any, wanted: Any) -> bool:
    return str(wanted) in [str(v) for v in value] if isinstance(value, list) else str(value) == str(wanted)


@pytest.fixture(scope="module")
def service(installed) -> Iterator[tuple[RunningService, Captured]]:
    with RunningService(installed) as svc:
        svc.wait_idle()
        yield svc, Captured(svc)


def targeted_only(svc: RunningService, ev: InboxEvent) -> RunStats:
    """The event's targeted fetch on its own (other families the event also touches left out)."""
    plan = plan_events([ev])
    assert plan.targeted_families, f"{ev.type} planned no targeted fetch: {plan}"
    plan.families.clear()
    plan.leavers.clear()
    stats = svc.call(svc.app.coordinator.run_events(plan))
    assert stats.status == "ok", stats.to_dict()["family_failures"]
    return stats


def family_incremental(svc: RunningService, family: str) -> RunStats:
    stats = svc.call(svc.app.coordinator.backup_families("incremental", [family], label="test"))
    assert stats.status == "ok", stats.to_dict()["family_failures"]
    return stats


def calls(stats: RunStats) -> int:
    return sum(n for endpoint, n in stats.api_calls.items() if endpoint != "download")


def truth_of(inst, kind: str, source_id: str) -> dict[str, Any]:
    (row,) = [t for t in truth_items(inst.emu.base_url, kind) if str(t["id"]) == source_id]
    return row


def versions(svc: RunningService, kind: str, source_id: str) -> int:
    return len(svc.session.catalog.item_versions(kind, source_id))


def check_cheaper_and_identical(
    svc: RunningService, ev: InboxEvent, family: str, key: tuple[str, str]
) -> None:
    before = versions(svc, *key)
    alone = targeted_only(svc, ev)
    assert calls(alone) <= TARGETED_MAX_CALLS, dict(alone.api_calls)
    assert f"{family}:{family}" not in alone.families_done, "the family incremental ran instead"
    incremental = family_incremental(svc, family)
    assert calls(incremental) >= 5 * max(1, calls(alone)), (
        dict(alone.api_calls),
        dict(incremental.api_calls),
    )
    assert versions(svc, *key) == before, f"{key}: the family run stored another version of the targeted item"


def test_a_new_user_is_read_alone_and_stored_as_the_collector_stores_it(installed, service):
    svc, captured = service
    joined = mutate(installed, "user.join", rand=4242, name="事件測試員")
    stats, ev = captured.event("user_add_org", {"userId": joined["userid"]})
    assert (
        "contacts:contacts-events" in stats.families_done and "contacts:contacts" not in stats.families_done
    )
    doc = stored_version(svc.session, "user", joined["userid"])
    truth = truth_of(installed, "user", joined["userid"])
    assert doc["raw"]["list"]["name"] == truth["name"] == "事件測試員"
    assert doc["fields"]["dept_id_list"] == truth["dept_id_list"]
    check_cheaper_and_identical(svc, ev, "contacts", ("user", joined["userid"]))


def test_a_moved_user_is_stored_with_the_new_department(installed, service):
    svc, captured = service
    userid = sorted(
        str(u["id"]) for u in truth_items(installed.emu.base_url, "user") if not u.get("deleted")
    )[5]
    moved = mutate(installed, "user.move", userid=userid, rand=77)
    _stats, ev = captured.event("user_modify_org", {"userId": userid})
    doc = stored_version(svc.session, "user", userid)
    assert (
        doc["fields"]["dept_id_list"]
        == [moved["dept_id"]]
        == truth_of(installed, "user", userid)["dept_id_list"]
    )
    check_cheaper_and_identical(svc, ev, "contacts", ("user", userid))


def test_department_create_rename_and_remove(installed, service):
    svc, captured = service
    created = mutate(installed, "dept.create", name="事件測試部")
    dept_id = str(created["dept_id"])
    _stats, ev = captured.event("org_dept_create", {"deptId": dept_id})
    assert stored_version(svc.session, "department", dept_id)["fields"]["name"] == "事件測試部"
    renamed = mutate(installed, "dept.rename", dept_id=created["dept_id"], name="事件測試部（改名）")
    _stats, ev = captured.event("org_dept_modify", {"deptId": dept_id})
    doc = stored_version(svc.session, "department", dept_id)
    assert doc["fields"]["name"] == renamed["name"] == truth_of(installed, "department", dept_id)["name"]
    assert doc["fields"]["parent_id"] == created["parent_id"]
    check_cheaper_and_identical(svc, ev, "contacts", ("department", dept_id))
    mutate(installed, "dept.remove", dept_id=created["dept_id"])
    captured.event("org_dept_remove", {"deptId": dept_id})
    info = svc.session.catalog.get_item("department", dept_id)
    assert info is not None and info.deleted_at_source, "a removed department is marked deleted, not dropped"
    assert truth_of(installed, "department", dept_id).get("deleted") is True
    assert versions(svc, "department", dept_id) == 2  # created, renamed: both kept


def _drive_file(inst, svc: RunningService) -> tuple[str, str]:
    """A plain file of an organisation drive space the vault holds."""
    drive = {
        str(s["id"]) for s in truth_items(inst.emu.base_url, "drive_space") if s.get("origin") == "drive"
    }
    for t in truth_items(inst.emu.base_url, "file"):
        space_id, dentry_id = str(t["id"]).split("/")
        if (
            space_id in drive
            and not t.get("deleted")
            and t["type"] == "FILE"
            and t.get("storageDriver") != "ALIDOC"
            and svc.session.catalog.get_item("file", str(t["id"])) is not None
        ):
            return space_id, dentry_id
    raise AssertionError("no plain drive file in the vault")


def test_a_file_update_stores_the_new_version_and_its_content(installed, service):
    svc, captured = service
    space_id, dentry_id = _drive_file(installed, svc)
    source_id = f"{space_id}/{dentry_id}"
    updated = mutate(installed, "file.update", spaceId=space_id, dentryId=dentry_id)
    stats, ev = captured.event("storage_dentry_update", {"dentryId": dentry_id})
    assert "files:files-events" in stats.families_done and "files:files" not in stats.families_done
    doc = stored_version(svc.session, "file", source_id)
    truth = truth_of(installed, "file", source_id)
    assert doc["fields"]["version"] == updated["version"] == truth["version"]
    assert attachment_sha256(svc.session, doc["attachments"][0]) == truth["sha256"]
    assert len(doc["raw"]["versions"]) == updated["version"], "the version list is stored with the file"
    check_cheaper_and_identical(svc, ev, "files", ("file", source_id))


def test_an_uploaded_file_and_its_deletion(installed, service):
    svc, captured = service
    space_id, _ = _drive_file(installed, svc)
    uploaded = mutate(installed, "file.upload", spaceId=space_id, extension="txt", rand=5151)
    source_id = f"{space_id}/{uploaded['dentryId']}"
    captured.event("storage_dentry_create", {"dentryId": uploaded["dentryId"]})
    doc = stored_version(svc.session, "file", source_id)
    truth = truth_of(installed, "file", source_id)
    assert doc["fields"]["name"] == truth["name"] == uploaded["name"]
    assert attachment_sha256(svc.session, doc["attachments"][0]) == truth["sha256"]
    mutate(installed, "file.delete", spaceId=space_id, dentryId=uploaded["dentryId"])
    stats, _ev = captured.event("storage_dentry_delete", {"dentryId": uploaded["dentryId"]})
    assert stats.deleted["file"] == 1 and calls(stats) <= TARGETED_MAX_CALLS, dict(stats.api_calls)
    info = svc.session.catalog.get_item("file", source_id)
    assert info is not None and info.deleted_at_source and truth_of(installed, "file", source_id)["deleted"]
    assert stored_version(svc.session, "file", source_id)["attachments"], "the content stays in the vault"


def test_a_folder_event_falls_back_to_the_files_incremental(installed, service):
    svc, captured = service
    space_id, _ = _drive_file(installed, svc)
    folder = mutate(installed, "folder.create", spaceId=space_id, rand=6161)
    stats, _ev = captured.event("storage_dentry_create", {"dentryId": folder["dentryId"]})
    assert "files:files-events" in stats.families_done
    assert wait_for(
        lambda: svc.session.catalog.get_item("file", f"{space_id}/{folder['dentryId']}"), 5, "folder"
    )


def test_calendar_changes_read_only_the_named_calendar(installed, service):
    svc, captured = service
    union = sorted(
        str(u["unionid"]) for u in truth_items(installed.emu.base_url, "user") if not u.get("deleted")
    )[2]
    # An event of the generated calendar (changed long ago): its new updateTime is a new version.
    updated = mutate(installed, "calendar.update", unionId=union, rand=99)
    source_id = f"{union}/{updated['eventId']}"
    stats, _ev = captured.event("calendar_event_change", {"calendarEventId": updated["eventId"]})
    assert (
        "calendar:calendar-events" in stats.families_done and "calendar:calendar" not in stats.families_done
    )
    truth = truth_of(installed, "calendar_event", source_id)
    doc = stored_version(svc.session, "calendar_event", source_id)
    assert doc["fields"]["title"] == updated["summary"] == truth["summary"]
    assert (
        doc["raw"]["event"]["updateTime"] == truth["updateTime"]
        and doc["fields"]["status"] == truth["status"]
    )
    # The kept syncToken moved on: the calendar incremental finds nothing of it to store again.
    before = versions(svc, "calendar_event", source_id)
    incremental = family_incremental(svc, "calendar")
    assert versions(svc, "calendar_event", source_id) == before and incremental.new["calendar_event"] == 0
    assert calls(stats) <= TARGETED_MAX_CALLS and calls(incremental) >= 5 * calls(stats), (
        dict(stats.api_calls),
        dict(incremental.api_calls),
    )
    created = mutate(installed, "calendar.create", unionId=union, rand=98)
    created_id = f"{union}/{created['eventId']}"
    captured.event("calendar_event_change", {"calendarEventId": created["eventId"]})
    assert stored_version(svc.session, "calendar_event", created_id)["fields"]["status"] == "confirmed"
    mutate(installed, "calendar.delete", unionId=union, eventId=created["eventId"])
    wait_for(
        lambda: svc.session.catalog.get_item("calendar_event", created_id).deleted_at_source, 60, "deleted"
    )
    assert truth_of(installed, "calendar_event", created_id)["deleted"]


def test_a_leaver_is_marked_deleted_and_their_leave_record_stored(installed, service):
    svc, captured = service
    left = mutate(installed, "user.leave", rand=313)
    userid = left["userid"]
    captured.event("user_leave_org", {"userId": userid})
    info = svc.session.catalog.get_item("user", userid)
    assert info is not None and info.deleted_at_source, "the user record is kept, marked deleted"
    assert truth_of(installed, "user", userid)["deleted"] is True
    assert (
        stored_version(svc.session, "resigned_user", userid)["raw"]["leave_record"]["leaveTime"]
        == left["leaveTime"]
    )
