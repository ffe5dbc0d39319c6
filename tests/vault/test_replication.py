"""Replication: what is shipped, in which order, lag, and continuous mode through an outage.

These tests use vault-shaped objects (content-addressed names, packs under
``data/<level>/<xx>/<sha256>``) written straight to a backend, so they exercise replication
alone; the corruption drill (test_drill.py) runs it under a real Vault.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from s3fixture import FAST_RETRY, MotoS3, free_port  # the moto_s3 fixture comes from conftest.py

from dingvault.vault.backends import Backend, BackendError, LocalBackend, MemoryBackend
from dingvault.vault.replicas import Replica
from dingvault.vault.replication import Replicator, list_primary, phase_of, replicate, replication_status


def put_named(b: Backend, prefix: str, data: bytes) -> str:
    h = hashlib.sha256(data).hexdigest()
    key = f"{prefix}{h[:2]}/{h}" if prefix.startswith("data/") else prefix + h
    b.put(key, data)
    return key


def fake_vault(b: Backend, n_packs: int = 2) -> dict[str, list[str]]:
    """A vault's worth of objects: config, a key slot, packs of each class, index, snapshot, lock."""
    keys: dict[str, list[str]] = {"meta": [], "public": [], "internal": [], "confidential": []}
    for level in keys:
        for _ in range(n_packs):
            keys[level].append(put_named(b, f"data/{level}/", os.urandom(2000)))
    keys["index"] = [put_named(b, "index/", os.urandom(300))]
    keys["snapshots"] = [put_named(b, "snapshots/", os.urandom(200))]
    keys["catalog"] = [put_named(b, "catalog/", os.urandom(100))]
    b.put("keys/slot1", b'{"slot": 1}')
    b.put("config", b'{"format": "dingvault-vault"}')
    b.put("locks/abc", b"lock")  # never replicated
    b.put("data/junk/not-a-pack", b"?")  # not a well-formed pack name: never replicated
    return keys


def replica_keys(b: Backend) -> set[str]:
    return {i.key for i in b.list()}


def test_local_to_local_copies_everything_identically(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "primary")
    fake_vault(primary)
    rep = Replica("usb", str(tmp_path / "replica"))
    result = replicate(primary, rep)
    assert result.ok and result.corrupt == []
    replica = LocalBackend(tmp_path / "replica")
    expected = {i.key for i in primary.list()} - {"locks/abc", "data/junk/not-a-pack"}
    assert replica_keys(replica) == expected
    for key in expected:
        assert replica.get(key) == primary.get(key)
    assert result.copied == len(expected)
    again = replicate(primary, rep)
    assert again.ok and again.copied == 0  # nothing left to do


def test_only_allowed_levels_go_to_s3(moto_s3: MotoS3, tmp_path) -> None:
    primary = LocalBackend(tmp_path / "primary")
    keys = fake_vault(primary)
    bucket = moto_s3.new_bucket()
    rep = Replica("hk", moto_s3.url(bucket, "vault"), region="hk", levels=("public", "internal"))
    result = replicate(primary, rep, **FAST_RETRY)
    assert result.ok, result.error
    got = replica_keys(moto_s3.backend(bucket, "vault"))
    assert set(keys["meta"] + keys["public"] + keys["internal"]) <= got  # meta packs go everywhere
    assert not set(keys["confidential"]) & got
    assert {"config", "keys/slot1", *keys["index"], *keys["snapshots"], *keys["catalog"]} <= got
    # Lag counts only what this replica may hold: the confidential packs are not "pending".
    st = replication_status(primary, rep, **FAST_RETRY)
    assert (st.pending_objects, st.pending_bytes, st.lag_seconds, st.reachable) == (0, 0, 0.0, True)


class RecordingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__("recording")
        self.events: list[str] = []

    def put_stream(self, key, stream, size=None, *, overwrite=False, sync=True):  # type: ignore[override]
        super().put_stream(key, stream, size, overwrite=overwrite, sync=sync)
        self.events.append(key)

    def sync(self) -> None:
        self.events.append("SYNC")


