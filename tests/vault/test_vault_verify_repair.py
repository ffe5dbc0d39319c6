"""Verify names every damaged or missing object; repair restores from a replica and pack headers."""

from __future__ import annotations

import io
import os

import pytest
from vault_helpers import flip_bit

from dingvault.vault import ReplicaTarget, Vault, repair, verify
from dingvault.vault.backends import Backend, MemoryBackend
from dingvault.vault.levels import StorageClass
from dingvault.vault.pack import PackBuilder, SegmentCodec, pack_object_key


def populate(v: Vault) -> str:
    with v.writer() as w:
        recs = []
        for i in range(200):
            bid = w.put_blob(f'{{"userid":"u{i}","name":"陳{i}","dept":[1,2]}}'.encode(), "internal")
            recs.append((f"user/u{i}", [bid]))
        recs.append(("file/a", w.put_stream(io.BytesIO(os.urandom(900_000)), "confidential")))
        recs.append(("notice/1", [w.put_blob(b"public notice", "public")]))
        return w.commit_snapshot(recs)


def copy_all(src: Backend, dst: Backend) -> None:
    for info in src.list(""):
        if not info.key.startswith("locks/"):
            dst.put(info.key, src.get(info.key), overwrite=True)


def test_healthy_vault_verifies_on_every_backend(vault: Vault) -> None:
    populate(vault)
    report = verify(vault, read_data=True)
    assert report.ok, [str(e) for e in report.errors]
    assert report.counters["records"] == 202
    assert report.counters["packs_read[primary]"] == report.counters["packs[primary]"] >= 3


