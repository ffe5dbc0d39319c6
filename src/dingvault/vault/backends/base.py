"""Where the vault's bytes live: the small interface every backend implements.

Keys are relative, '/'-separated names such as ``config``, ``keys/<id>``, ``data/ab/<packid>``,
``index/<id>``, ``snapshots/<id>``, ``locks/<id>``. Objects are write-once unless a method says
otherwise: the repository above never rewrites an object in place (restic's rule), which is what
makes crash safety and replication simple.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class BackendError(Exception):
    """A backend operation failed after its retries; the message says what and where."""


class ObjectNotFound(BackendError):
    pass


class ObjectExists(BackendError):
    """A create-only write found the key already present."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class Backend(Protocol):
    """The contract. Every method raises BackendError (or a subclass) with a clear message."""

    url: str  # e.g. file:///srv/vault or s3://bucket/prefix (never contains secrets)

    def put(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Store ``data`` atomically: readers see the whole object or nothing.

        With ``overwrite=False`` the write is create-only (raises ObjectExists if present).
        Durable when it returns (fsync / S3 PUT acknowledged).
        """

    def put_stream(self, key: str, stream: BinaryIO, size: int, *, overwrite: bool = False) -> None:
        """As put, from a file-like object (large objects are never held whole in memory)."""

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read the whole object, or ``length`` bytes from ``offset`` (a ranged read)."""

    def open(self, key: str) -> BinaryIO:
        """A streaming reader over the object."""

    def stat(self, key: str) -> ObjectInfo:
        """Size of the object; ObjectNotFound if absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting an absent key is not an error."""
