"""Acceptance: a full backup of the demo company, read back from the vault, against the emulator's truth."""

from __future__ import annotations

import pytest

from .emulator_env import assert_complete, assert_contents_identical, install, start_emulator


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator()
    yield emu
    emu.stop()


def test_full_backup_holds_all_reachable_truth_with_identical_contents(emulator, tmp_path):
    inst = install(emulator, tmp_path)
    stats = inst.backup("full")
    assert stats.status == "ok", (stats.family_failures, stats.item_failures[:3])
    with inst.session() as s:
        assert_complete(inst, s)
        assert assert_contents_identical(inst, s) > 100
        # the snapshot lists every live item with its blobs, and the vault verifies
        (snap,) = s.vault.snapshots()
        live = sum(c.live for c in s.catalog.counts_per_kind().values())
        assert snap.records == live
        keys = [r.key for r in s.vault.records(snap)]
        assert len(keys) == len(set(keys)) == live
        from dingvault.vault import verify

        assert verify(s.vault, read_data=True).ok
        # a catalog export was stored in the vault after the run
        assert stats.catalog_export_id and s.vault.list_catalog_exports("catalog")
    # a second full run downloads nothing again and adds no version
    again = inst.backup("full")
    assert again.status == "ok"
    assert again.attachments_downloaded == 0 and again.bytes_downloaded == 0
    assert again.totals()["new"] == 0 and again.totals()["changed"] == 0 and again.totals()["deleted"] == 0
