"""Knowledge bases are handed on as they are listed; their completions come after every one of them.

An org has a "my documents" knowledge base per person: held until the listing ends, they made one
batch of thousands of items (5.6 MB on the emulator's large company) that waited in memory for the
writer. They now leave in batches as people's listings answer, and the containers the run declares
complete still reach the engine only after every knowledge base they cover.
"""

from __future__ import annotations

import pytest

from dingtalk_emulator.server import RunningEmulator
from dingvault.source.collectors import CollectorContext, CollectorSettings, FilesCollector
from dingvault.source.collectors import files as files_module

from .emulator_support import client_for, live_ids, run


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
