"""Each collector's full listing equals the emulator's ground truth for the demo company.

The emulator (`dingtalk_emulator`, a separate implementation of the same API reference) runs on a
free loopback port; ids are compared with `GET /_emulator/truth?kind=K`, downloaded contents by
sha256. Where the API cannot reach something (approvals older than 365 days, todos done more than
180 days ago, groups nobody told the connector about) the expectation says so explicitly.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from dingtalk_emulator.server import RunningEmulator
from dingvault.source.collectors import (
    ApprovalsCollector,
    AttendanceCollector,
    CalendarCollector,
    CollectorContext,
    CollectorSettings,
    ContactsCollector,
    FilesCollector,
    GroupsCollector,
    ReportsCollector,
    TodoCollector,
)
from dingvault.source.collectors import contacts as contacts_module

from .emulator_support import AllScope, api_group_chat_ids, client_for, fetch_all, live_ids, run, truth

DAY_MS = 86_400_000


async def test_contacts_full_listing_equals_truth(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        result = await run([ContactsCollector(client)])
    assert result.error is None
    for kind in ("department", "user", "resigned_user"):
        assert result.ids(kind) == live_ids(emulator, kind), kind
    assert ("department", "org") in result.complete and ("user", "org") in result.complete
    # raw keeps the API payload verbatim; fields are normalised
    user = result.of_kind("user")[0]
    assert set(user.raw) == {"list"} and "dept_id_list" in user.raw["list"]
    assert user.fields["dept_id_list"] == user.raw["list"]["dept_id_list"]


async def test_contacts_with_user_details(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        context = CollectorContext(client, CollectorSettings(user_details=True))
        result = await run([ContactsCollector(client, context)])
        assert client.calls["/topapi/v2/user/get"] == len(live_ids(emulator, "user"))
    assert result.error is None
    for user in result.of_kind("user"):
        assert user.raw["detail"]["userid"] == user.source_id
        assert "role_list" in user.raw["detail"]


async def test_users_leave_in_batches_while_their_details_are_read(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contacts_module, "BATCH_SIZE", 10)
    total = len(live_ids(emulator, "user"))
    sizes: list[int] = []
    details_read_at_first: int | None = None
    async with client_for(emulator) as client:
        context = CollectorContext(client, CollectorSettings(user_details=True))
        async for batch in ContactsCollector(client, context).collect(
            mode="full", cursors={}, scope=AllScope()
        ):
            users = [item for item in batch.items if item.kind == "user"]
            if users and details_read_at_first is None:
                details_read_at_first = client.calls["/topapi/v2/user/get"]
            if users:
                sizes.append(len(users))
                assert all("detail" in user.raw for user in users)
    assert sum(sizes) == total and max(sizes) <= 10
    # The first users were handed on long before the last detail was read (not held for the org).
    assert details_read_at_first is not None and details_read_at_first < total // 2


async def test_approvals_full_listing_and_attachments_equal_truth(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        collector = ApprovalsCollector(client)
        result = await run([collector])
        assert result.error is None
        assert result.ids("approval_template") == live_ids(emulator, "approval_template")
        everything = {t["id"]: t for t in truth(emulator, "approval")}
        reachable = {
            i
            for i, t in everything.items()
            if t["createTime"] >= time.time() * 1000 - 365 * DAY_MS + 2 * 3600_000
        }
        got = result.ids("approval")
        assert reachable <= got <= set(everything)
        assert len(reachable) > 100
        expected_hashes = {a["fileId"]: a["sha256"] for i in got for a in everything[i]["attachments"]}
        assert expected_hashes, "the demo company has approval attachments"
        seen: dict[str, str] = {}
        for item in result.of_kind("approval"):
            assert item.container and item.container.startswith(item.fields["process_code"] + "/")
            for ref, content in zip(item.attachments, await fetch_all(collector, item), strict=True):
                seen[ref.ref["fileId"]] = hashlib.sha256(content).hexdigest()
        assert seen == expected_hashes


async def test_files_full_listing_and_contents_equal_truth(emulator: RunningEmulator) -> None:
    settings = CollectorSettings(known_chat_ids=api_group_chat_ids(emulator))
    async with client_for(emulator) as client:
        collector = FilesCollector(client, CollectorContext(client, settings))
        result = await run([collector])
        assert result.error is None, result.error
        files = {t["id"]: t for t in truth(emulator, "file") if not t.get("deleted")}
        assert result.ids("file") == set(files)
        spaces_with_files = {fid.split("/")[0] for fid in files}
        all_spaces = live_ids(emulator, "drive_space")
        # An empty knowledge base's space is found only where its root node converts to storage ids
        # (undocumented); every other space must be found.
        wiki = {t["id"] for t in truth(emulator, "drive_space") if t["origin"] == "wiki"}
        must = {sid for sid in all_spaces if sid not in wiki or sid in spaces_with_files}
        assert must <= result.ids("drive_space") <= all_spaces
        for kind in ("wiki_workspace", "wiki_node", "doc"):
            assert result.ids(kind) == live_ids(emulator, kind), kind
        docs = {t["id"]: t for t in truth(emulator, "doc")}
        for doc in result.of_kind("doc"):
            assert doc.fields["sha256"] == docs[doc.source_id]["sha256"]
            assert doc.fields["block_count"] == docs[doc.source_id]["block_count"]
        users = live_ids(emulator, "user")
        owned = [f for f in result.of_kind("file") if f.fields.get("owner_unionid")]
        assert owned and all(f.fields["owner"] in users | {None} for f in owned)
        assert any(f.fields["owner"] in users for f in owned)  # unionIds resolved to userids
        downloaded = 0
        for item in result.of_kind("file"):
            expected = files[item.source_id]
            if expected["type"] != "FILE" or expected.get("storageDriver") == "ALIDOC":
                assert not item.attachments
                continue
            content = b"".join([c async for c in collector.open_attachment(item.attachments[0])])
            assert hashlib.sha256(content).hexdigest() == expected["sha256"], item.source_id
            downloaded += 1
            older = {
                v["version"]: v["sha256"]
                for v in expected.get("versions", [])
                if v["version"] != expected["version"]
            }
            for ref in item.attachments[1:]:
                blob = b"".join([c async for c in collector.open_attachment(ref)])
                assert hashlib.sha256(blob).hexdigest() == older[ref.ref["version"]]
        assert downloaded > 50


async def test_attendance_calendar_reports_equal_truth(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        context = CollectorContext(client)
        result = await run(
            [
                AttendanceCollector(client, context),
                CalendarCollector(client, context),
                ReportsCollector(client, context),
            ]
        )
    assert result.error is None
    for kind in ("attendance", "calendar_event", "report"):
        assert result.ids(kind) == live_ids(emulator, kind), kind


async def test_todos_equal_truth_within_the_api_reach(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        result = await run([TodoCollector(client)])
    assert result.error is None
    now = time.time() * 1000
    everything = {t["id"]: t for t in truth(emulator, "todo") if not t.get("deleted")}
    reachable = {
        i for i, t in everything.items() if not t["isDone"] or now - t["modifiedTime"] < 179 * DAY_MS
    }
    assert reachable <= result.ids("todo") <= set(everything)


async def test_groups_equal_truth_with_configured_api_groups(emulator: RunningEmulator) -> None:
    async with client_for(emulator) as client:
        without = await run([GroupsCollector(client)])
        settings = CollectorSettings(known_chat_ids=api_group_chat_ids(emulator))
        with_config = await run([GroupsCollector(client, CollectorContext(client, settings))])
    everything = live_ids(emulator, "group")
    dept_groups = {
        t["id"] for t in truth(emulator, "group") if t.get("origin") == "dept" and not t.get("deleted")
    }
    assert without.ids("group") == dept_groups
    assert with_config.error is None
    assert with_config.ids("group") == everything


def _version_keys(result: Any) -> dict[tuple[str, str], str | None]:
    return {key: item.version_key for key, item in result.items.items()}


def _is_success(value: Any) -> bool:
    return "skipped" not in value
