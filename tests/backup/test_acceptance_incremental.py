"""Acceptance: after random changes at the source, an incremental run captures exactly the changes."""

from __future__ import annotations

import pytest

from dingvault.cli.demo_run import reachable_truth, truth_items

from .emulator_env import KINDS, assert_complete, control, install, start_emulator, version_counts


def _truth(emu) -> dict[tuple[str, str], dict]:
    return {(kind, str(t["id"])): t for kind in KINDS for t in truth_items(emu.base_url, kind)}


def _check_incremental(tmp_path, mutations: int, seed: int) -> None:
    emu = start_emulator()
    try:
        inst = install(emu, tmp_path)
        assert inst.backup("full").status == "ok"
        before = _truth(emu)
        with inst.session() as s:
            versions_before = version_counts(s)
        control(emu, "POST", "mutate", json={"op": "random", "count": mutations, "seed": seed})
        after = _truth(emu)
        stats = inst.backup("incremental")
        assert stats.status == "ok", (stats.family_failures, stats.item_failures[:3])
        with inst.session() as s:
            assert_complete(inst, s)
            versions_after = version_counts(s)
            reachable = {(k, i) for k in KINDS for i in reachable_truth(emu.base_url, k)}
            # deletions at the source are marked (and the items kept)
            for key, t in after.items():
                was_live = key in before and not before[key].get("deleted")
                if t.get("deleted") and was_live and key in versions_before:
                    info = s.catalog.get_item(*key)
                    assert info is not None and info.deleted_at_source, (
                        f"{key} deleted at the source, not marked"
                    )
                    assert s.catalog.item_versions(*key), f"{key}: versions must be kept"
            # records that changed at the source have a new version; the others do not
            spurious, missed = [], []
            for key, n_before in versions_before.items():
                if key not in after or after[key].get("deleted") or key not in reachable:
                    continue
                n_after = versions_after.get(key, n_before)
                if before.get(key) == after[key] and n_after != n_before:
                    spurious.append(key)
                if before.get(key) != after[key] and n_after == n_before:
                    missed.append(key)
            assert not missed, f"changes not captured: {missed[:5]}"
            assert not spurious, f"new versions without a change at the source: {spurious[:5]}"
    finally:
        emu.stop()


def test_incremental_after_random_changes_captures_exactly_them(tmp_path):
    _check_incremental(tmp_path, mutations=60, seed=7)


@pytest.mark.slow
def test_incremental_after_500_random_changes(tmp_path):
    _check_incremental(tmp_path, mutations=500, seed=11)
