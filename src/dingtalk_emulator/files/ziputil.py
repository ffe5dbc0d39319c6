"""A deterministic, streaming ZIP writer for stored (uncompressed) entries.

Stored entries make the archive size a sum of known lengths, so an .docx/.xlsx of an exact size
can be described before a byte is produced. Timestamps are fixed (1980-01-01 00:00) so the same
inputs always give the same bytes. Entries above 4 GiB are refused (no ZIP64).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from .blob import CHECKSUMS, Lazy, Part, Raw, Seq, crc32_of, read_all

_DOS_TIME = 0
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_FLAGS = 0x0800  # names are UTF-8
LOCAL_FIXED = 30
CENTRAL_FIXED = 46
EOCD = 22


def entry_overhead(name: str) -> int:
    n = len(name.encode())
    return LOCAL_FIXED + n + CENTRAL_FIXED + n


def zip_size(entries: list[tuple[str, int]]) -> int:
    return sum(entry_overhead(name) + length for name, length in entries) + EOCD


# A generated entry up to this size is kept once its CRC pass has produced it, so the archive's
# bytes do not generate it a second time (the CRC precedes the data in the local header).
MEMO_LIMIT = 4 << 20


def _memoizable(part: Part) -> bool:
    return not isinstance(part, Raw) and part.length <= MEMO_LIMIT


class _Memo(Part):
    """A generated part whose bytes, once produced in full for its checksum, serve the output too."""

    def __init__(self, part: Part) -> None:
        self.part = part
        self.length = part.length
        self.data: bytes | None = None

    def fill(self) -> bytes:
        if self.data is None:
            self.data = read_all(self.part)
        return self.data

    def chunks(self) -> Iterator[bytes]:
        if self.data is None:
            yield from self.part.chunks()
        elif self.data:
            yield self.data

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        if self.data is None:
            yield from self.part.iter_range(start, end)
        elif start < end:
            yield self.data[start:end]


def zip_part(key: str, entries: list[tuple[str, Part]]) -> Part:
    """A stored ZIP of the entries; `key` identifies the content for the CRC cache."""
    for name, part in entries:
        if part.length >= 0xFFFFFFFF:
            raise ValueError(f"zip entry {name} too large without ZIP64")

    entries = [(name, _Memo(part) if _memoizable(part) else part) for name, part in entries]

    def crc(name: str, part: Part) -> int:
        if isinstance(part, Raw):
            return zlib.crc32(part.data)
        if isinstance(part, _Memo):
            return CHECKSUMS.get_or_compute(
                (key, f"crc:{name}:{part.length}"), lambda: zlib.crc32(part.fill())
            )
        return CHECKSUMS.get_or_compute((key, f"crc:{name}:{part.length}"), lambda: crc32_of(part))

    parts: list[Part] = []
    offsets: list[int] = []
    pos = 0
    for name, part in entries:
        bname = name.encode()
        offsets.append(pos)

        def local_header(name: str = name, part: Part = part, bname: bytes = bname) -> Iterator[bytes]:
            yield (
                struct.pack(
                    "<IHHHHHIIIHH",
                    0x04034B50,
                    20,
                    _FLAGS,
                    0,
                    _DOS_TIME,
                    _DOS_DATE,
                    crc(name, part),
                    part.length,
                    part.length,
                    len(bname),
                    0,
                )
                + bname
            )

        parts.append(Lazy(LOCAL_FIXED + len(bname), local_header))
        parts.append(part)
        pos += LOCAL_FIXED + len(bname) + part.length
    cd_size = sum(CENTRAL_FIXED + len(n.encode()) for n, _ in entries)

    def central() -> Iterator[bytes]:
        out = []
        for (name, part), off in zip(entries, offsets, strict=True):
            bname = name.encode()
            out.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    _FLAGS,
                    0,
                    _DOS_TIME,
                    _DOS_DATE,
                    crc(name, part),
                    part.length,
                    part.length,
                    len(bname),
                    0,
                    0,
                    0,
                    0,
                    0,
                    off,
                )
                + bname
            )
        out.append(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), cd_size, pos, 0))
        yield b"".join(out)

    parts.append(Lazy(cd_size + EOCD, central))
    return Seq(parts)
