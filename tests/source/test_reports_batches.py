"""Work reports are handed on in small batches; a window's completions and the cursor come last.

A window of ≤ 180 days can hold tens of thousands of reports in a large org: the collector must not
hold them all before yielding, yet the months it declares complete (and the run's cursor) must only
reach the engine once every report they cover has been yielded before them.
"""

from __future__ import annotations

from dingtalk_emulator.server import RunningEmulator
from dingvault.source.collectors import ReportsCollector
from dingvault.source.collectors.reports import BATCH

from .emulator_support import client_for, live_ids, run


async def test_reports_come_in_bounded_batches_with_completions_after_their_items(
    emulator: RunningEmulator,
) -> None:
    async with client_for(emulator) as client:
        result = await run([ReportsCollector(client)])
    assert result.error is None
    assert result.ids("report") == live_ids(emulator, "report")

    sizes = [len(b.items) for b in result.batches]
    assert max(sizes) <= BATCH
    # The demo company's first window holds more than one batch: the listing really was cut.
    assert sum(1 for s in sizes if s == BATCH) >= 1

    declared: set[str] = set()
    for batch in result.batches:
        late = {item.container for item in batch.items} & declared
        assert not late, f"reports of months already declared complete: {sorted(late)}"
        declared |= {listing.container for listing in batch.complete or ()}
    assert declared, "a full run declares the months it covered"

    with_cursor = [i for i, b in enumerate(result.batches) if b.cursor is not None]
    assert with_cursor == [len(result.batches) - 1], "the cursor rides on the very last batch"
