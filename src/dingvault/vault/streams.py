"""Small stream helpers shared by the vault's writers and backends."""

from __future__ import annotations

import io
from collections import deque
from typing import Any, BinaryIO


def read_exactly(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes, fewer only at the end of the stream (raw streams may return short reads)."""
    first = stream.read(n)
    if not first or len(first) >= n:
        return first
    parts = [first]
    got = len(first)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class Prepend(io.RawIOBase):
    """``head`` (already read) followed by the rest of ``stream``, without copying the stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head: memoryview | None = memoryview(head) if head else None
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        if self._head is not None:
            n = min(len(out), len(self._head))
            out[:n] = self._head[:n]
            self._head = self._head[n:] if n < len(self._head) else None  # let the head go
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer, no copy in between
            try:
                return int(readinto(out) or 0)
            except (NotImplementedError, io.UnsupportedOperation):
                pass  # a raw stream that only implements read() (RawIOBase's readinto is abstract)
        data = self._stream.read(len(out))
        out[: len(data)] = data
        return len(data)


class PartsReader(io.RawIOBase):
    """A list of bytes objects read as one stream. A part that fits the read is returned as it
    is, without a copy (packs are stored from their segments this way)."""

    def __init__(self, parts: list[bytes]) -> None:
        super().__init__()
        self._parts = deque(p for p in parts if p)  # an empty part would read as the end
        self._offset = 0  # into the first part

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            rest = list(self._parts)
            if rest:
                rest[0] = rest[0][self._offset :]
            self._parts.clear()
            self._offset = 0
            return b"".join(rest)
        return self._take(size) if self._parts and size else b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _take(self, size: int) -> bytes:
        """At most ``size`` bytes from the first part."""
        part = self._parts[0]
        if self._offset == 0 and len(part) <= size:
            self._parts.popleft()
            return part
        piece = part[self._offset : self._offset + size]
        self._offset += len(piece)
        if self._offset >= len(part):
            self._parts.popleft()
            self._offset = 0
        return piece
