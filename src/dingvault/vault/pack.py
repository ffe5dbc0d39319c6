"""Packs: the files that hold blobs.

A pack holds blobs of one storage class, gathered into *segments*. A segment is a run of blob
plaintexts compressed together (zstd) and encrypted as one AEAD message, which is what makes
small JSON records cheap: one compression frame and one GCM tag per ~256 KiB instead of per
record, and far better compression than record-by-record. Any blob is still readable alone with
one ranged read of its segment.

Layout (all integers little-endian unless stated)::

    prefix   "DVPK" | version u8 = 1 | class u8 | reserved u16 = 0 | salt 32 bytes        (40 bytes)
    segment* AES-256-GCM(pack key, nonce = 00000000 || u64be(offset), codec u8 || payload)
    header   AES-256-GCM(pack key, nonce = FF*12, header plaintext, aad = prefix)
    trailer  header length u32 | "DVPE"

The pack key is derived from the class key and the salt (``crypto.pack_key``). A pack is stored
under ``data/<class>/<first two hex digits>/<sha256 of the whole file>``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import NamedTuple

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import crypto
from .errors import IntegrityError
from .levels import StorageClass

PACK_MAGIC = b"DVPK"
TRAILER_MAGIC = b"DVPE"
PACK_VERSION = 1
PREFIX_SIZE = 40
TRAILER_SIZE = 8
ID_SIZE = 32

CODEC_RAW = 0
CODEC_ZSTD = 1

BLOB_DATA = 0
BLOB_TREE = 1

_SEG_HEAD = struct.Struct("<QIII")  # offset, stored length, plain length, blob count
_BLOB_ENTRY = struct.Struct("<32sBI")  # id, type, length
_PREFIX = struct.Struct("<4sBBH32s")
_TRAILER = struct.Struct("<I4s")

# A segment whose compressed form saves less than this fraction is stored raw: already
# compressed media would only cost decompression time for nothing.
MIN_SAVING = 0.03
ZSTD_LEVEL = 3


class BlobEntry(NamedTuple):
    """Where one blob lives inside a pack. (A NamedTuple: millions are made during ingest.)"""

    blob_id: bytes
    blob_type: int
    seg_offset: int  # byte offset of the segment in the pack
    seg_length: int  # stored (encrypted) length of the segment
    offset: int  # offset of the blob inside the segment's plaintext
    length: int  # plaintext length of the blob


@dataclass(frozen=True)
class SegmentInfo:
    offset: int
    stored_length: int
    plain_length: int
    blobs: tuple[tuple[bytes, int, int], ...]  # (id, type, length) in order


@dataclass(frozen=True)
class PackHeader:
    storage_class: StorageClass
    salt: bytes
    segments: tuple[SegmentInfo, ...]

    def entries(self) -> Iterator[BlobEntry]:
        for seg in self.segments:
            pos = 0
            for blob_id, blob_type, length in seg.blobs:
                yield BlobEntry(blob_id, blob_type, seg.offset, seg.stored_length, pos, length)
                pos += length


def pack_object_key(storage_class: StorageClass, pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"data/{storage_class.label}/{h[:2]}/{h}"


def parse_pack_key(key: str) -> tuple[StorageClass, bytes] | None:
    """(class, pack id) from an object key, or None when the key is not a well-formed pack name."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "data":
        return None
    try:
        cls = StorageClass.parse(parts[1])
        pack_id = bytes.fromhex(parts[3])
    except ValueError:
        return None
    if len(pack_id) != ID_SIZE or parts[2] != parts[3][:2] or parts[1] != cls.label:
        return None
    return cls, pack_id


class SegmentCodec:
    """Compress+encrypt / decrypt+decompress segments; reuses its zstd contexts (not thread-safe)."""

    def __init__(self) -> None:
        self._cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self._dctx = zstandard.ZstdDecompressor()

    def encode(self, aead: AESGCM, offset: int, plain: bytes) -> bytes:
        packed = self._cctx.compress(plain)
        if len(packed) <= len(plain) * (1 - MIN_SAVING):
            body = bytes((CODEC_ZSTD,)) + packed
        else:
            body = bytes((CODEC_RAW,)) + plain
        return aead.encrypt(crypto.segment_nonce(offset), body, None)

    def decode(self, aead: AESGCM, offset: int, stored: bytes, plain_length: int, *, what: str) -> bytes:
        try:
            body = aead.decrypt(crypto.segment_nonce(offset), stored, None)
        except InvalidTag:
            raise IntegrityError(f"{what}: segment at offset {offset} failed authentication") from None
        codec = body[0] if body else -1
        if codec == CODEC_RAW:
            plain = body[1:]
        elif codec == CODEC_ZSTD:
            try:
                # Segments are authenticated before this point, so their frames (which carry the
                # content size) come from this code, not from an attacker.
                plain = self._dctx.decompress(body[1:], max_output_size=max(plain_length, 0))
            except zstandard.ZstdError as exc:
                raise IntegrityError(
                    f"{what}: segment at offset {offset} does not decompress: {exc}"
                ) from None
        else:
            raise IntegrityError(f"{what}: segment at offset {offset} has unknown codec {codec}")
        if plain_length >= 0 and len(plain) != plain_length:
            raise IntegrityError(
                f"{what}: segment at offset {offset} holds {len(plain)} bytes, header says {plain_length}"
            )
        return plain


