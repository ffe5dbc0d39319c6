"""Where the vault's bytes live: the small interface every backend implements.

Keys are relative, '/'-separated names such as ``config``, ``keys/<id>``, ``data/ab/<packid>``,
``index/<id>``, ``snapshots/<id>``, ``locks/<id>``. Objects are write-once unless a method says
otherwise: the repository above never rewrites an object in place (restic's rule), which is what
makes crash safety and replication simple.

Durability contract (what the repository may rely on):

* ``put``/``put_stream`` with ``sync=True`` (the default) return only when the object is durable
  (file and directory fsynced / S3 PUT acknowledged) and visible whole to every reader.
* With ``sync=False`` the object is *visible* whole to readers of this running system at once (the
  rename is atomic), but durability is deferred to the next ``sync()``. After a power loss or OS
  crash, an object written with ``sync=False`` and not yet covered by ``sync()`` may be missing, or
  (on a local filesystem) present with a short / zero-filled body. So: write packs with
  ``sync=False``, call ``sync()``, *then* write the index that references them. A process crash
  (not an OS crash) loses nothing that ``put`` returned for. On S3 ``sync=False`` changes nothing.
* ``sync()`` makes every earlier ``sync=False`` write (and delete) by this backend object durable.

Ranged reads follow slicing rules: ``get(key, offset, length)`` returns ``data[offset:offset+length]``
(short at the end of the object, ``b""`` past it).
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


class InvalidKey(BackendError):
    """The key is not a valid relative object name (empty parts, '..', backslashes, NUL, ...)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float = 0.0  # seconds since the epoch when the object was written (0.0 if unknown)


class Backend(Protocol):
    """The contract. Every method raises BackendError (or a subclass) with a clear message."""

    url: str  # e.g. file:///srv/vault or s3://bucket/prefix (never contains secrets)
    # Optional, read with getattr (default False): True when a ``sync=False`` write is only a copy
    # into local memory, so the vault writer need not overlap it with packing (vault.writer).
    # stores_inline: bool

    def put(self, key: str, data: bytes, *, overwrite: bool = False, sync: bool = True) -> None:
        """Store ``data`` atomically: readers see the whole object or nothing.

        With ``overwrite=False`` the write is create-only: ObjectExists if the key holds other
        bytes, race-free against concurrent writers of the same key. If the key already holds
        exactly these bytes the put succeeds (idempotent): a write retried after a lost
        acknowledgement must not fail, and for content-addressed objects it is the same object.
        With ``sync=True`` durable when it returns; see the module docstring for ``sync=False``.
        """

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        size: int | None = None,
        *,
        overwrite: bool = False,
        sync: bool = True,
    ) -> None:
        """As put, from a file-like object read to EOF (never held whole in memory).

        ``size``, when given, is checked: a stream that ends early or runs long raises
        BackendError and leaves no object behind.
        """

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read the whole object, or ``length`` bytes from ``offset`` (a ranged read)."""

    def open(self, key: str) -> BinaryIO:
        """A streaming reader over the object (close it; it is a context manager)."""

    def stat(self, key: str) -> ObjectInfo:
        """Size (and write time) of the object; ObjectNotFound if absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a string prefix, not only a directory),
        in no particular order. Objects being written are never listed."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting an absent key is not an error."""

    def sync(self) -> None:
        """Make every earlier ``sync=False`` write durable (a no-op where writes are always durable)."""

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes older than ``older_than`` seconds (temp files,
        unfinished multipart uploads); returns how many were removed. Never touches objects."""

    def close(self) -> None:
        """Release connections / handles. The backend is unusable afterwards."""


def check_key(key: str) -> str:
    """Validate an object key; the same rules on every backend so a vault copies anywhere.

    Keys are relative '/'-separated names of non-empty parts; '.', '..', backslashes, NUL and
    control characters are refused (they would escape the root or mean different things on
    different stores), as are parts starting with '.tmp-' (reserved for in-flight local writes).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"invalid object key {key!r}: empty")
    if len(key) > 1024:
        raise InvalidKey(f"invalid object key {key[:40]!r}...: longer than 1024 characters")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in key):
        raise InvalidKey(f"invalid object key {key!r}: control character or backslash")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"invalid object key {key!r}: empty, '.' or '..' path part")
        if part.startswith(TEMP_PREFIX):
            raise InvalidKey(f"invalid object key {key!r}: parts starting with {TEMP_PREFIX!r} are reserved")
    return key


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise BackendError(f"invalid range offset={offset} length={length}")


TEMP_PREFIX = ".tmp-"
