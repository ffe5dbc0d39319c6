"""Content-defined chunking: round trips, and a changed file stores only what changed."""

from __future__ import annotations

import io
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dingvault.vault import Vault
from dingvault.vault.chunker import Chunker, ChunkerParams

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384, seed=12345)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200_000), st.integers(min_value=1, max_value=2**40))
def test_chunks_concatenate_to_the_input(data: bytes, seed: int) -> None:
    chunker = Chunker(ChunkerParams(1024, 4096, 16384, seed))
    chunks = list(chunker.chunks(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert all(len(c) <= 16384 for c in chunks)
    assert all(len(c) >= 1024 for c in chunks[:-1])


def _data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_insertion_changes_few_chunks() -> None:
    base = _data(400_000, 1)
    edited = base[:200_000] + "inserted paragraph 新段落".encode() + base[200_000:]
    c = Chunker(SMALL)
    a = set(c.chunks(io.BytesIO(base)))
    b = list(c.chunks(io.BytesIO(edited)))
    changed = [x for x in b if x not in a]
    assert len(b) > 30
    assert len(changed) <= 3, f"{len(changed)} of {len(b)} chunks changed after one insertion"


def test_seed_changes_cut_points() -> None:
    data = _data(300_000, 2)
    a = [len(x) for x in Chunker(ChunkerParams(1024, 4096, 16384, 1)).chunks(io.BytesIO(data))]
    b = [len(x) for x in Chunker(ChunkerParams(1024, 4096, 16384, 987654321)).chunks(io.BytesIO(data))]
    assert a != b


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=50_000))
def test_put_stream_round_trip(mem_vault: Vault, data: bytes) -> None:
    with mem_vault.writer() as w:
        ids = w.put_stream(io.BytesIO(data), "internal")
    assert mem_vault.open_stream(ids).read() == data


def test_new_version_of_a_large_file_stores_only_the_change(mem_vault: Vault) -> None:
    v1 = _data(12 * 1024 * 1024, 3)
    v2 = v1[:6_000_000] + "a changed clause 條款".encode() + v1[6_000_000:]
    with mem_vault.writer() as w:
        ids1 = w.put_stream(io.BytesIO(v1), "confidential")
    before = mem_vault.index.stats()["pack_bytes"]
    with mem_vault.writer() as w:
        ids2 = w.put_stream(io.BytesIO(v2), "confidential")
    added = mem_vault.index.stats()["pack_bytes"] - before
    assert mem_vault.open_stream(ids2).read() == v2
    assert len(set(ids2) - set(ids1)) <= 2
    assert added < 9 * 1024 * 1024, f"stored {added} new bytes for a 20-byte edit of a 12 MiB file"


class _Trickle(io.RawIOBase):
    """A raw stream that returns at most 1,000 bytes per read (as pipes and sockets may)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self._data), 1000)
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def _stream_cuts(params: ChunkerParams, data: bytes) -> list[int]:
    """The chunk lengths pyfastcdc's stream chunker gives for the whole of ``data`` (the way every
    stream was cut before small ones were cut in place): stored chunks must not change with it."""
    chunker = Chunker(params)
    return [len(c.data) for c in chunker._cdc.cut_stream(io.BytesIO(data))]


def test_small_streams_are_cut_where_the_stream_chunker_cuts() -> None:
    # Lengths around the largest chunk, where the in-place and the streamed paths meet.
    for params, lengths in (
        (SMALL, [0, 1, 1023, 1024, 5000, 16383, 16384, 16385, 40_000, 200_000]),
        (ChunkerParams(seed=7), [10, 300_000, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 9_000_000]),
    ):
        for n in lengths:
            data = _data(n, n)
            expected = _stream_cuts(params, data)
            for stream, size in ((io.BytesIO(data), None), (_Trickle(data), None), (io.BytesIO(data), n)):
                # (with its size known, a stream is either read whole or handed to the stream chunker)
                chunks = list(Chunker(params).chunks(stream, size=size))  # type: ignore[arg-type]
                assert [len(c) for c in chunks] == expected, (params, n, size)
                assert b"".join(chunks) == data


class _Recording(io.BytesIO):
    """Records the sizes asked of ``read``: a file allocates what is asked before it reads."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_a_stream_of_known_size_is_asked_for_no_more_than_it_holds() -> None:
    params = ChunkerParams(seed=3)
    data = _data(60_000, 60_000)
    stream = _Recording(data)
    chunks = list(Chunker(params).chunks(stream, size=len(data)))
    assert b"".join(chunks) == data and [len(c) for c in chunks] == _stream_cuts(params, data)
    assert max(stream.asked) <= len(data) + 1, stream.asked  # not the largest chunk (4 MiB)


def test_a_stream_longer_than_announced_is_chunked_whole() -> None:
    params = ChunkerParams(seed=3)
    for announced, n in ((1000, 300_000), (1000, 6_000_000), (0, 5000)):
        data = _data(n, n)
        chunks = list(Chunker(params).chunks(io.BytesIO(data), size=announced))
        assert b"".join(chunks) == data, (announced, n)
        assert [len(c) for c in chunks] == _stream_cuts(params, data), (announced, n)