def test_write_order_packs_index_snapshots_keys_config(tmp_path) -> None:
    primary = LocalBackend(tmp_path)
    fake_vault(primary)
    dest = RecordingBackend()
    assert replicate(primary, Replica("r", "memory://r"), backend=dest).ok
    phases = []
    for e in dest.events:
        kind = "SYNC" if e == "SYNC" else e.split("/")[0]
        if not phases or phases[-1] != kind:
            phases.append(kind)
    assert phases[0] == "data"
    assert phases.index("data") < phases.index("index") < phases.index("snapshots") < phases.index("keys")
    assert dest.events[-2:] == ["config", "SYNC"]
    # Every phase change is preceded by a sync, so a later phase never lands before an earlier one is durable.
    for i, e in enumerate(dest.events[1:], 1):
        prev = dest.events[i - 1]
        if e != "SYNC" and prev != "SYNC" and phase_of(e) != phase_of(prev):
            pytest.fail(f"{prev} -> {e} without a sync between phases")


def test_a_snapshot_written_during_listing_waits_for_the_next_pass(tmp_path) -> None:
    """The primary writes pack -> index -> snapshot while we list: the snapshot must not ship
    without its pack, whatever the listing saw."""
    primary = LocalBackend(tmp_path / "p")
    fake_vault(primary, n_packs=1)
    late: dict[str, str] = {}
    real_list = primary.list

    def list_and_write(prefix: str = ""):
        if prefix == "" and not late:  # the full listing starts: a writer commits a snapshot now
            late["pack"] = put_named(primary, "data/public/", b"new pack")
            late["index"] = put_named(primary, "index/", b"new index")
            late["snap"] = put_named(primary, "snapshots/", b"new snapshot")
        return real_list(prefix)

    primary.list = list_and_write  # type: ignore[method-assign]
    dest = MemoryBackend()
    rep = Replica("r", "memory://r")
    replicate(primary, rep, backend=dest)
    assert not dest.exists(late["snap"])  # its pack may or may not have been listed: it waits
    replicate(primary, rep, backend=dest)
    assert all(dest.exists(k) for k in late.values())


