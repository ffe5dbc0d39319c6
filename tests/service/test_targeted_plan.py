"""Planning events into targeted reads, family runs and fall-backs (no emulator needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dingvault.service.fetch_common import FallBack, VaultLookup, ids_of, owner_known
from dingvault.service.state import InboxEvent
from dingvault.service.targeted import TargetedCollector, event_item_key, is_direct, plan_events
from dingvault.source.items import AllScope, Batch, Item


def _ev(i: int, type_: str, data: dict[str, Any], born_ms: int | None = None) -> InboxEvent:
    return InboxEvent(f"e{i}", "event", type_, born_ms, 0.0, data, 0)


def test_each_event_family_names_its_record():
    plan = plan_events([
        _ev(1, "user_add_org", {"timeStamp": "1685501863357", "userId": ["u1", "u2"]}),
        _ev(2, "user_modify_org", {"userId": ["u2"]}),
        _ev(3, "user_leave_org", {"timeStamp": "1685501863357", "userId": ["u9"]}),
        _ev(4, "org_dept_create", {"deptId": [432825033]}),
        _ev(5, "org_dept_remove", {"deptId": ["77"]}),
        _ev(6, "storage_dentry_update", {"spaceId": "s1", "dentryId": "d1", "type": "FILE", "unionId": "x"}),
        _ev(7, "calendar_event_change", {"calendarEventId": "c", "unionIdList": ["n1", "n2"]}),
        _ev(8, "calendar_event_change", {"calendarEventId": "c2", "unionIdList": ["n2"]}),
    ])  # fmt: skip
    assert plan.contacts.users == {"u1", "u2"}
    assert plan.contacts.leavers == {"u9": 1685501863357}
    assert plan.contacts.departments == {432825033, 77}
    assert list(plan.dentries) == ["s1/d1"] and plan.dentries["s1/d1"].type == "FILE"
    assert plan.calendars == ["n1", "n2"]
    assert plan.targeted_families == {"contacts", "files", "calendar"}
    # No family incremental of their own; what the changes bring elsewhere still runs.
    assert plan.families == {"groups", "files"}
    assert plan.leavers == ["u9"]


def test_an_event_without_the_id_it_needs_runs_its_family():
    plan = plan_events([
        _ev(1, "user_modify_org", {"timeStamp": "1"}),
        _ev(2, "storage_dentry_delete", {"spaceId": "s1"}),
        _ev(3, "calendar_event_change", {"calendarEventId": "c"}),
        _ev(4, "org_dept_modify", {"deptId": ["not a number"]}),
        _ev(5, "todo_task_update", {"taskId": "t"}),  # no single-todo read is documented
    ])  # fmt: skip
    assert not plan.targeted_families
    assert plan.families == {"contacts", "files", "calendar", "todo", "groups"}


def test_lenient_ids_and_direct_events():
    assert ids_of("u1") == ["u1"] and ids_of(["a", None, "", 3]) == ["a", "3"] and ids_of(None) == []
    plan = plan_events([_ev(1, "user_active_org", {"userId": "u5"})])
    assert plan.contacts.users == {"u5"}
    assert is_direct(_ev(2, "storage_dentry_create", {"spaceId": "s", "dentryId": "d", "type": "FILE"}))
    assert is_direct(_ev(3, "calendar_event_change", {"unionIdList": ["n"]}))
    assert not is_direct(_ev(4, "user_add_org", {"userId": ["u"]}))  # also groups and files
    assert not is_direct(_ev(5, "user_leave_org", {"userId": ["u"]}))  # the offboarding follows
    assert not is_direct(_ev(6, "chat_update_title", {"chatId": "c"}))


def test_items_with_attachments_are_known_by_their_event():
    assert event_item_key(_ev(1, "storage_dentry_update", {"spaceId": "s", "dentryId": "d"})) == (
        "file",
        "s/d",
    )
    assert event_item_key(_ev(2, "bpms_task_change", {"processInstanceId": "p"})) == ("approval", "p")
    assert event_item_key(_ev(3, "user_add_org", {"userId": ["u"]})) is None


class _Delegate:
    def __init__(self) -> None:
        self.modes: list[str] = []

    async def collect(self, *, mode: str, cursors: Any, scope: Any):
        self.modes.append(mode)
        yield Batch(items=[Item("user", "from-family", {"list": {}})])


def _collect(collector: TargetedCollector) -> list[Batch]:
    async def run() -> list[Batch]:
        return [b async for b in collector.collect(mode="incremental", cursors={}, scope=AllScope())]

    return asyncio.run(run())


def test_a_fetch_that_cannot_identify_its_record_runs_the_family_incremental():
    delegate = _Delegate()

    async def cannot(_cursors: Any, _scope: Any) -> list[Batch]:
        raise FallBack("space s1 is not in the vault yet")

    collector = TargetedCollector("files-events", "files", cannot, delegate)
    batches = _collect(collector)
    assert [i.source_id for b in batches for i in b.items] == ["from-family"]
    assert delegate.modes == ["incremental"] and collector.fell_back == "space s1 is not in the vault yet"

    async def found(_cursors: Any, _scope: Any) -> list[Batch]:
        return [Batch(items=[Item("user", "u1", {"list": {}})]), Batch(deleted=["u2"], deleted_kind="user")]

    direct = TargetedCollector("contacts-events", "contacts", found, _Delegate())
    batches = _collect(direct)
    assert [i.source_id for i in batches[0].items] == ["u1"] and batches[1].deleted == ["u2"]
    assert direct.fell_back is None


class _Catalog:
    def iter_latest_versions(self, kind: str):
        assert kind == "user"
        return []


def test_an_owner_the_vault_does_not_know_falls_back():
    lookup = VaultLookup(_Catalog(), vault=None)
    item = Item("file", "s/d", {"dentry": {}}, fields={"owner": "union-unknown"})
    with pytest.raises(FallBack):
        owner_known(item, lookup)
    lookup._people = {"union-known": "user7"}
    item = Item("file", "s/d", {"dentry": {}}, fields={"owner": "union-known"})
    assert owner_known(item, lookup).fields == {"owner": "user7", "owner_unionid": "union-known"}


class _NoCalls:
    async def api(self, *a: Any, **kw: Any) -> Any:
        raise AssertionError("no API call expected")

    oapi = api


def test_a_burst_beyond_the_limit_runs_the_family_without_reading_record_by_record():
    from dingvault.service.fetch_common import MAX_RECORDS
    from dingvault.service.fetch_contacts import ContactChanges, fetch_contacts
    from dingvault.service.fetch_files import DentryRef, fetch_dentries

    refs = [DentryRef("s", str(i), "FILE") for i in range(MAX_RECORDS + 1)]
    with pytest.raises(FallBack, match="files changed at once"):
        asyncio.run(fetch_dentries(_NoCalls(), refs, AllScope(), VaultLookup(_Catalog(), None)))
    changes = ContactChanges(users={f"u{i}" for i in range(MAX_RECORDS + 1)})
    with pytest.raises(FallBack, match="users and departments changed at once"):
        asyncio.run(fetch_contacts(_NoCalls(), changes, AllScope(), settings=None))
    # A folder is never read on its own: every file below it may have changed.
    with pytest.raises(FallBack, match="FOLDER"):
        asyncio.run(
            fetch_dentries(
                _NoCalls(), [DentryRef("s", "f", "FOLDER")], AllScope(), VaultLookup(_Catalog(), None)
            )
        )
