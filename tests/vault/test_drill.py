"""The corruption drill: a vault with a replica; 1% of the primary's packs are damaged (a bit
flip, a truncation, a deletion); verify --read-data names every one of them; repair from the
replica; verify is clean and every item reads back byte for byte.

This is the restore drill the product runs as ISO 27001 A.8.13 evidence, in miniature.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3fixture import FAST_RETRY, MotoS3  # the moto_s3 fixture comes from conftest.py
from vault_helpers import make_vault, reopen

from dingvault.vault import LEVELS, ManifestRecord, ReplicaTarget, Vault, repair, verify
from dingvault.vault.backends import Backend, LocalBackend, from_url
from dingvault.vault.pack import parse_pack_key
from dingvault.vault.replicas import Replica
from dingvault.vault.replication import replicate, replication_status

N_ITEMS = 500
PACK_TARGET = 4 * 1024  # small packs: ~300 of them, so that 1% is several packs


def fill(vault: Vault, seed: int) -> dict[str, bytes]:
    """Items of every level, some compressible JSON-ish, some random (incompressible)."""
    rng = random.Random(seed)
    items: dict[str, bytes] = {}
    records = []
    with vault.writer(max_pack_age=None, pack_target=PACK_TARGET, segment_target=PACK_TARGET // 2) as w:
        for i in range(N_ITEMS):
            level = LEVELS[i % 3]
            if i % 2:
                data = rng.randbytes(rng.randint(2_000, 12_000))
            else:
                form = "合同/contrato " * rng.randint(50, 400)
                data = f'{{"approval": {i}, "form": "{form}"}}'.encode()
            key = f"item/{level}/{i}"
            items[key] = data
            records.append(ManifestRecord(key, [w.put_blob(data, level)], {"level": level}))
        w.commit_snapshot(records, tags=["drill"])
    return items


def read_all(vault: Vault) -> dict[str, bytes]:
    snap = vault.snapshots()[-1]
    return {r.key: vault.open_stream(r.blobs).read() for r in vault.records(snap.snapshot_id)}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def replica(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Replica, Backend]]:
    if request.param == "local":
        rep = Replica("usb", str(tmp_path / "replica"), region="mo")
        yield rep, from_url(rep.url)
    else:
        server: MotoS3 = request.getfixturevalue("moto_s3")
        bucket = server.new_bucket("drill")
        rep = Replica("hk", server.url(bucket, "vault"), region="hk")
        b = server.backend(bucket, "vault")
        yield rep, b
        b.close()


def damage(primary: LocalBackend, pack_keys: list[str], rng: random.Random) -> dict[str, str]:
    """Damage the files underneath the backend, as a failing disk would."""
    what: dict[str, str] = {}
    kinds = ["bitflip", "truncate", "delete"]
    for n, key in enumerate(pack_keys):
        path = primary.path_for(key)
        kind = kinds[n % 3]
        raw = bytearray(path.read_bytes())
        if kind == "bitflip":
            pos = rng.randrange(len(raw))
            raw[pos] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(raw))
        elif kind == "truncate":
            path.write_bytes(bytes(raw[: rng.randrange(1, len(raw))]))
        else:
            path.unlink()
        what[key] = kind
    return what


@pytest.mark.slow
def test_corruption_drill(tmp_path: Path, replica: tuple[Replica, Backend]) -> None:
    rep, rep_backend = replica
    primary = LocalBackend(tmp_path / "primary")
    vault, _ = make_vault(primary, tmp_path / "cache")
    items = fill(vault, seed=8)
    packs = sorted(p.key for p in vault.list_packs())
    assert len(packs) >= 200, f"only {len(packs)} packs: the drill needs enough for 1% to be several"

    shipped = replicate(vault, rep, **FAST_RETRY)
    assert shipped.ok and shipped.corrupt == [], shipped
    assert replication_status(vault, rep, **FAST_RETRY).pending_objects == 0
    healthy = verify(vault, read_data=True, replicas=[ReplicaTarget(rep.name, rep_backend)])
    assert healthy.ok, [str(p) for p in healthy.errors]

    rng = random.Random(2026)
    victims = rng.sample(packs, max(3, len(packs) // 100))
    damaged = damage(primary, victims, rng)
    assert set(damaged.values()) == {"bitflip", "truncate", "delete"}

    report = verify(vault, read_data=True)
    assert not report.ok
    named = report.damaged_keys("primary")
    assert set(damaged) <= named, f"verify missed {set(damaged) - named}"
    assert {k for k in named if k.startswith("data/")} == set(damaged)  # and blamed no healthy pack

    # Continuous replication meanwhile must not carry the damage to the replica.
    again = replicate(vault, rep, **FAST_RETRY)
    assert again.ok
    for key in damaged:
        assert hashlib.sha256(rep_backend.get(key)).hexdigest() == key.rsplit("/", 1)[1]

    fixed = repair(vault, rep_backend)
    assert fixed.ok, fixed.unrepaired
    assert all(any(k in a for a in fixed.actions) for k in damaged), fixed.actions

    clean = verify(vault, read_data=True)
    assert clean.ok, [str(p) for p in clean.errors]
    assert read_all(vault) == items
    fresh = reopen(vault, tmp_path / "cache")  # a new machine with an empty cache reads the same
    try:
        assert read_all(fresh) == items
    finally:
        fresh.close()


def test_drill_with_a_replica_denied_a_level(tmp_path: Path) -> None:
    """A replica without 'confidential' repairs the other levels; the confidential damage is
    reported as unrepaired, never papered over."""
    primary = LocalBackend(tmp_path / "primary")
    vault, _ = make_vault(primary, tmp_path / "cache")
    items = fill(vault, seed=9)
    rep = Replica("cloud", str(tmp_path / "cloud"), region="hk", levels=("public", "internal"))
    assert replicate(vault, rep).ok
    rep_backend = LocalBackend(tmp_path / "cloud")
    levels_on_replica = {parse_pack_key(i.key)[0].label for i in rep_backend.list("data/")}
    assert levels_on_replica == {"meta", "public", "internal"}

    # Verify on the replica, told which levels it holds, is clean despite the missing confidential packs.
    rv = verify(vault, read_data=True, replicas=[ReplicaTarget(rep.name, rep_backend, rep.levels)])
    assert rv.ok, [str(p) for p in rv.errors]

    by_level: dict[str, list[str]] = {}
    for p in vault.list_packs():
        by_level.setdefault(p.level, []).append(p.key)
    public_victim = sorted(by_level["public"])[0]
    secret_victim = sorted(by_level["confidential"])[0]
    os.unlink(primary.path_for(public_victim))
    os.unlink(primary.path_for(secret_victim))

    fixed = repair(vault, rep_backend)
    assert not fixed.ok
    assert any(secret_victim in u for u in fixed.unrepaired)
    assert not any(public_victim in u for u in fixed.unrepaired)
    assert primary.exists(public_victim)
    readable = {k: v for k, v in items.items() if "/confidential/" not in k}
    got = read_all_tolerant(vault)
    assert {k: got[k] for k in readable} == readable


def read_all_tolerant(vault: Vault) -> dict[str, bytes]:
    out = {}
    snap = vault.snapshots()[-1]
    for r in vault.records(snap.snapshot_id):
        try:
            out[r.key] = vault.open_stream(r.blobs).read()
        except Exception:
            continue
    return out
