"""Prune: unreferenced data goes, referenced and held data stays, and a crash mid-prune is harmless."""

from __future__ import annotations

import os

import pytest

from dingvault.vault import HoldViolation, StaticHolds, Vault, VaultError, prune, verify
from dingvault.vault.backends import BackendError, MemoryBackend


def two_snapshots(v: Vault) -> tuple[str, str, list[bytes], list[bytes]]:
    with v.writer() as w:
        old = [w.put_blob(f"old version {i} 舊".encode() * 30, "internal") for i in range(300)]
        s1 = w.commit_snapshot([(f"item/{i}", [b]) for i, b in enumerate(old)])
    with v.writer() as w:
        new = [w.put_blob(f"new version {i} 新".encode() * 30, "internal") for i in range(300)]
        keep = old[:50]  # unchanged items still point at their old blobs
        s2 = w.commit_snapshot([(f"item/{i}", [b]) for i, b in enumerate(keep + new[50:])])
    return s1, s2, old, new


def test_prune_removes_only_unreferenced_blobs(vault: Vault) -> None:
    s1, s2, old, new = two_snapshots(vault)
    expected = {r.key: r.blobs for r in vault.records(s2)}
    vault.forget_snapshot(s1)
    report = prune(vault)
    assert report.blobs_removed >= 250 + 50  # old[50:] and new[:50] (never referenced)
    assert report.bytes_after < report.bytes_before
    assert {r.key: r.blobs for r in vault.records(s2)} == expected
    for b in old[:50] + new[50:]:
        assert vault.get_blob(b)
    for b in old[50:]:
        assert not vault.has_blob(b)
    assert verify(vault, read_data=True).ok


def test_prune_keeps_held_blobs_and_refuses_to_forget_held_snapshots(mem_vault: Vault) -> None:
    s1, _s2, old, _new = two_snapshots(mem_vault)
    holds = StaticHolds(snapshots=[s1])
    with pytest.raises(HoldViolation):
        mem_vault.forget_snapshot(s1, holds)
    prune(mem_vault, holds)
    assert all(mem_vault.has_blob(b) for b in old)  # s1 still exists, so all of it stays
    with mem_vault.writer() as w:
        loose = w.put_blob(b"evidence kept by a legal hold", "confidential")
    prune(mem_vault, StaticHolds(blobs=[loose]))
    assert mem_vault.get_blob(loose) == b"evidence kept by a legal hold"
    prune(mem_vault)
    assert not mem_vault.has_blob(loose)


def test_prune_refuses_when_a_held_snapshot_is_missing(mem_vault: Vault) -> None:
    two_snapshots(mem_vault)
    with pytest.raises(HoldViolation, match="missing"):
        prune(mem_vault, StaticHolds(snapshots=["ab" * 32]))


def test_prune_refuses_when_a_snapshot_is_unreadable(mem_vault: Vault) -> None:
    s1, _, _, _ = two_snapshots(mem_vault)
    data = bytearray(mem_vault.backend.get("snapshots/" + s1))
    data[-1] ^= 1
    mem_vault.backend.put("snapshots/" + s1, bytes(data), overwrite=True)
    before = {i.key for i in mem_vault.backend.list("data/")}
    with pytest.raises(VaultError, match="repair"):
        prune(mem_vault)
    assert {i.key for i in mem_vault.backend.list("data/")} == before


def test_dry_run_changes_nothing(mem_vault: Vault) -> None:
    s1, _, _, _ = two_snapshots(mem_vault)
    mem_vault.forget_snapshot(s1)
    before = sorted(i.key for i in mem_vault.backend.list(""))
    report = prune(mem_vault, dry_run=True)
    assert report.packs_rewritten + report.packs_deleted > 0
    after = sorted(i.key for i in mem_vault.backend.list("") if not i.key.startswith("locks/"))
    assert after == [k for k in before if not k.startswith("locks/")]