class PackBuilder:
    """Builds one pack in memory. Blobs are added a segment at a time."""

    def __init__(
        self, storage_class: StorageClass, class_key: bytes, codec: SegmentCodec, salt: bytes
    ) -> None:
        self.storage_class = storage_class
        self.salt = salt
        self._aead = AESGCM(crypto.pack_key(class_key, salt))
        self._codec = codec
        self._prefix = _PREFIX.pack(PACK_MAGIC, PACK_VERSION, int(storage_class), 0, salt)
        # The pack's parts, kept apart: a buffer grown segment by segment is reallocated (and
        # copied) as it grows, and the freed copies of several MiB fragment the heap. The writer
        # streams the parts to the backend (`finish_parts`); only `finish` joins them.
        self._parts: list[bytes] = [self._prefix]
        self._size = len(self._prefix)
        self._segments: list[SegmentInfo] = []
        self.blob_count = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def empty(self) -> bool:
        return not self._segments

    def add_segment(self, blobs: list[tuple[bytes, int, bytes]]) -> list[BlobEntry]:
        """Append one segment holding ``blobs`` (id, type, plaintext); returns their entries."""
        offset = self._size
        # A large blob has a segment of its own: no copy of it just to join one part.
        plain = blobs[0][2] if len(blobs) == 1 else b"".join([b[2] for b in blobs])
        stored = self._codec.encode(self._aead, offset, plain)
        self._parts.append(stored)
        n_stored = len(stored)
        self._size += n_stored
        lengths = [len(b[2]) for b in blobs]
        starts = accumulate(lengths, initial=0)
        entries = [
            BlobEntry(b[0], b[1], offset, n_stored, start, length)
            for b, start, length in zip(blobs, starts, lengths, strict=False)
        ]
        self._segments.append(
            SegmentInfo(
                offset,
                n_stored,
                len(plain),
                tuple((b[0], b[1], n) for b, n in zip(blobs, lengths, strict=True)),
            )
        )
        self.blob_count += len(blobs)
        return entries

    def finish_parts(self) -> tuple[bytes, list[bytes], int]:
        """(pack id, the pack's bytes as consecutive parts, its size), not joined: the writer
        streams the parts to the backend (`streams.PartsReader`), so a pack never exists twice in memory
        and no pack-sized buffer is allocated and freed per pack. The builder must not be used
        afterwards."""
        header = encode_header(self._segments)
        sealed = self._aead.encrypt(crypto.HEADER_NONCE, header, self._prefix)
        parts, self._parts = self._parts, []
        parts += (sealed, _TRAILER.pack(len(sealed), TRAILER_MAGIC))
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return digest.digest(), parts, sum(map(len, parts))

    def finish(self) -> tuple[bytes, bytes]:
        """(pack id, pack bytes). The builder must not be used afterwards."""
        pack_id, parts, _size = self.finish_parts()
        return pack_id, b"".join(parts)


def encode_header(segments: list[SegmentInfo]) -> bytes:
    out = bytearray(struct.pack("<I", len(segments)))
    for seg in segments:
        out += _SEG_HEAD.pack(seg.offset, seg.stored_length, seg.plain_length, len(seg.blobs))
        for blob_id, blob_type, length in seg.blobs:
            out += _BLOB_ENTRY.pack(blob_id, blob_type, length)
    return bytes(out)


def _decode_header(raw: bytes, what: str) -> list[SegmentInfo]:
    try:
        (count,) = struct.unpack_from("<I", raw, 0)
        pos = 4
        segments = []
        for _ in range(count):
            offset, stored, plain, nblobs = _SEG_HEAD.unpack_from(raw, pos)
            pos += _SEG_HEAD.size
            blobs = []
            total = 0
            for _ in range(nblobs):
                blob_id, blob_type, length = _BLOB_ENTRY.unpack_from(raw, pos)
                pos += _BLOB_ENTRY.size
                blobs.append((blob_id, blob_type, length))
                total += length
            if total != plain:
                raise IntegrityError(
                    f"{what}: segment at {offset} lists {total} blob bytes but holds {plain}"
                )
            segments.append(SegmentInfo(offset, stored, plain, tuple(blobs)))
        if pos != len(raw):
            raise IntegrityError(f"{what}: {len(raw) - pos} stray bytes after the pack header")
        return segments
    except struct.error as exc:
        raise IntegrityError(f"{what}: truncated pack header ({exc})") from None


