"""Exclusive-edition families: read completely where the org has them, reported absent elsewhere."""

from __future__ import annotations

import time

from dingtalk_emulator.server import serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import ExclusiveCollector

from .emulator_support import client_for, live_ids, run, truth

DAY_MS = 86_400_000


async def test_exclusive_org_reads_groups_and_audit_logs() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off", exclusive=True))
    try:
        async with client_for(emu) as client:
            collector = ExclusiveCollector(client)
            result = await run([collector])
            recent = {
                t["id"]
                for t in truth(emu, "file_audit_log")
                if t["gmtCreate"] >= time.time() * 1000 - 179 * DAY_MS
            }
            everything = live_ids(emu, "file_audit_log")
            groups = live_ids(emu, "org_group")
    finally:
        emu.stop()
    assert result.error is None and not collector.unavailable
    assert result.ids("org_group") == groups and groups
    assert recent and recent <= result.ids("file_audit_log") <= everything
    assert ("exclusive", "audit") in result.cursors


async def test_standard_org_reports_exclusive_as_unavailable_without_failing() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    try:
        async with client_for(emu) as client:
            collector = ExclusiveCollector(client)
            result = await run([collector])
    finally:
        emu.stop()
    assert result.error is None
    assert not result.items
    assert set(collector.unavailable) == {"org_group", "file_audit_log"}
    assert len(collector.skipped) == 2 and all("not available" in s for s in collector.skipped)