class FailingDeletes(MemoryBackend):
    """Deletes fail after ``budget`` of them: a prune killed at that point."""

    def __init__(self, src: MemoryBackend, budget: int) -> None:
        super().__init__("failing")
        self._objects = dict(src._objects)
        self.budget = budget

    def delete(self, key: str) -> None:
        if not key.startswith("locks/"):
            if self.budget <= 0:
                raise BackendError(f"simulated crash before deleting {key}")
            self.budget -= 1
        super().delete(key)


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 5])
def test_prune_interrupted_at_any_delete_loses_nothing(mem_vault: Vault, cache_dir, budget: int) -> None:
    s1, s2, _, _ = two_snapshots(mem_vault)
    mem_vault.forget_snapshot(s1)
    expected = [(r.key, mem_vault.get_blob(r.blobs[0])) for r in mem_vault.records(s2)]
    failing = FailingDeletes(mem_vault.backend, budget)  # type: ignore[arg-type]
    v = Vault.open(failing, "correct horse battery staple 馬", cache_dir=cache_dir / f"f{budget}")
    try:
        prune(v)
    except BackendError:
        pass
    failing.budget = 10**9
    v.index.clear()
    v.refresh_index()
    assert verify(v, read_data=True).ok
    assert [(r.key, v.get_blob(r.blobs[0])) for r in v.records(s2)] == expected
    prune(v)  # a second prune finishes the job
    assert verify(v, read_data=True).ok
    assert not any(w.message.startswith("pack not in any index") for w in verify(v).warnings)
    v.close()


def test_prune_keeps_catalog_exports(mem_vault: Vault) -> None:
    import io

    exp = mem_vault.put_catalog_export("catalog", io.BytesIO(os.urandom(300_000)))
    data = mem_vault.open_catalog_export(exp).read()
    prune(mem_vault)
    assert mem_vault.open_catalog_export(exp).read() == data


def test_writer_never_dedups_against_blobs_pruned_by_another_client(mem_vault: Vault, cache_dir) -> None:
    with mem_vault.writer() as w:
        old = w.put_blob(b"soon unreferenced", "internal")
    # A second client (its own cache) prunes while this client's cache still lists the blob.
    other = Vault.open(mem_vault.backend, "correct horse battery staple 馬", cache_dir=cache_dir / "other")
    prune(other)
    other.close()
    assert mem_vault.index.locate(old) is not None  # stale, until a writer starts
    with mem_vault.writer() as w:
        again = w.put_blob(b"soon unreferenced", "internal")
        sid = w.commit_snapshot([("item/x", [again])])
    assert verify(mem_vault, read_data=True).ok
    assert mem_vault.get_blob(next(iter(mem_vault.records(sid))).blobs[0]) == b"soon unreferenced"


@pytest.mark.parametrize("forget", ["first", "second"])
def test_prune_with_snapshots_sharing_subtrees(
    mem_vault: Vault, monkeypatch: pytest.MonkeyPatch, forget: str
) -> None:
    from dingvault.vault import snapshot as snapshot_mod

    monkeypatch.setattr(snapshot_mod, "LEAF_MIN", 500)
    monkeypatch.setattr(snapshot_mod, "LEAF_CUT_MASK", 0x7)
    monkeypatch.setattr(snapshot_mod, "NODE_MIN", 2)
    monkeypatch.setattr(snapshot_mod, "NODE_CUT_MASK", 0x3)
    with mem_vault.writer() as w:
        records = [(f"item/{i:05d}", [w.put_blob(f"v1 {i}".encode(), "internal")]) for i in range(2000)]
        s1 = w.commit_snapshot(records)
        records2 = list(records)
        records2[1500] = ("item/01500", [w.put_blob(b"v2 1500", "internal")])
        s2 = w.commit_snapshot(records2)
    keep, drop, expected = (s2, s1, records2) if forget == "first" else (s1, s2, records)
    mem_vault.forget_snapshot(drop)
    report = prune(mem_vault)
    assert report.blobs_removed >= 1
    got = [(r.key, mem_vault.get_blob(r.blobs[0])) for r in mem_vault.records(keep)]
    assert got == [(k, mem_vault.get_blob(b[0])) for k, b in expected]
    assert verify(mem_vault, read_data=True).ok
