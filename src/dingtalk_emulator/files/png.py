"""PNG images of an exact byte size, generated lazily (zlib + struct, no imaging library).

The pixel data is stored with deflate "stored" blocks, so the file size is a simple function of
the image height and generation runs at memory speed: one 65,535-byte stored block holds exactly
15 rows of a 1456-pixel RGB image (15 × (1 + 3 × 1456) = 65,535). Each block is a seeded tile with
a few bytes varied by block index (and by the file version that last "edited" the block), so
versions of one image share most blocks. A `tEXt` chunk pads the file to the exact size wanted.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator

from .blob import CHECKSUMS, Lazy, Part, Raw, Seq
from .seeding import h64, rng

WIDTH = 1456
ROW = 1 + 3 * WIDTH  # filter byte + RGB
BLOCK = 65535  # one stored deflate block = 15 rows
ROWS_PER_BLOCK = BLOCK // ROW
BLOCKS_PER_IDAT = 16
SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_HEADER = b"\x78\x01"
_TEXT_KEYWORD = b"Comment\x00"
MIN_PAD = 12 + len(_TEXT_KEYWORD)
assert ROWS_PER_BLOCK * ROW == BLOCK


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _fixed_overhead(nblocks: int) -> int:
    groups = -(-nblocks // BLOCKS_PER_IDAT)
    idat = groups * 12 + len(ZLIB_HEADER) + nblocks * (5 + BLOCK)
    return len(SIGNATURE) + 25 + idat + 16 + 12  # + adler IDAT + IEND


def min_size() -> int:
    return _fixed_overhead(1)


def plan(target: int) -> tuple[int, int]:
    """(number of stored blocks, padding bytes) for a PNG of exactly `target` bytes."""
    if target < min_size():
        raise ValueError(f"PNG target {target} below minimum {min_size()}")
    n = max(1, (target - _fixed_overhead(0)) // (5 + BLOCK))
    while n > 1 and (_fixed_overhead(n) > target or 0 < target - _fixed_overhead(n) < MIN_PAD):
        n -= 1
    pad = target - _fixed_overhead(n)
    if 0 < pad < MIN_PAD:
        raise ValueError(f"PNG target {target} cannot be padded exactly")
    return n, pad


class BlockSource:
    """The raw (filtered scanline) bytes of block `i`, a pure function of (key, variant)."""

    def __init__(self, key: str, variant_of: Callable[[int], int]) -> None:
        self.key = key
        self.variant_of = variant_of
        tile = bytearray(rng("png-tile", key).randbytes(BLOCK))
        tile[::ROW] = bytes(ROWS_PER_BLOCK)  # filter type 0 (None) at each row start
        self._tile = bytes(tile)

    def block(self, i: int) -> bytes:
        buf = bytearray(self._tile)
        stamp = h64("png-block", self.key, i, self.variant_of(i)).to_bytes(8, "big") * 2
        for r in (0, 5, 10):  # offsets 1 + r*ROW are pixel bytes, never filter bytes
            buf[1 + r * ROW : 17 + r * ROW] = stamp
        return bytes(buf)


def png_part(
    key: str,
    target: int,
    variant_of: Callable[[int], int] = lambda i: 0,
    text: str = "",
    version_key: str = "",
) -> Part:
    """`key` seeds the pixels; `version_key` (default `key`) names this exact content for the cache."""
    nblocks, pad = plan(target)
    src = BlockSource(key, variant_of)
    height = nblocks * ROWS_PER_BLOCK
    head = SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", WIDTH, height, 8, 2, 0, 0, 0))
    parts: list[Part] = [Raw(head)]
    if pad:
        body = (text.encode("latin-1", "replace") or b"generated") * (pad // max(1, len(text) or 9) + 1)
        parts.append(Raw(chunk(b"tEXt", _TEXT_KEYWORD + body[: pad - MIN_PAD])))
    for g in range(0, nblocks, BLOCKS_PER_IDAT):
        first, last = g, min(nblocks, g + BLOCKS_PER_IDAT)
        size = 12 + (last - first) * (5 + BLOCK) + (len(ZLIB_HEADER) if first == 0 else 0)
        parts.append(Lazy(size, lambda first=first, last=last: _idat(src, first, last, nblocks)))
    cache_key = (version_key or key, f"adler{nblocks}")

    def adler_chunk() -> Iterator[bytes]:
        adler = CHECKSUMS.get_or_compute(cache_key, lambda: _adler(src, nblocks))
        yield chunk(b"IDAT", struct.pack(">I", adler))

    parts.append(Lazy(16, adler_chunk))
    parts.append(Raw(chunk(b"IEND", b"")))
    return Seq(parts)


def _idat(src: BlockSource, first: int, last: int, nblocks: int) -> Iterator[bytes]:
    pieces = [ZLIB_HEADER] if first == 0 else []
    for i in range(first, last):
        pieces.append(b"\x01" if i == nblocks - 1 else b"\x00")
        pieces.append(b"\xff\xff\x00\x00")  # LEN = 65535, NLEN = ~LEN
        pieces.append(src.block(i))
    yield chunk(b"IDAT", b"".join(pieces))


def _adler(src: BlockSource, nblocks: int) -> int:
    adler = 1
    for i in range(nblocks):
        adler = zlib.adler32(src.block(i), adler)
    return adler
