"""Attendance is handed on page by page; a window's cursor follows every record of the window.

A 7-day window of a large org holds tens of thousands of check results: the collector yields them
as pages arrive, and commits the window (`until`) only after all of its records, so a run killed
mid-window resumes from the previous window and loses nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dingtalk_emulator.server import RunningEmulator
from dingvault.source.collectors import AttendanceCollector
from dingvault.source.collectors.attendance import PAGE
from dingvault.source.collectors.base import CollectorSettings
from dingvault.source.items import AllScope, Batch

from .emulator_support import client_for, live_ids, run


def _work_day(record: dict[str, Any]) -> date:
    tz = ZoneInfo(CollectorSettings().org_timezone)
    return datetime.fromtimestamp(record["workDate"] / 1000, tz).date()


async def test_attendance_pages_are_yielded_and_each_window_committed_after_its_records(
    emulator: RunningEmulator,
) -> None:
    async with client_for(emulator) as client:
        result = await run([AttendanceCollector(client)])
    assert result.error is None
    assert result.ids("attendance") == live_ids(emulator, "attendance")
    assert max(len(b.items) for b in result.batches) <= PAGE

    committed: date | None = None
    windows = 0
    for batch in result.batches:
        for item in batch.items:
            day = _work_day(item.raw["record"])
            assert committed is None or day > committed, f"a record of {day} after the cursor {committed}"
        if batch.cursor is not None:
            committed = date.fromisoformat(batch.cursor.state["until"])
            windows += 1
    assert windows >= 3  # the demo company's history spans several 7-day windows


async def test_a_run_killed_mid_way_resumes_from_its_last_window_without_losses(
    emulator: RunningEmulator,
) -> None:
    kept: dict[tuple[str, str], Any] = {}
    cursors: dict[tuple[str, str], dict[str, Any]] = {}
    async with client_for(emulator) as client:
        stream = AttendanceCollector(client).collect(mode="full", cursors={}, scope=AllScope())
        windows_with_records = 0
        async for batch in stream:
            _keep(batch, kept, cursors)
            if batch.cursor is not None and kept:
                windows_with_records += 1
            if windows_with_records == 2:
                # Killed just after the second window with records was committed, with a page of
                # the next window read but not committed.
                _keep(await anext(stream), kept, cursors)
                await stream.aclose()
                break
        assert windows_with_records == 2
        resumed = await run([AttendanceCollector(client)], mode="incremental", cursors=cursors)
    assert resumed.error is None
    everything = set(kept) | set(resumed.items)
    assert {sid for _, sid in everything} == live_ids(emulator, "attendance")
    # The incremental started from the committed window (less the look-back), not from scratch.
    assert len(resumed.items) < len(live_ids(emulator, "attendance"))


def _keep(
    batch: Batch, kept: dict[tuple[str, str], Any], cursors: dict[tuple[str, str], dict[str, Any]]
) -> None:
    for item in batch.items:
        kept[item.key] = item
    if batch.cursor is not None:
        cursors[batch.cursor.key] = batch.cursor.state
