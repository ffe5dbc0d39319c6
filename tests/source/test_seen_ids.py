"""The run's set of yielded ids: exact, and its memory does not grow with how many ids it holds."""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import tracemalloc

import pytest

from dingvault.source.collectors.seen_ids import SeenIds


def test_an_id_is_new_once_and_only_once() -> None:
    rng = random.Random(7)
    ids = [f"task-{rng.randrange(50_000):05d}" for _ in range(120_000)]
    expected: set[str] = set()
    with SeenIds() as seen:
        for start in range(0, len(ids), 97):
            page = ids[start : start + 97]
            firsts = seen.add_new(page)
            for task_id, first in zip(page, firsts, strict=True):
                assert first == (task_id not in expected)
                expected.add(task_id)
        assert len(seen) == len(expected)
        assert not any(seen.add_new(sorted(expected)[:200]))  # every one of them is kept
        assert seen.add("new-one") and not seen.add("new-one")
        # Ids that differ only in case or by a trailing space are different ids.
        assert seen.add("Task-00001") and seen.add("task-00001 ")


def _sqlite_memory() -> int | None:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    cur, hi = ctypes.c_int64(), ctypes.c_int64()
    lib.sqlite3_status64(0, ctypes.byref(cur), ctypes.byref(hi), 0)  # SQLITE_STATUS_MEMORY_USED
    return cur.value


def test_holding_many_ids_costs_neither_python_objects_nor_unbounded_sqlite_memory() -> None:
    if _sqlite_memory() is None:
        pytest.skip("no libsqlite3 to ask for SQLite's memory")
    ids = [f"{i:024x}" for i in range(300_000)]  # ~11 MB of ids as a Python set
    with SeenIds() as seen:
        tracemalloc.start()
        try:
            for start in range(0, len(ids), 50):
                seen.add_new(ids[start : start + 50])
            python_held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        sqlite_held = _sqlite_memory()
        assert len(seen) == 300_000
    assert python_held < 1_000_000, python_held
    assert sqlite_held is not None and sqlite_held < 8_000_000, sqlite_held  # the rest spilled to disk
