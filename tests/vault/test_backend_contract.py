"""The backend contract, run against every backend (memory, local directory, S3 on moto)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest
from s3fixture import MotoS3  # the moto_s3 fixture comes from conftest.py

from dingvault.vault.backends import (
    Backend,
    BackendError,
    InvalidKey,
    LocalBackend,
    MemoryBackend,
    ObjectExists,
    ObjectNotFound,
)


@pytest.fixture(params=["memory", "local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    if request.param == "memory":
        b: Backend = MemoryBackend("contract")
    elif request.param == "local":
        b = LocalBackend(tmp_path / "vault")
    else:
        server: MotoS3 = request.getfixturevalue("moto_s3")
        b = server.backend(prefix="repo")
    yield b
    b.close()


def test_round_trip_and_stat(backend: Backend) -> None:
    data = os.urandom(70_000)
    backend.put("data/ab/abcdef", data)
    assert backend.get("data/ab/abcdef") == data
    assert backend.stat("data/ab/abcdef").size == len(data)
    assert backend.exists("data/ab/abcdef")
    assert not backend.exists("data/ab/other")


def test_empty_object(backend: Backend) -> None:
    backend.put("locks/empty", b"")
    assert backend.get("locks/empty") == b""
    assert backend.get("locks/empty", 0, 10) == b""
    assert backend.stat("locks/empty").size == 0


def test_ranged_reads_follow_slicing(backend: Backend) -> None:
    data = bytes(range(256)) * 40
    backend.put("index/1", data)
    assert backend.get("index/1", 100, 50) == data[100:150]
    assert backend.get("index/1", 10_000) == data[10_000:]
    assert backend.get("index/1", len(data) - 5, 100) == data[-5:]
    assert backend.get("index/1", len(data) + 10, 5) == b""
    assert backend.get("index/1", 7, 0) == b""
    with pytest.raises(BackendError):
        backend.get("index/1", -1, 4)


def test_missing_object_errors(backend: Backend) -> None:
    for call in (
        lambda: backend.get("snapshots/nope"),
        lambda: backend.get("snapshots/nope", 3, 4),
        lambda: backend.get("snapshots/nope", 3, 0),
        lambda: backend.stat("snapshots/nope"),
        lambda: backend.open("snapshots/nope"),
    ):
        with pytest.raises(ObjectNotFound, match="snapshots/nope"):
            call()


def test_create_only_and_overwrite(backend: Backend) -> None:
    backend.put("config", b"one")
    with pytest.raises(ObjectExists, match="config"):
        backend.put("config", b"two")
    with pytest.raises(ObjectExists):
        backend.put_stream("config", io.BytesIO(b"three"), 5)
    assert backend.get("config") == b"one"
    backend.put("config", b"four", overwrite=True)
    assert backend.get("config") == b"four"


def test_create_only_is_idempotent_for_identical_bytes(backend: Backend) -> None:
    """A retried write whose first attempt landed must not fail; other bytes still conflict."""
    data = os.urandom(5000)
    backend.put("data/ab/same", data)
    backend.put("data/ab/same", data)
    backend.put_stream("data/ab/same", io.BytesIO(data), len(data))
    backend.put_stream("data/ab/same", io.BytesIO(data))  # size unknown
    with pytest.raises(ObjectExists):
        backend.put("data/ab/same", data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    with pytest.raises(ObjectExists):
        backend.put_stream("data/ab/same", io.BytesIO(data + b"x"), len(data) + 1)
    assert backend.get("data/ab/same") == data
    assert [i.key for i in backend.list("data/ab/")] == ["data/ab/same"]


def test_concurrent_create_only_has_one_winner(backend: Backend) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            backend.put("locks/exclusive", f"writer {i}".encode())
            results.append(f"won {i}")
        except ObjectExists:
            results.append("lost")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1, results
    assert backend.get("locks/exclusive") == f"writer {winners[0].split()[1]}".encode()


def test_put_stream_and_open(backend: Backend) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    backend.put_stream("data/cd/pack", io.BytesIO(data), len(data))
    with backend.open("data/cd/pack") as f:
        first = f.read(1000)
        rest = f.read()
    assert first + rest == data


def test_put_stream_size_mismatch_leaves_nothing(backend: Backend) -> None:
    with pytest.raises(BackendError, match="data/ef/short"):
        backend.put_stream("data/ef/short", io.BytesIO(b"x" * 10), 20)
    with pytest.raises(BackendError, match="data/ef/long"):
        backend.put_stream("data/ef/long", io.BytesIO(b"x" * 30), 20)
    assert not backend.exists("data/ef/short")
    assert not backend.exists("data/ef/long")
    assert list(backend.list("data/ef")) == []


def test_list_by_prefix(backend: Backend) -> None:
    keys = ["config", "keys/k1", "data/ab/p1", "data/ab/p2", "data/abc/p3", "data/cd/p4", "index/i1"]
    for k in keys:
        backend.put(k, k.encode())
    listed = {i.key: i.size for i in backend.list()}
    assert listed == {k: len(k) for k in keys}
    assert {i.key for i in backend.list("data/")} == {"data/ab/p1", "data/ab/p2", "data/abc/p3", "data/cd/p4"}
    assert {i.key for i in backend.list("data/ab/")} == {"data/ab/p1", "data/ab/p2"}
    # A string prefix, not only a directory:
    assert {i.key for i in backend.list("data/ab")} == {"data/ab/p1", "data/ab/p2", "data/abc/p3"}
    assert {i.key for i in backend.list("data/ab/p")} == {"data/ab/p1", "data/ab/p2"}
    assert list(backend.list("nothing/")) == []
    assert all(i.mtime > 0 for i in backend.list())


def test_delete(backend: Backend) -> None:
    backend.put("snapshots/s1", b"s")
    backend.delete("snapshots/s1")
    assert not backend.exists("snapshots/s1")
    backend.delete("snapshots/s1")  # absent: not an error
    backend.put("snapshots/s1", b"again")  # create-only works again after delete
    assert backend.get("snapshots/s1") == b"again"


def test_sync_false_then_sync(backend: Backend) -> None:
    for i in range(5):
        backend.put(f"data/0{i}/p{i}", bytes([i]) * 100, sync=False)
    backend.sync()
    assert sorted(i.key for i in backend.list("data/")) == [f"data/0{i}/p{i}" for i in range(5)]
    assert backend.get("data/03/p3") == b"\x03" * 100


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a//b", "../escape", "data/../../etc", "a/./b", "tail/", "back\\slash", "nul\x00", ".tmp-x"],
)
def test_hostile_keys_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(InvalidKey):
        backend.put(key, b"x")
    with pytest.raises(InvalidKey):
        backend.get(key)
