"""Spooled downloads: hashed on the way in, memory bounded by a shared budget."""

import asyncio
import hashlib
import os
import tempfile

import pytest

from dingvault.backup.spool import MEMORY_LIMIT, SpoolBudget, TempFilePool, spool
from dingvault.vault.chunker import Chunker, ChunkerParams

SMALL_CHUNKS = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384, seed=12345)


async def _chunks(data: bytes, step: int = 1000):
    for i in range(0, len(data), step):
        yield data[i : i + step]


def test_spool_hashes_and_keeps_small_files_in_memory_within_the_budget(tmp_path):
    budget = SpoolBudget(budget=3000)
    data = b"x" * 2000
    first = asyncio.run(spool(_chunks(data), tmp_path, budget))
    assert first.size == 2000 and first.sha256 == hashlib.sha256(data).hexdigest()
    assert budget.in_memory == 2000
    second = asyncio.run(spool(_chunks(data), tmp_path, budget))
    assert budget.in_memory == 4000  # admitted while under budget
    third = asyncio.run(spool(_chunks(data), tmp_path, budget))
    assert budget.in_memory == 4000, "over budget: the third goes to disk"
    assert third.file.read() == data
    for d in (first, second, third):
        d.close()
    assert budget.in_memory == 0


def test_big_downloads_go_to_disk(tmp_path):
    budget = SpoolBudget()
    big = asyncio.run(spool(_chunks(b"y" * (MEMORY_LIMIT + 10), 65536), tmp_path, budget))
    assert budget.in_memory == 0 and big.size == MEMORY_LIMIT + 10
    big.close()


def test_a_download_announced_larger_than_the_limit_goes_to_disk_at_once(tmp_path):
    """No in-memory buffer is grown only to be copied out when the size says it will not fit."""
    budget = SpoolBudget()
    data = b"z" * 5000
    announced = asyncio.run(spool(_chunks(data), tmp_path, budget, expected_size=MEMORY_LIMIT + 1))
    assert budget.in_memory == 0 and announced.in_memory == 0
    assert not isinstance(announced.file, tempfile.SpooledTemporaryFile)
    assert announced.file.read() == data and announced.sha256 == hashlib.sha256(data).hexdigest()
    announced.close()
    small = asyncio.run(spool(_chunks(data), tmp_path, budget, expected_size=len(data)))
    assert budget.in_memory == len(data), "announced small: kept in memory"
    small.close()


def _spool_a_download_cut_short(tmp_path, budget: SpoolBudget) -> None:
    async def broken():
        yield b"partial"
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        asyncio.run(spool(broken(), tmp_path, budget))


def test_a_failed_download_leaves_nothing_behind(tmp_path):
    budget = SpoolBudget()
    _spool_a_download_cut_short(tmp_path, budget)
    assert budget.in_memory == 0 and not list(tmp_path.iterdir())


# ---- temporary files reused from one download to the next ------------------------------------------
def _disk_budget(tmp_path, **pool) -> SpoolBudget:
    """Every download to disk (no memory budget), through a pool of reused files."""
    return SpoolBudget(budget=0, files=TempFilePool(tmp_path, **pool))


def test_a_reused_file_gives_exactly_the_new_download_not_the_older_bytes_beyond_it(tmp_path):
    budget = _disk_budget(tmp_path)
    older = os.urandom(50_000)
    first = asyncio.run(spool(_chunks(older), tmp_path, budget))
    assert first.file.read() == older
    first.close()
    newer = os.urandom(3_000)
    second = asyncio.run(spool(_chunks(newer), tmp_path, budget))
    assert budget.files.created == 1, "the first download's file is the second's"
    assert second.size == 3_000 and second.sha256 == hashlib.sha256(newer).hexdigest()
    # Read as the vault does: the chunker reads to the end of the stream, in pieces or at once.
    assert b"".join(Chunker(SMALL_CHUNKS).chunks(second.file, size=second.size)) == newer
    second.file.seek(0)
    pieces = iter(lambda: second.file.read(700), b"")
    assert b"".join(pieces) == newer
    second.file.seek(0)
    assert second.file.read() == newer and second.file.read() == b""
    second.close()


def test_a_reused_file_longer_than_the_largest_chunk_is_chunked_to_its_own_end(tmp_path):
    budget = _disk_budget(tmp_path, max_file=1 << 20)
    long = os.urandom(60_000)
    first = asyncio.run(spool(_chunks(long, 8192), tmp_path, budget))
    first.close()
    data = os.urandom(40_000)  # over SMALL_CHUNKS.max_size: the stream chunker reads it
    second = asyncio.run(spool(_chunks(data, 8192), tmp_path, budget))
    assert budget.files.created == 1
    chunks = list(Chunker(SMALL_CHUNKS).chunks(second.file, size=second.size))
    assert len(chunks) > 1 and b"".join(chunks) == data
    second.close()


def test_the_pool_keeps_few_small_files_and_closes_the_rest(tmp_path):
    budget = _disk_budget(tmp_path, max_files=2, max_file=10_000)
    downloads = [asyncio.run(spool(_chunks(bytes([i]) * 5_000), tmp_path, budget)) for i in range(3)]
    big = asyncio.run(spool(_chunks(b"b" * 20_000), tmp_path, budget))
    files = [d.pooled[1] for d in (*downloads, big)]
    for d in (*downloads, big):
        d.close()
    assert [f.closed for f in files] == [False, False, True, True], (
        "two kept; the third and the big one closed"
    )
    again = [asyncio.run(spool(_chunks(b"a" * 100), tmp_path, budget)) for _ in range(3)]
    assert budget.files.created == 5, "two reused, one new"
    assert all(d.file.read() == b"a" * 100 for d in again)
    in_use = again.pop()
    for d in again:
        d.close()
    idle = [f for f, _held in budget.files._idle]
    assert len(idle) == 2 and not any(f.closed for f in idle)
    budget.files.close()
    assert all(f.closed for f in idle), "closing the pool closes its idle files"
    kept = in_use.pooled[1]
    in_use.close()
    assert kept.closed and not budget.files._idle, "given back after the pool closed: closed, not kept"


def test_a_failed_download_does_not_return_its_pooled_file(tmp_path):
    budget = _disk_budget(tmp_path)
    first = asyncio.run(spool(_chunks(b"q" * 9_000), tmp_path, budget))
    first.close()
    _spool_a_download_cut_short(tmp_path, budget)
    assert not budget.files._idle, "the file it was writing is closed, not kept half-written"
    assert budget.on_disk == 0


def test_a_download_in_a_reused_file_counts_what_the_file_holds_on_disk(tmp_path):
    budget = _disk_budget(tmp_path)
    first = asyncio.run(spool(_chunks(b"l" * 100_000), tmp_path, budget))
    assert budget.on_disk == 100_000
    first.close()
    assert budget.on_disk == 0
    second = asyncio.run(spool(_chunks(b"s" * 1_000), tmp_path, budget))
    assert second.file.read() == b"s" * 1_000
    assert budget.on_disk == 100_000, "the file still holds the first download's length"
    second.close()
    assert budget.on_disk == 0
