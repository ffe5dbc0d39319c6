"""Spooled downloads: hashed on the way in, memory bounded by a shared budget."""

import asyncio
import hashlib
import tempfile

from dingvault.backup.spool import MEMORY_LIMIT, SpoolBudget, spool


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


def test_a_failed_download_leaves_nothing_behind(tmp_path):
    async def broken():
        yield b"partial"
        raise ConnectionError("cut")

    budget = SpoolBudget()
    try:
        asyncio.run(spool(broken(), tmp_path, budget))
    except ConnectionError:
        pass
    else:
        raise AssertionError("the error must propagate")
    assert budget.in_memory == 0 and not list(tmp_path.iterdir())
