"""Sealed metadata objects: index files, snapshots, catalog export descriptors, locks.

Stored form::

    "DVOB" | kind (4 ASCII bytes) | version u8 = 1 | nonce (12) | AES-256-GCM ciphertext+tag

The plaintext is zstd-compressed; the first 9 bytes are the AEAD's associated data, so an
object cannot be passed off as another kind. Objects are named by the SHA-256 of the stored
bytes (``index/<hex>``, ``snapshots/<hex>``, ``catalog/<hex>``), so anyone can check a file
against its name without the key.
"""

from __future__ import annotations

import hashlib

import zstandard

from . import crypto
from .errors import IntegrityError

OBJ_MAGIC = b"DVOB"
OBJ_VERSION = 1
KIND_INDEX = b"INDX"
KIND_SNAPSHOT = b"SNAP"
KIND_CATALOG = b"CATX"
KIND_LOCK = b"LOCK"
KIND_CONFIG = b"CONF"

MAX_OBJECT_PLAINTEXT = 1 << 30  # a guard against decompression bombs in damaged objects


def seal_object(sealer: crypto.Sealer, kind: bytes, payload: bytes) -> tuple[str, bytes]:
    """(hex name, stored bytes)."""
    head = OBJ_MAGIC + kind + bytes((OBJ_VERSION,))
    data = head + sealer.seal(zstandard.ZstdCompressor(level=3).compress(payload), head)
    return hashlib.sha256(data).hexdigest(), data


def open_object(
    sealer: crypto.Sealer, kind: bytes, data: bytes, *, what: str, name: str | None = None
) -> bytes:
    if name is not None and hashlib.sha256(data).hexdigest() != name:
        raise IntegrityError(f"{what}: content does not match its name (sha256 differs)")
    head = data[:9]
    if head[:4] != OBJ_MAGIC or head[4:8] != kind or len(head) < 9:
        raise IntegrityError(f"{what}: not a {kind.decode()} object (bad magic)")
    if head[8] != OBJ_VERSION:
        raise IntegrityError(f"{what}: unsupported object version {head[8]}")
    packed = sealer.open(data[9:], head, what=what)
    try:
        return zstandard.ZstdDecompressor().decompress(packed, max_output_size=MAX_OBJECT_PLAINTEXT)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: does not decompress: {exc}") from None
