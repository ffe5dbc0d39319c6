"""Knowledge bases are handed on as they are listed; their completions come after every one of them.

An org has a "my documents" knowledge base per person: held until the listing ends, they made one
batch of thousands of items (5.6 MB on the emulator's large company) that waited in memory for the
writer. They now leave in batches as people's listings answer, and the containers the run declares
complete still reach the engine only after every knowledge base they cover.
"""

from __future__ import annotations

import asyncio

import pytest

from dingtalk_emulator.server import RunningEmulator
from dingvault.source.collectors import CollectorContext, CollectorSettings, FilesCollector
from dingvault.source.collectors import files as files_module

from .emulator_support import api_group_chat_ids, client_for, live_ids, run


async def test_knowledge_bases_leave_in_batches_before_their_completions(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_batch = 8
    monkeypatch.setattr(files_module, "_WORKSPACES_PER_BATCH", per_batch)
    async with client_for(emulator) as client:
        result = await run([FilesCollector(client, CollectorContext(client, CollectorSettings()))])
    assert result.error is None, result.error
    expected = live_ids(emulator, "wiki_workspace")
    assert result.ids("wiki_workspace") == expected
    assert len(expected) > 3 * per_batch  # one per person at least: enough to need several batches

    carrying = [b for b in result.batches if any(i.kind == "wiki_workspace" for i in b.items)]
    assert len(carrying) >= max(2, len(expected) // (2 * per_batch)), (
        "knowledge bases held back until the end"
    )
    # A batch closes once it reaches the size; one person's listing is never split.
    assert max(sum(i.kind == "wiki_workspace" for i in b.items) for b in carrying) < 2 * per_batch

    declared: set[str] = set()
    for batch in result.batches:
        late = {i.container for i in batch.items if i.kind == "wiki_workspace"} & declared
        assert not late, f"knowledge bases of containers already declared complete: {sorted(late)}"
        declared |= {c.container for c in batch.complete or () if c.kind == "wiki_workspace"}
    assert "team" in declared and any(c.startswith("personal:") for c in declared)


async def test_knowledge_bases_are_found_no_faster_than_they_are_walked(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few running sources and a small bound, so discovery (fast) must wait for walks (slower).
    monkeypatch.setattr(files_module, "_WAITING_WORKSPACES_PER_SLOT", 1)
    monkeypatch.setattr(files_module, "_MAX_RUNNING_PER_SLOT", 3)
    waiting: list[int] = []
    found_sizes: list[int] = []
    start = files_module.FilesCollector._start_workspace

    def counting(self, run_, workspace):  # type: ignore[no-untyped-def]
        start(self, run_, workspace)
        waiting.append(run_.workspaces_waiting)

    listed = files_module.FilesCollector._workspaces

    async def sizes(self, people):  # type: ignore[no-untyped-def]
        async for found in listed(self, people):
            found_sizes.append(len(found))
            yield found

    monkeypatch.setattr(files_module.FilesCollector, "_start_workspace", counting)
    monkeypatch.setattr(files_module.FilesCollector, "_workspaces", sizes)
    settings = CollectorSettings(concurrency=2, known_chat_ids=api_group_chat_ids(emulator))
    async with client_for(emulator) as client:
        result = await asyncio.wait_for(
            run([FilesCollector(client, CollectorContext(client, settings))]), 120
        )
    assert result.error is None, result.error
    # Nothing is lost by waiting: every knowledge base and every file is there.
    assert result.ids("wiki_workspace") == live_ids(emulator, "wiki_workspace")
    assert result.ids("wiki_node") == live_ids(emulator, "wiki_node")
    assert result.ids("file") == live_ids(emulator, "file")
    # Discovery waits while 2 (1 per unit of concurrency) knowledge bases wait for their walk;
    # one person's listing, once let through, is started whole.
    assert len(waiting) > 10
    assert max(waiting) <= 2 - 1 + max(found_sizes), (max(waiting), max(found_sizes))
