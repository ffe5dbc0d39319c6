"""In-memory backend: the contract without a disk, for tests and dry runs. Nothing survives the process."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from .base import BackendError, ObjectExists, ObjectInfo, ObjectNotFound, check_key, check_range


class MemoryBackend:
    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend({self.url!r}, {len(self._objects)} objects)"

    def put(self, key: str, data: bytes, *, overwrite: bool = False, sync: bool = True) -> None:
        check_key(key)
        data = bytes(data)
        with self._lock:
            if not overwrite and key in self._objects:
                if self._objects[key][0] == data:
                    return  # the same bytes are already there: a retried write succeeds
                raise ObjectExists(f"object {key} already exists in {self.url}")
            self._objects[key] = (data, time.time())

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        size: int | None = None,
        *,
        overwrite: bool = False,
        sync: bool = True,
    ) -> None:
        data = stream.read()
        if size is not None and len(data) != size:
            raise BackendError(f"stream for {key} had {len(data)} bytes, {size} declared")
        self.put(key, data, overwrite=overwrite)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        data = self._data(key)
        return data[offset:] if length is None else data[offset : offset + length]

    def _data(self, key: str) -> bytes:
        check_key(key)
        try:
            return self._objects[key][0]
        except KeyError:
            raise ObjectNotFound(f"object {key} not found in {self.url}") from None

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._data(key))

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        try:
            data, mtime = self._objects[key]
        except KeyError:
            raise ObjectNotFound(f"object {key} not found in {self.url}") from None
        return ObjectInfo(key=key, size=len(data), mtime=mtime)

    def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, len(d), t) for k, (d, t) in self._objects.items() if k.startswith(prefix)]
        for k, n, t in items:
            yield ObjectInfo(key=k, size=n, mtime=t)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def sync(self) -> None:
        pass

    def cleanup(self, older_than: float = 3600.0) -> int:
        return 0

    def close(self) -> None:
        pass