def test_damaged_pack_is_named_and_repaired_from_replica(mem_vault: Vault) -> None:
    populate(mem_vault)
    replica = MemoryBackend("replica")
    copy_all(mem_vault.backend, replica)
    pack = next(p for p in mem_vault.list_packs() if p.level == "internal")
    flip_bit(mem_vault.backend, pack.key, 8 * (pack.size // 2))
    assert verify(mem_vault).ok  # structure alone cannot see a flipped bit inside a pack
    report = verify(mem_vault, read_data=True)
    assert not report.ok
    assert report.damaged_keys() == {pack.key}
    fixed = repair(mem_vault, replica)
    assert fixed.ok, fixed.unrepaired
    assert any(pack.key in a for a in fixed.actions)
    assert verify(mem_vault, read_data=True).ok


def test_missing_pack_is_named_and_unrepairable_without_replica(mem_vault: Vault) -> None:
    populate(mem_vault)
    pack = next(p for p in mem_vault.list_packs() if p.level == "confidential")
    mem_vault.backend.delete(pack.key)
    report = verify(mem_vault)
    assert pack.key in report.damaged_keys()
    assert "missing" in " ".join(p.message for p in report.errors)
    result = repair(mem_vault, None)
    assert not result.ok
    assert any(pack.key in u for u in result.unrepaired)


def test_lost_index_is_rebuilt_from_pack_headers(mem_vault: Vault) -> None:
    sid = populate(mem_vault)
    expected = {r.key: r.blobs for r in mem_vault.records(sid)}
    for name in mem_vault.index_file_names():
        mem_vault.backend.delete("index/" + name)
    mem_vault.index.clear()
    mem_vault.refresh_index()
    report = verify(mem_vault)
    assert not report.ok  # the snapshot references blobs no index holds
    assert any("unindexed" in w.message or "not in any index" in w.message for w in report.warnings)
    fixed = repair(mem_vault, None)
    assert fixed.ok, fixed.unrepaired
    assert {r.key: r.blobs for r in mem_vault.records(sid)} == expected
    assert verify(mem_vault, read_data=True).ok


def test_damaged_index_file_is_replaced_or_rebuilt(mem_vault: Vault) -> None:
    populate(mem_vault)
    (name,) = mem_vault.index_file_names()
    flip_bit(mem_vault.backend, "index/" + name, 200)
    report = verify(mem_vault)
    assert "index/" + name in report.damaged_keys()
    fixed = repair(mem_vault, None)
    assert fixed.ok, fixed.unrepaired
    assert verify(mem_vault, read_data=True).ok


def test_damaged_snapshot_is_replaced_from_replica(mem_vault: Vault) -> None:
    sid = populate(mem_vault)
    replica = MemoryBackend("replica")
    copy_all(mem_vault.backend, replica)
    flip_bit(mem_vault.backend, "snapshots/" + sid, 100)
    assert "snapshots/" + sid in verify(mem_vault).damaged_keys()
    assert repair(mem_vault, replica).ok
    assert len(list(mem_vault.records(sid))) == 202


def test_replica_is_verified_with_its_levels(mem_vault: Vault) -> None:
    populate(mem_vault)
    replica = MemoryBackend("replica")
    for key in mem_vault.replica_object_keys(["public", "internal"]):
        replica.put(key, mem_vault.backend.get(key))
    assert not any(k.startswith("data/confidential/") for k in (i.key for i in replica.list("data/")))
    target = ReplicaTarget("offsite", replica, ("public", "internal"))
    report = verify(mem_vault, read_data=True, replicas=[target])
    assert report.ok, [str(e) for e in report.errors]
    pack = next(p for p in mem_vault.list_packs() if p.level == "public")
    flip_bit(replica, pack.key, 8 * 50)
    bad = verify(mem_vault, read_data=True, replicas=[target])
    assert bad.damaged_keys("offsite") == {pack.key}
    assert bad.damaged_keys("primary") == set()


def test_subset_reads_a_fraction_of_packs(mem_vault: Vault) -> None:
    with mem_vault.writer(pack_target=64 * 1024) as w:
        for _ in range(20):
            w.put_blob(os.urandom(60_000), "internal")
    total = len(list(mem_vault.list_packs()))
    report = verify(mem_vault, read_data=True, subset=0.25, seed=1)
    assert report.counters["packs_read[primary]"] == round(total * 0.25)
    with pytest.raises(Exception, match="subset"):
        verify(mem_vault, read_data=True, subset=1.5)


def test_crash_leftover_pack_is_a_warning_not_an_error(mem_vault: Vault) -> None:
    populate(mem_vault)
    # What a writer killed between storing a pack and writing its index leaves behind.
    cls = StorageClass.INTERNAL
    builder = PackBuilder(cls, mem_vault.class_key(cls), SegmentCodec(), os.urandom(32))
    data = os.urandom(1000)
    builder.add_segment([(mem_vault.blob_id(data, "internal"), 0, data)])
    pack_id, raw = builder.finish()
    mem_vault.backend.put(pack_object_key(cls, pack_id), raw)
    report = verify(mem_vault, read_data=True)
    assert report.ok, [str(e) for e in report.errors]
    assert [w.object for w in report.warnings] == [pack_object_key(cls, pack_id)]
    # repair indexes it; the blob becomes readable
    assert repair(mem_vault, None).ok
    assert mem_vault.get_blob(mem_vault.blob_id(data, "internal")) == data


def test_repair_tries_several_replicas_in_order(mem_vault: Vault) -> None:
    populate(mem_vault)
    pack = next(p for p in mem_vault.list_packs() if p.level == "internal")
    damaged_replica, good_replica = MemoryBackend("r1"), MemoryBackend("r2")
    copy_all(mem_vault.backend, damaged_replica)
    copy_all(mem_vault.backend, good_replica)
    flip_bit(damaged_replica, pack.key, 8 * 41)
    mem_vault.backend.delete(pack.key)
    fixed = repair(mem_vault, [damaged_replica, good_replica])
    assert fixed.ok, fixed.unrepaired
    assert f"{pack.key}: replaced from memory://r2" in fixed.actions
    assert verify(mem_vault, read_data=True).ok
    # Both copies bad: the reason names each replica.
    mem_vault.backend.delete(pack.key)
    good_replica.delete(pack.key)
    failed = repair(mem_vault, [damaged_replica, good_replica])
    assert not failed.ok
    assert any("memory://r1" in u and "memory://r2" in u for u in failed.unrepaired)