def test_corrupt_primary_objects_are_not_shipped_and_never_overwrite(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    keys = fake_vault(primary)
    rep = Replica("r", str(tmp_path / "r"))
    replica = LocalBackend(tmp_path / "r")
    good = keys["public"][0]
    replica.put(good, primary.get(good))  # the replica already has a good copy of this one
    bad_new = keys["internal"][0]
    for key in (good, bad_new):  # bit rot on the primary
        path = primary.path_for(key)
        raw = bytearray(path.read_bytes())
        raw[10] ^= 0x01
        path.write_bytes(bytes(raw))
    result = replicate(primary, rep)
    assert result.ok
    assert result.corrupt == [bad_new]  # reported, not shipped
    assert not replica.exists(bad_new)
    assert not [f for _, _, fs in os.walk(tmp_path / "r") for f in fs if f.startswith(".tmp-")]
    assert hashlib.sha256(replica.get(good)).hexdigest() == good.rsplit("/", 1)[1]  # still the good copy
    st = replication_status(primary, rep)
    assert st.pending_objects == 1 and st.oldest_pending == bad_new


def test_revoked_key_slots_are_removed_from_replicas(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    fake_vault(primary, n_packs=1)
    primary.put("keys/slot2", b'{"slot": 2}')
    rep = Replica("r", str(tmp_path / "r"))
    replica = LocalBackend(tmp_path / "r")
    assert replicate(primary, rep).ok
    assert replica.exists("keys/slot2")
    primary.delete("keys/slot2")  # the passphrase of slot 2 is revoked
    result = replicate(primary, rep)
    assert result.ok and result.revoked_slots == ["keys/slot2"]
    assert not replica.exists("keys/slot2") and replica.exists("keys/slot1")
    # A primary that (wrongly) lists no slot at all never empties the replica's slots.
    primary.delete("keys/slot1")
    assert replicate(primary, rep).revoked_slots == []
    assert replica.exists("keys/slot1")


def test_status_reports_lag_from_the_oldest_unshipped_object(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    fake_vault(primary, n_packs=1)
    now = time.time()
    for i, info in enumerate(sorted(primary.list(), key=lambda i: i.key)):
        os.utime(primary.path_for(info.key), (now - 100 - i, now - 100 - i))
    oldest_age = 100 + len(list(primary.list())) - 1
    rep = Replica("r", str(tmp_path / "r"))
    st = replication_status(primary, rep)
    shippable = list_primary(primary, rep.levels)
    assert st.pending_objects == len(shippable)
    assert st.pending_bytes == sum(i.size for i in shippable)
    assert oldest_age - 5 <= st.lag_seconds <= oldest_age + 5
    replicate(primary, rep)
    st = replication_status(primary, rep)
    assert (st.pending_objects, st.lag_seconds, st.oldest_pending) == (0, 0.0, None)


def test_unreachable_replica_is_reported_not_raised(tmp_path) -> None:
    primary = LocalBackend(tmp_path)
    fake_vault(primary, n_packs=1)
    rep = Replica("dead", f"s3://b/v?endpoint_url=http://127.0.0.1:{free_port()}&region=us-east-1")
    result = replicate(primary, rep, **FAST_RETRY)
    assert not result.ok and "unreachable" in result.error
    assert result.pending == len(list_primary(primary, rep.levels))
    st = replication_status(primary, rep, **FAST_RETRY)
    assert st.reachable is False and "unreachable" in st.last_error and st.pending_objects > 0


@pytest.mark.s3
@pytest.mark.slow
def test_continuous_replication_survives_an_outage(tmp_path, moto_s3: MotoS3) -> None:
    outage = MotoS3().start()  # our own server, so stopping it does not disturb other tests
    bucket = outage.new_bucket("outage")
    primary = LocalBackend(tmp_path / "p")
    fake_vault(primary, n_packs=1)
    rep = Replica("s3", outage.url(bucket, "v"), levels=("public", "internal"))
    opener = lambda r: outage.backend(bucket, "v")  # noqa: E731
    with Replicator(primary, [rep], interval=0.1, max_backoff=0.3, open_backend=opener) as replicator:
        assert replicator.wait_in_sync(15)
        first = put_named(primary, "data/public/", b"written while online")
        replicator.notify()
        assert replicator.wait_in_sync(15)
        assert outage.backend(bucket, "v").exists(first)

        outage.stop()
        written = []
        t0 = time.monotonic()
        for i in range(5):  # the primary keeps writing, unhindered by the dead replica
            written.append(put_named(primary, "data/internal/", f"during outage {i}".encode()))
            written.append(put_named(primary, "data/confidential/", f"secret {i}".encode()))
        written.append(put_named(primary, "index/", b"index during outage"))
        assert time.monotonic() - t0 < 2
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            st = replicator.status()["s3"]
            if st.reachable is False and st.pending_objects == 6:
                break
            time.sleep(0.05)
        assert st.reachable is False and st.last_error
        assert st.pending_objects == 6  # 5 internal packs + the index; confidential never counts
        lag1 = st.lag_seconds
        time.sleep(0.3)
        assert replicator.status()["s3"].lag_seconds > lag1  # lag grows while the replica is down

        outage.start()  # same port: the replica comes back
        assert replicator.wait_in_sync(20), replicator.status()
        st = replicator.status()["s3"]
        assert (st.pending_objects, st.pending_bytes, st.lag_seconds, st.reachable) == (0, 0, 0.0, True)
    replica = moto_s3.backend(bucket, "v")  # moto state is per process: any server sees it
    for key in written:
        assert replica.exists(key) == ("/confidential/" not in key)
    outage.stop()


def test_replicator_contains_primary_failures(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    fake_vault(primary, n_packs=1)

    def broken_list(prefix: str = ""):
        raise BackendError("primary disk unreadable")

    primary.list = broken_list  # type: ignore[method-assign]
    r = Replicator(primary, [Replica("r", "memory://r")], open_backend=lambda r: MemoryBackend())
    results = r.run_once()
    assert "primary disk unreadable" in results["r"].error
    assert "primary disk unreadable" in r.status()["r"].last_error


@pytest.mark.slow
def test_continuous_replication_of_a_live_vault_is_always_consistent(tmp_path) -> None:
    """A real vault written while the replicator runs: whenever the replica looks like a vault
    (has config), it opens and verifies clean; at the end it holds every item."""
    from vault_helpers import PASSPHRASE, make_vault

    from dingvault.vault import ManifestRecord, Vault, verify

    primary = LocalBackend(tmp_path / "p")
    vault, _ = make_vault(primary, tmp_path / "cache")
    replica_backend = LocalBackend(tmp_path / "r")
    rep = Replica("r", str(tmp_path / "r"))
    items: dict[str, bytes] = {}
    checks = 0
    with Replicator(vault, [rep], interval=0.05) as replicator:
        for round_ in range(4):
            records = []
            with vault.writer(max_pack_age=None, pack_target=4096, segment_target=2048) as w:
                for i in range(30):
                    data = os.urandom(3000)
                    items[f"item/{round_}/{i}"] = data
                    records.append(ManifestRecord(f"item/{round_}/{i}", [w.put_blob(data, "internal")]))
                w.commit_snapshot(records)
            replicator.notify()
            if replica_backend.exists("config"):
                mirror = Vault.open(replica_backend, PASSPHRASE, cache_dir=tmp_path / f"rc{round_}")
                try:
                    report = verify(mirror)
                    assert report.ok, [str(p) for p in report.errors]
                    checks += 1
                finally:
                    mirror.close()
        assert replicator.wait_in_sync(20), replicator.status()
    assert checks >= 1
    mirror = Vault.open(replica_backend, PASSPHRASE, cache_dir=tmp_path / "final")
    try:
        assert verify(mirror, read_data=True).ok
        got = {}
        for snap in mirror.snapshots():
            for r in mirror.records(snap.snapshot_id):
                got[r.key] = mirror.open_stream(r.blobs).read()
        assert got == items
    finally:
        mirror.close()


def test_a_revoked_passphrase_cannot_open_the_replica(tmp_path) -> None:
    from vault_helpers import PASSPHRASE, make_vault

    from dingvault.vault import Vault, WrongPassphrase
    from dingvault.vault.keys import FAST_KDF_FOR_TESTS

    primary = LocalBackend(tmp_path / "p")
    vault, _ = make_vault(primary, tmp_path / "cache")
    leaver = vault.add_key("the leaver's passphrase", label="leaver", kdf=FAST_KDF_FOR_TESTS)
    rep = Replica("r", str(tmp_path / "r"))
    assert replicate(vault, rep).ok
    replica = LocalBackend(tmp_path / "r")
    Vault.open(
        replica, "the leaver's passphrase", cache_dir=tmp_path / "c1"
    ).close()  # works before revocation
    vault.remove_key(leaver.slot_id)
    assert replicate(vault, rep).revoked_slots == [leaver.key]
    with pytest.raises(WrongPassphrase):
        Vault.open(replica, "the leaver's passphrase", cache_dir=tmp_path / "c2")
    Vault.open(replica, PASSPHRASE, cache_dir=tmp_path / "c3").close()  # the others still work
    vault.close()


@pytest.mark.s3
def test_s3_primary_to_local_replica(moto_s3: MotoS3, tmp_path) -> None:
    primary = moto_s3.backend(prefix="vault")
    keys = fake_vault(primary, n_packs=1)
    rep = Replica("local", str(tmp_path / "r"), levels=("public",))
    result = replicate(primary, rep)
    assert result.ok, result.error
    replica = LocalBackend(tmp_path / "r")
    for key in keys["public"] + keys["meta"] + keys["index"] + keys["snapshots"]:
        assert replica.get(key) == primary.get(key)
    assert not any(replica.exists(k) for k in keys["internal"] + keys["confidential"])


def test_replicator_from_registry(tmp_path) -> None:
    from dingvault.vault.replicas import ReplicaRegistry

    primary = LocalBackend(tmp_path / "p")
    keys = fake_vault(primary, n_packs=1)
    reg = ReplicaRegistry.in_home(tmp_path / "home")
    reg.add(Replica("a", str(tmp_path / "a")))
    reg.add(Replica("b", str(tmp_path / "b"), levels=("public",)))
    r = Replicator.from_registry(
        primary, reg, backend_opts={"max_attempts": 2}
    )  # S3-only option: ignored locally
    results = r.run_once()
    assert set(results) == {"a", "b"} and all(x.ok for x in results.values())
    assert LocalBackend(tmp_path / "a").exists(keys["confidential"][0])
    assert not LocalBackend(tmp_path / "b").exists(keys["confidential"][0])
    assert {s.pending_objects for s in r.status().values()} == {0}


def test_replicator_thread_survives_unexpected_errors(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    keys = fake_vault(primary, n_packs=1)
    dest = MemoryBackend()
    calls = {"n": 0}

    def opener(r: Replica) -> Backend:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("driver bug")
        return dest

    with Replicator(
        primary, [Replica("r", "memory://r")], interval=0.02, max_backoff=0.05, open_backend=opener
    ) as r:
        assert r.wait_in_sync(10), r.status()
    assert calls["n"] >= 2
    assert dest.exists(keys["index"][0])


def test_stop_interrupts_a_long_pass_between_objects(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    for i in range(400):
        put_named(primary, "data/public/", f"pack {i}".encode())
    shipped = []

    class SlowReplica(MemoryBackend):
        def put_stream(self, key, stream, size=None, *, overwrite=False, sync=True):  # type: ignore[override]
            time.sleep(0.01)
            super().put_stream(key, stream, size, overwrite=overwrite, sync=sync)
            shipped.append(key)

    dest = SlowReplica()
    r = Replicator(
        primary, [Replica("slow", "memory://slow")], interval=0.05, open_backend=lambda _: dest
    ).start()
    while len(shipped) < 5:
        time.sleep(0.01)
    t0 = time.monotonic()
    r.stop()
    assert time.monotonic() - t0 < 2.0  # not the 4 s or more the remaining ~395 objects would take
    assert 5 <= len(shipped) < 400
    assert all(dest.exists(k) for k in shipped)  # what was shipped stayed shipped


def test_replica_copy_with_other_bytes_is_reported_not_overwritten(tmp_path) -> None:
    """If the replica already holds other bytes under a name (a damaged replica copy that the
    listing did not reveal), the pass reports it and leaves it for verify / repair of the replica."""
    from dingvault.vault.replication import ReplicationResult, ship

    primary = LocalBackend(tmp_path / "p")
    key = put_named(primary, "data/public/", b"the real pack")
    dest = MemoryBackend()
    dest.put(key, b"rotten copy on the replica")
    result = ReplicationResult(replica="r")
    ship(primary, dest, list_primary(primary, None), {}, result)  # {}: a stale view of the replica
    assert result.ok and result.mismatched == [key] and result.copied == 0
    assert dest.get(key) == b"rotten copy on the replica"


def test_corrupt_report_clears_once_the_primary_is_repaired(tmp_path) -> None:
    primary = LocalBackend(tmp_path / "p")
    data = b"a pack that will rot"
    key = put_named(primary, "data/public/", data)
    path = primary.path_for(key)
    path.write_bytes(b"rotten")
    r = Replicator(primary, [Replica("r", "memory://r")], open_backend=lambda _: MemoryBackend())
    r.run_once()
    assert r.status()["r"].corrupt_on_primary == (key,)
    path.write_bytes(data)  # repair put the good bytes back
    r.run_once()
    assert r.status()["r"].corrupt_on_primary == ()
    assert r.status()["r"].pending_objects == 0
