"""From a file's identity to its bytes: `ContentSpec` → a lazily generated `Part`.

A file version's bytes are a pure function of (content key, extension, version, size); the
content key already encodes (seed, space, dentry). Later versions edit a few paragraphs and a
few blocks of any embedded image/table ("block i was last edited in version u"), so versions of a
file differ only in part.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from . import corpus, png
from .blob import Part, Raw
from .ooxml import docx_part, xlsx_part
from .pdf import pdf_part
from .seeding import h64, randbelow_rounds, rng

EXTENSIONS = ("docx", "xlsx", "pdf", "csv", "txt", "png")
MIME = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "png": "image/png",
}
# Smallest size each format can always be rendered at (text formats truncate freely).
MIN_SIZE = {"docx": 16_000, "xlsx": 16_000, "pdf": 16_000, "csv": 64, "txt": 64, "png": png.min_size() + 64}


@dataclass(frozen=True)
class ContentSpec:
    key: str  # unique per file: encodes seed, space and dentry
    ext: str
    version: int
    size: int
    kind: str
    lang: str


def variant_fn(key: str, version: int) -> Callable[[int], int]:
    """Block i's variant in `version`: the last version ≤ it that edited block i (1 in 8 per version)."""
    if version <= 1:
        return lambda i: 0

    def variant(i: int) -> int:
        for u in range(version, 1, -1):
            if h64("blk", key, u, i) % 8 == 0:
                return u
        return 0

    return variant


def text_of(spec: ContentSpec) -> corpus.DocText:
    return corpus.compose(spec.key, spec.kind, spec.lang, spec.version)


def render(spec: ContentSpec) -> Part:
    doc = text_of(spec)
    variants = variant_fn(spec.key, spec.version)
    vkey = f"{spec.key}@{spec.version}"
    if spec.ext == "docx":
        return docx_part(vkey, doc, spec.size, variant_of=variants, content_key=spec.key)
    if spec.ext == "xlsx":
        return xlsx_part(
            vkey, doc, spec.size, corpus.ITEMS[spec.lang], variant_of=variants, content_key=spec.key
        )
    if spec.ext == "pdf":
        return pdf_part(vkey, doc, spec.size, variant_of=variants, content_key=spec.key)
    if spec.ext == "png":
        return png.png_part(
            spec.key,
            spec.size,
            variants,
            doc.title.encode("ascii", "ignore").decode() or spec.kind,
            version_key=vkey,
        )
    if spec.ext in ("csv", "txt"):
        return Raw(_text_file(spec, doc))
    raise ValueError(f"unsupported extension {spec.ext!r}")


def _text_file(spec: ContentSpec, doc: corpus.DocText) -> bytes:
    if spec.ext == "csv":
        table = (
            doc.table
            or corpus.compose(spec.key, "price_list", spec.lang, spec.version, table_rows=12).table
            or []
        )
        lines = [",".join(_csv_cell(c) for c in row) for row in table]
        lines.append(",".join(_csv_cell(c) for c in [doc.title, doc.paragraphs[0] if doc.paragraphs else ""]))
        # Later rows come from a seeded 500-row template stamped with a block number (one C-level
        # join per block), stable across versions: versions differ only in the first rows.
        # Row i: qty = randrange(1, 99), price = randrange(50, 50000), item = choice(items), in order.
        items = _csv_items(spec.lang)
        draws = randbelow_rounds(rng("csv-more", spec.key), (98, 49950, len(items)), 500)
        pieces = [b""]
        for i, (q, p, c) in enumerate(draws):
            qty, price = q + 1, p + 50
            pieces.append(b"%03d,%b,%d,%.2f,%.2f\n" % (i, items[c], qty, price, qty * price))
        head = ("\n".join(lines) + "\n").encode()
        blocks = [head]
        total, b = len(head), 0
        while total < spec.size:
            blocks.append(b"R%06d-" % b)
            blocks[-1] = blocks[-1].join(pieces)
            total += len(blocks[-1])
            b += 1
        return _fit(b"".join(blocks), spec.size)
    # The text, then its paragraphs over and over until `size` is reached: whole rounds at once.
    lines = doc.lines()
    total = sum(len(x.encode()) + 1 for x in lines)
    paras = doc.paragraphs
    lengths = [len(p.encode()) + 1 for p in paras]
    rounds = (spec.size - total - 1) // sum(lengths) if paras and total < spec.size else 0
    lines.extend(paras * rounds)
    total += rounds * sum(lengths)
    k = 0
    while total < spec.size:
        lines.append(paras[k % len(paras)])
        total += lengths[k % len(paras)]
        k += 1
    return _fit(("\n".join(lines) + "\n").encode(), spec.size)


def _fit(data: bytes, size: int) -> bytes:
    """Cut to `size` bytes at a UTF-8 character boundary, padding with spaces and a newline."""
    if len(data) <= size:
        return data
    cut = data[:size]
    while cut and (cut[-1] & 0xC0) == 0x80:  # do not end inside a UTF-8 sequence
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    if len(cut) == size:
        return cut
    return cut + b" " * (size - len(cut) - 1) + b"\n"


@functools.lru_cache(maxsize=16)
def _csv_items(lang: str) -> list[bytes]:
    return [_csv_cell(v).encode() for v in corpus.ITEMS[lang]]


def _csv_cell(value: str) -> str:
    if any(c in value for c in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
