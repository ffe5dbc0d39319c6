"""Snapshots: manifest trees stream, references are checked, catalog exports round-trip."""

from __future__ import annotations

import io
import os

import pytest
from vault_helpers import reopen

from dingvault.vault import ManifestRecord, Vault, VaultError
from dingvault.vault import snapshot as snapshot_mod


def test_snapshot_round_trip_on_every_backend(vault: Vault, cache_dir) -> None:
    with vault.writer() as w:
        a = w.put_blob(b'{"processInstanceId":"p1","title":"\xe5\x90\x88\xe5\x90\x8c"}', "internal")
        content = os.urandom(600_000)
        f = w.put_stream(io.BytesIO(content), "confidential")
        sid = w.commit_snapshot(
            [ManifestRecord("approval/p1", [a], {"v": 1}), ("file/s1/d1", f, None)],
            tags=["full"],
            meta={"run": 7},
        )
    v2 = reopen(vault, cache_dir)
    try:
        (info,) = v2.snapshots()
        assert info.snapshot_id == sid and info.tags == ("full",) and info.meta == {"run": 7}
        recs = list(v2.records(sid))
        assert [r.key for r in recs] == ["approval/p1", "file/s1/d1"]
        assert recs[0].meta == {"v": 1} and recs[0].blobs == (a,)
        assert v2.open_stream(recs[1].blobs).read() == content
    finally:
        v2.close()


def test_multi_level_tree_streams_in_order(mem_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_mod, "LEAF_TARGET", 200)
    monkeypatch.setattr(snapshot_mod, "FANOUT", 3)
    with mem_vault.writer() as w:
        blob = w.put_blob(b"x", "public")
        records = (ManifestRecord(f"user/{i:05d}", [blob], None) for i in range(500))
        sid = w.commit_snapshot(records)
    got = [r.key for r in mem_vault.records(sid)]
    assert got == [f"user/{i:05d}" for i in range(500)]
    assert mem_vault.load_snapshot(sid).records == 500
    trees = [p for p in mem_vault.list_packs() if p.level == "meta"]
    assert trees  # tree blobs live in meta packs


def test_empty_snapshot(mem_vault: Vault) -> None:
    with mem_vault.writer() as w:
        sid = w.commit_snapshot([])
    assert list(mem_vault.records(sid)) == []


def test_snapshot_naming_a_missing_blob_is_refused(mem_vault: Vault) -> None:
    with mem_vault.writer() as w, pytest.raises(VaultError, match="not in the vault"):
        w.commit_snapshot([("user/u1", [b"\x07" * 32])])
    assert mem_vault.snapshot_ids() == []


def test_catalog_exports(mem_vault: Vault, cache_dir) -> None:
    dump = os.urandom(2_500_000) + "目錄".encode()
    e1 = mem_vault.put_catalog_export("catalog-sqlite", io.BytesIO(dump))
    e2 = mem_vault.put_catalog_export("other", io.BytesIO(b"small"))
    assert mem_vault.open_catalog_export(e1).read() == dump
    v2 = reopen(mem_vault, cache_dir)
    try:
        assert [e.export_id for e in v2.list_catalog_exports()] == [e1, e2]
        (only,) = v2.list_catalog_exports(tag="catalog-sqlite")
        assert only.size == len(dump) and only.level == "confidential"
        assert v2.open_catalog_export(e1).read() == dump
    finally:
        v2.close()


def test_snapshot_may_reference_blobs_of_another_open_writer(mem_vault: Vault) -> None:
    attachments = mem_vault.writer(max_pack_age=None)
    try:
        att = attachments.put_blob(b"attachment bytes", "confidential")
        with mem_vault.writer(max_pack_age=None) as w:
            rec = w.put_blob(b'{"processInstanceId":"p9"}', "internal")
            sid = w.commit_snapshot([("approval/p9", [rec, att])])
    finally:
        attachments.close()
    (r,) = mem_vault.records(sid)
    assert [mem_vault.get_blob(b) for b in r.blobs] == [b'{"processInstanceId":"p9"}', b"attachment bytes"]


def test_catalog_rebuilds_from_a_replica_and_the_recovery_key_alone(mem_backend, cache_dir) -> None:
    from vault_helpers import make_vault

    from dingvault.vault.backends import MemoryBackend

    v, recovery = make_vault(mem_backend, cache_dir)
    dump = os.urandom(700_000)
    eid = v.put_catalog_export("catalog-sqlite", io.BytesIO(dump))
    replica = MemoryBackend("replica")
    for key in v.replica_object_keys():
        replica.put(key, mem_backend.get(key))
    v.close()
    restored = Vault.open(replica, recovery, cache_dir=cache_dir / "elsewhere")
    try:
        (latest,) = restored.list_catalog_exports(tag="catalog-sqlite")
        assert latest.export_id == eid
        assert restored.open_catalog_export(eid).read() == dump
    finally:
        restored.close()


def test_consecutive_snapshots_share_their_tree_blobs(
    mem_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small boundaries so that 6,000 records make a multi-level tree quickly.
    monkeypatch.setattr(snapshot_mod, "LEAF_MIN", 2000)
    monkeypatch.setattr(snapshot_mod, "LEAF_CUT_MASK", 0x1F)
    monkeypatch.setattr(snapshot_mod, "NODE_MIN", 2)
    monkeypatch.setattr(snapshot_mod, "NODE_CUT_MASK", 0x3)
    with mem_vault.writer() as w:
        blobs = [w.put_blob(f"version 1 of item {i}".encode(), "internal") for i in range(6000)]
        records = [(f"user/{i:06d}", [b]) for i, b in enumerate(blobs)]
        w.commit_snapshot(records)
    tree_blobs = mem_vault.index.stats_by_class()["meta"]["blobs"]
    assert tree_blobs > 20
    with mem_vault.writer() as w:
        changed = w.put_blob(b"version 2 of item 3000", "internal")
        records[3000] = ("user/003000", [changed])
        records.insert(100, ("user/000099a", [changed]))  # and one new item
        sid = w.commit_snapshot(records)
    added = mem_vault.index.stats_by_class()["meta"]["blobs"] - tree_blobs
    # Each change rewrites its leaf and the nodes above it (~6 levels here); a cut that moves
    # takes a neighbour along at some level. Where cuts fall depends on the vault's random keys
    # (the lines hold keyed blob ids): 7-14 new blobs over 41 vaults, so the bound is two paths
    # with a neighbour at every level, still a seventh of a tree written afresh.
    assert added <= 24, f"{added} new tree blobs for two changed records (of {tree_blobs})"
    assert [r.key for r in mem_vault.records(sid)] == [r[0] for r in records]


def test_an_open_leaf_costs_its_own_bytes() -> None:
    # A leaf gathers up to LEAF_TARGET of manifest lines (thousands of records) before it is
    # stored: held as a list of per-line objects it cost ~4 KiB a line (orjson's result buffer).
    import hashlib
    import tracemalloc

    stored: list[int] = []

    def put(data: bytes) -> bytes:
        stored.append(len(data))
        return hashlib.sha256(data).digest()

    records = [
        (f"approval/PROC-{i:08d}", [hashlib.sha256(str(i).encode()).digest()], {"size": i})
        for i in range(20_000)
    ]
    builder = snapshot_mod.TreeBuilder(put)
    tracemalloc.start()
    try:
        for rec in records:
            builder.add(rec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    builder.finish()
    largest_leaf = max(stored)
    assert largest_leaf > 64 * 1024  # the leaves were large enough for the cost to show
    assert peak < 3 * largest_leaf + 256 * 1024, (peak, largest_leaf)