def parse_prefix(prefix: bytes, what: str) -> tuple[StorageClass, bytes]:
    if len(prefix) < PREFIX_SIZE:
        raise IntegrityError(f"{what}: too short to be a pack ({len(prefix)} bytes)")
    magic, version, cls, reserved, salt = _PREFIX.unpack_from(prefix, 0)
    if magic != PACK_MAGIC:
        raise IntegrityError(f"{what}: not a pack (bad magic {magic!r})")
    if version != PACK_VERSION or reserved != 0:
        raise IntegrityError(f"{what}: unsupported pack version {version} / reserved {reserved}")
    try:
        storage_class = StorageClass(cls)
    except ValueError:
        raise IntegrityError(f"{what}: unknown storage class {cls}") from None
    return storage_class, salt


def read_header(
    prefix: bytes,
    tail: bytes,
    pack_size: int,
    class_keys: dict[StorageClass, bytes],
    what: str,
    expected_class: StorageClass | None = None,
) -> PackHeader:
    """Parse a pack's header from its first PREFIX_SIZE bytes and its tail (which must end the pack
    and contain the sealed header and trailer)."""
    storage_class, salt = parse_prefix(prefix, what)
    if expected_class is not None and storage_class != expected_class:
        raise IntegrityError(
            f"{what}: holds class {storage_class.label}, its name says {expected_class.label}"
        )
    if len(tail) < TRAILER_SIZE:
        raise IntegrityError(f"{what}: too short to hold a pack trailer")
    hlen, magic = _TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    if magic != TRAILER_MAGIC:
        raise IntegrityError(f"{what}: bad trailer magic {magic!r} (truncated or damaged pack)")
    if hlen < crypto.TAG_SIZE or hlen + TRAILER_SIZE + PREFIX_SIZE > pack_size:
        raise IntegrityError(f"{what}: header length {hlen} does not fit in a {pack_size}-byte pack")
    if hlen + TRAILER_SIZE > len(tail):
        raise ValueError("tail too short")  # caller reads more and retries
    sealed = tail[len(tail) - TRAILER_SIZE - hlen : len(tail) - TRAILER_SIZE]
    key = class_keys.get(storage_class)
    if key is None:
        from .errors import LevelNotAvailable

        raise LevelNotAvailable(f"{what}: this key cannot read {storage_class.label} packs")
    aead = AESGCM(crypto.pack_key(key, salt))
    try:
        raw = aead.decrypt(crypto.HEADER_NONCE, sealed, prefix[:PREFIX_SIZE])
    except InvalidTag:
        raise IntegrityError(f"{what}: pack header failed authentication") from None
    segments = _decode_header(raw, what)
    # Segments must tile the space between prefix and header exactly: a pack with gaps or
    # overlaps was not written by this code.
    pos = PREFIX_SIZE
    for seg in segments:
        if seg.offset != pos:
            raise IntegrityError(f"{what}: segment at {seg.offset} where {pos} was expected")
        pos += seg.stored_length
    if pos != pack_size - TRAILER_SIZE - hlen:
        raise IntegrityError(
            f"{what}: segments end at {pos}, header starts at {pack_size - TRAILER_SIZE - hlen}"
        )
    return PackHeader(storage_class, salt, tuple(segments))


def pack_aead(class_key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(crypto.pack_key(class_key, salt))


def check_pack(
    data: bytes,
    class_keys: dict[StorageClass, bytes],
    id_keys: dict[StorageClass, bytes],
    codec: SegmentCodec,
    *,
    what: str,
    expected_id: bytes | None = None,
    expected_class: StorageClass | None = None,
) -> tuple[PackHeader, list[str]]:
    """Fully check a pack held in memory: name hash, header, every segment, every blob's id.

    Returns the header and a list of problems, one per damaged blob/segment (empty when sound).
    Raises IntegrityError when the pack as a whole is unreadable.
    """
    import blake3

    if expected_id is not None and hashlib.sha256(data).digest() != expected_id:
        problems = [f"{what}: content does not match its name (sha256 differs)"]
    else:
        problems = []
    header = read_header(data[:PREFIX_SIZE], data, len(data), class_keys, what, expected_class)
    aead = pack_aead(class_keys[header.storage_class], header.salt)
    id_key = id_keys[header.storage_class]
    for seg in header.segments:
        try:
            plain = codec.decode(
                aead,
                seg.offset,
                data[seg.offset : seg.offset + seg.stored_length],
                seg.plain_length,
                what=what,
            )
        except IntegrityError as exc:
            problems.append(str(exc))
            continue
        pos = 0
        mv = memoryview(plain)
        for blob_id, _type, length in seg.blobs:
            if blake3.blake3(mv[pos : pos + length], key=id_key).digest() != blob_id:
                problems.append(f"{what}: blob {blob_id.hex()} does not match its id")
            pos += length
    return header, problems
