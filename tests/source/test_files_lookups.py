"""Files collector: lookups remembered between runs (a space's recycle bin, a knowledge base's
storage space) save calls in incremental runs, are asked for again when refused, and never cost
a deletion or a change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dingtalk_emulator.server import RunningEmulator, serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import CollectorContext, CollectorSettings, FilesCollector
from dingvault.source.collectors import storage as st
from dingvault.source.collectors.files import WIKI_SPACE_PREFIX

from .emulator_support import RunResult, client_for, run, truth


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    yield emu
    emu.stop()


def _settings(emu: RunningEmulator) -> CollectorSettings:
    chats = [g["chatId"] for g in truth(emu, "group") if g.get("origin") == "api" and not g.get("deleted")]
    return CollectorSettings(known_chat_ids=chats)


async def _files_run(
    emu: RunningEmulator, mode: str, cursors: dict[tuple[str, str], dict[str, Any]] | None = None
) -> tuple[RunResult, dict[str, int]]:
    async with client_for(emu) as client:
        result = await run(
            [FilesCollector(client, CollectorContext(client, _settings(emu)))], mode=mode, cursors=cursors
        )
        return result, dict(client.calls)


def _mutate(emu: RunningEmulator, op: str, **params: Any) -> dict[str, Any]:
    answer = httpx.post(f"{emu.base_url}/_emulator/mutate", json={"op": op, **params}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    assert "skipped" not in body and "error" not in body, body
    return body


def _wiki_space_with_files(full: RunResult) -> str:
    wiki = {i.source_id for i in full.of_kind("drive_space") if i.fields["origin"] == "wiki"}
    with_files = sorted({f.container for f in full.of_kind("file") if f.container in wiki})
    assert with_files, "the demo company has knowledge bases with files"
    return with_files[0]


def _space_cursors_updated(result: RunResult) -> dict[str, dict[str, Any]]:
    return {b.cursor.container: b.cursor.state for b in result.batches if b.cursor is not None}


async def test_incremental_reuses_remembered_lookups_and_still_sees_deletions(
    emulator: RunningEmulator,
) -> None:
    full, full_calls = await _files_run(emulator, "full")
    assert full.error is None, full.error
    spaces = full.ids("drive_space")
    wiki_links = {c: s for (_, c), s in full.cursors.items() if c.startswith(WIKI_SPACE_PREFIX)}
    assert wiki_links and all(s["space_id"] in spaces for s in wiki_links.values())
    assert all(full.cursors[("files", sid)].get("bin") for sid in spaces)
    assert full_calls[st.UUID_TO_DENTRY] >= len(wiki_links)

    wiki_space = _wiki_space_with_files(full)
    gone_drive = _mutate(emulator, "file.delete", rand=3)
    gone_wiki = _mutate(emulator, "file.delete", spaceId=wiki_space, rand=1)
    added = _mutate(emulator, "file.upload", spaceId=wiki_space, rand=5, extension="txt")

    incremental, calls = await _files_run(emulator, "incremental", full.cursors)
    assert incremental.error is None, incremental.error
    # Neither lookup is asked for again; every space's recycle bin is still read.
    assert calls.get(st.RECYCLE_BIN, 0) == 0
    assert calls.get(st.UUID_TO_DENTRY, 0) == 0
    assert calls[st.RECYCLE_ITEMS] >= len(spaces)
    deleted = {sid for kind, sid in incremental.deleted if kind == "file"}
    for gone in (gone_drive, gone_wiki):
        assert {f"{gone['spaceId']}/{d}" for d in gone["deleted"]} <= deleted
    assert f"{wiki_space}/{added['dentryId']}" in incremental.ids("file")
    # The remembered knowledge-base space is still announced as a space.
    assert wiki_space in incremental.ids("drive_space")


async def test_refused_remembered_lookups_are_asked_for_again(emulator: RunningEmulator) -> None:
    full, _ = await _files_run(emulator, "full")
    assert full.error is None, full.error
    wiki_space = _wiki_space_with_files(full)
    link = next(
        c
        for (_, c), s in full.cursors.items()
        if c.startswith(WIKI_SPACE_PREFIX) and s["space_id"] == wiki_space
    )
    cursors = dict(full.cursors)
    bins = {c: s["bin"] for (_, c), s in full.cursors.items() if s.get("bin")}
    for container in bins:
        cursors[("files", container)] = {**cursors[("files", container)], "bin": "rb-no-such-bin"}
    cursors[("files", link)] = {"space_id": "no-such-space"}
    gone = _mutate(emulator, "file.delete", spaceId=wiki_space, rand=2)

    incremental, calls = await _files_run(emulator, "incremental", cursors)
    assert incremental.error is None, incremental.error
    # Each refused bin id was asked for again, once per space, and the right one remembered.
    assert calls[st.RECYCLE_BIN] == len(bins)
    updated = _space_cursors_updated(incremental)
    assert {c: updated[c].get("bin") for c in bins} == bins
    assert {f"{wiki_space}/{d}" for d in gone["deleted"]} <= {s for _, s in incremental.deleted}
    # The refused knowledge-base space was found again and read; the stale id left no trace.
    assert updated[link] == {"space_id": wiki_space}
    assert wiki_space in updated and wiki_space in incremental.ids("drive_space")
    assert "no-such-space" not in incremental.ids("drive_space")
    assert "no-such-space" not in updated


async def test_each_space_and_knowledge_base_commits_its_cursor_with_or_after_its_last_items(
    emulator: RunningEmulator,
) -> None:
    full, _ = await _files_run(emulator, "full")
    assert full.error is None, full.error
    cursor_at: dict[str, int] = {}
    last_item_at: dict[str, int] = {}
    space_at: dict[str, int] = {}
    for index, batch in enumerate(full.batches):
        if batch.cursor is not None:
            assert batch.cursor.container not in cursor_at, "one cursor per space and run"
            cursor_at[batch.cursor.container] = index
        for item in batch.items:
            if item.kind == "drive_space":
                space_at[item.source_id] = index
            elif item.kind in ("file", "wiki_node"):
                owner = item.container if item.kind == "file" else f"wiki:{item.container}"
                last_item_at[owner] = index
    assert last_item_at and all(cursor_at[c] >= i for c, i in last_item_at.items())
    files_first = {}
    for index, batch in enumerate(full.batches):
        for item in batch.items:
            if item.kind == "file":
                files_first.setdefault(item.container, index)
    assert all(space_at[s] <= i for s, i in files_first.items())
    # Fewer batches than pages plus cursors: a space's item and cursor ride with its pages.
    spaces_with_files = len(files_first)
    assert sum(1 for b in full.batches if b.items and b.cursor is not None) >= spaces_with_files


async def test_a_space_read_ahead_by_a_later_route_is_dropped_when_an_earlier_route_finds_it(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "my docs" space is both a person's drive space and a knowledge base's space: the person
    reads it. If the last run read it through the knowledge base, this run reads it ahead that
    way, and drops what it read when the person's listing claims it."""
    full, _ = await _files_run(emulator, "full")
    assert full.error is None, full.error
    linked = {s["space_id"] for (_, c), s in full.cursors.items() if c.startswith(WIKI_SPACE_PREFIX)}
    target = next(
        i.source_id
        for i in full.of_kind("drive_space")
        if i.container and i.container.startswith("personal:") and i.source_id in linked
    )
    cursors = dict(full.cursors)
    cursors[("files", target)] = {**cursors[("files", target)], "via": "wiki"}
    _mutate(emulator, "file.upload", spaceId=target, rand=9, extension="txt")

    read_ahead = asyncio.Event()
    list_pages = FilesCollector._dentry_pages
    list_spaces = st.drive_spaces

    def spy(self: FilesCollector, space: Any) -> Any:
        if space.space_id == target and space.origin == "wiki":
            read_ahead.set()
        return list_pages(self, space)

    async def personal_after_read_ahead(client: Any, union: str, space_type: str) -> Any:
        if space_type == "personal":
            await asyncio.wait_for(read_ahead.wait(), 60)
        async for page in list_spaces(client, union, space_type):
            yield page

    monkeypatch.setattr(FilesCollector, "_dentry_pages", spy)
    monkeypatch.setattr(st, "drive_spaces", personal_after_read_ahead)
    incremental, _ = await _files_run(emulator, "incremental", cursors)
    assert incremental.error is None, incremental.error
    assert read_ahead.is_set()
    updates = [b.cursor for b in incremental.batches if b.cursor and b.cursor.container == target]
    assert len(updates) == 1 and updates[0].state["via"].startswith("personal:")
    assert str(incremental.items[("drive_space", target)].container).startswith("personal:")
    files = [i for i in incremental.of_kind("file") if i.container == target]
    assert files and all(i.fields["origin"] == "drive" for i in files)
