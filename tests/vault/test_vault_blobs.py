"""Blobs: round trips (property-based), dedup, levels, read-your-writes, integrity on read."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vault_helpers import flip_bit, reopen

from dingvault.vault import BlobNotFound, IntegrityError, Vault, VaultError

LEVEL = st.sampled_from(["public", "internal", "confidential"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blobs=st.lists(st.tuples(st.binary(max_size=3000), LEVEL), max_size=30))
def test_put_get_round_trip(mem_vault: Vault, blobs: list[tuple[bytes, str]]) -> None:
    with mem_vault.writer(max_pack_age=None) as w:
        ids = [w.put_blob(data, level) for data, level in blobs]
    for (data, level), bid in zip(blobs, ids, strict=True):
        assert mem_vault.get_blob(bid) == data
        assert bid == mem_vault.blob_id(data, level)
        assert mem_vault.blob_level(bid) == level


def test_round_trip_survives_reopen_on_every_backend(vault: Vault, cache_dir) -> None:
    payloads = [os.urandom(n) for n in (0, 1, 100, 70_000, 300_000)] + ["钉钉審批 合同".encode() * 50]
    with vault.writer() as w:
        ids = [w.put_blob(p, "internal") for p in payloads]
    v2 = reopen(vault, cache_dir)
    try:
        assert [v2.get_blob(i) for i in ids] == payloads
    finally:
        v2.close()


def test_equal_data_is_stored_once_per_level(mem_vault: Vault) -> None:
    data = b'{"userid":"u1","name":"\xe9\x99\xb3\xe5\xa4\xa7\xe6\x96\x87"}' * 20
    with mem_vault.writer() as w:
        a = w.put_blob(data, "internal")
        b = w.put_blob(data, "internal")
        c = w.put_blob(data, "confidential")
    assert a == b
    assert a != c  # levels never share storage: a confidential copy is never in an internal pack
    with mem_vault.writer() as w:
        assert w.put_blob(data, "internal") == a
        w.flush()
        assert w.stats["blobs_new"] == 0 and w.stats["blobs_dedup"] == 1
    assert mem_vault.index.blob_count() == 2


def test_blobs_written_by_one_writer_are_deduplicated_by_the_next(mem_vault: Vault) -> None:
    blobs = [os.urandom(500) for _ in range(300)]
    with mem_vault.writer() as w:
        for b in blobs:
            w.put_blob(b, "public")
    packs_before = mem_vault.index.stats()["packs"]
    with mem_vault.writer() as w:
        for b in blobs:
            w.put_blob(b, "public")
    assert mem_vault.index.stats()["packs"] == packs_before


def test_read_your_writes_before_flush(mem_vault: Vault) -> None:
    with mem_vault.writer(max_pack_age=None) as w:
        bid = w.put_blob(b"not yet flushed", "public")
        assert mem_vault.get_blob(bid) == b"not yet flushed"


def test_unknown_blob_is_a_clear_error(mem_vault: Vault) -> None:
    with pytest.raises(BlobNotFound, match="not in the vault's index"):
        mem_vault.get_blob(b"\x01" * 32)


def test_damaged_segment_raises_integrity_error_on_read(mem_vault: Vault) -> None:
    with mem_vault.writer() as w:
        bid = w.put_blob(os.urandom(2000), "internal")
    pack = next(p for p in mem_vault.list_packs() if p.level == "internal")
    flip_bit(mem_vault.backend, pack.key, 8 * 60)  # inside the first segment
    mem_vault._segments.clear()
    with pytest.raises(IntegrityError, match="failed authentication"):
        mem_vault.get_blob(bid)


def test_unknown_level_is_refused(mem_vault: Vault) -> None:
    with mem_vault.writer() as w, pytest.raises(ValueError, match="unknown level"):
        w.put_blob(b"x", "secret")


def test_writer_timer_makes_blobs_durable_without_flush(mem_vault: Vault) -> None:
    import time

    with mem_vault.writer(max_pack_age=0.2) as w:
        bid = w.put_blob(b"event-driven capture", "internal")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not mem_vault.has_blob(bid):
            time.sleep(0.05)
        assert mem_vault.has_blob(bid), "the open pack was not closed within max_pack_age"
        assert not w.holds(bid) or mem_vault.has_blob(bid)


def test_open_stream_concatenates_chunks(mem_vault: Vault) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    with mem_vault.writer() as w:
        ids = w.put_stream(io.BytesIO(data), "confidential")
    assert len(ids) >= 2
    assert mem_vault.open_stream(ids).read() == data


def test_writer_after_close_refuses(mem_vault: Vault) -> None:
    w = mem_vault.writer()
    w.close()
    with pytest.raises(VaultError, match="closed"):
        w.put_blob(b"x", "public")


def test_one_writer_and_reads_shared_between_threads(mem_vault: Vault) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(t: int) -> list[tuple[bytes, bytes]]:
        out = []
        for i in range(150):
            data = f"thread {t} record {i} 線程".encode() * (1 + i % 7)
            out.append((w.put_blob(data, ["public", "internal", "confidential"][i % 3]), data))
            if i % 50 == 0:
                assert mem_vault.get_blob(out[0][0]) == out[0][1]  # read while others write
        return out

    with mem_vault.writer(max_pack_age=0.05) as w, ThreadPoolExecutor(4) as pool:
        results = [r for batch in pool.map(work, range(4)) for r in batch]
    assert len({bid for bid, _ in results}) == 600
    for bid, data in results:
        assert mem_vault.get_blob(bid) == data
