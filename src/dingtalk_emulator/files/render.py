"""From a file's identity to its bytes: `ContentSpec` → a lazily generated `Part`.

A file version's bytes are a pure function of (content key, extension, version, size); the
content key already encodes (seed, space, dentry). Later versions edit a few paragraphs and a
few blocks of any embedded image/table ("block i was last edited in version u"), so versions of a
file differ only in part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import corpus, png
from .blob import Part, Raw
from .ooxml import docx_part, xlsx_part
from .pdf import pdf_part
from .seeding import h64, rng

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
        return xlsx_part(vkey, doc, spec.size, corpus.ITEMS[spec.lang], variant_of=variants, content_key=spec.key)
    if spec.ext == "pdf":
        return pdf_part(vkey, doc, spec.size, variant_of=variants, content_key=spec.key)
    if spec.ext == "png":
        return png.png_part(spec.key, spec.size, variants, doc.title.encode("ascii", "ignore").decode() or spec.kind, version_key=vkey)
    if spec.ext in ("csv", "txt"):
        return Raw(_text_file(spec, doc))
    raise ValueError(f"unsupported extension {spec.ext!r}")


def _text_file(spec: ContentSpec, doc: corpus.DocText) -> bytes:
    if spec.ext == "csv":
        table = doc.table or corpus.compose(spec.key, "price_list", spec.lang, spec.version, table_rows=12).table or []
        lines = [",".join(_csv_cell(c) for c in row) for row in table]
        lines.append(",".join(_csv_cell(c) for c in [doc.title, doc.paragraphs[0] if doc.paragraphs else ""]))
        r = rng("csv-more", spec.key)
        items = corpus.ITEMS[spec.lang]
        # Later rows are stable across versions, so versions differ only in the first rows.
        total = sum(len(x.encode()) + 1 for x in lines)
        while total < spec.size:
            qty, price = r.randrange(1, 99), r.randrange(50, 50000)
            lines.append(f"{_csv_cell(r.choice(items))},{qty},{price:.2f},{qty * price:.2f}")
            total += len(lines[-1].encode()) + 1
    else:
        lines = doc.lines()
        k = 0
        total = sum(len(x.encode()) + 1 for x in lines)
        while total < spec.size:
            lines.append(doc.paragraphs[k % len(doc.paragraphs)])
            total += len(lines[-1].encode()) + 1
            k += 1
    data = ("\n".join(lines) + "\n").encode()
    if len(data) > spec.size:
        cut = data[: spec.size]
        while cut and (cut[-1] & 0xC0) == 0x80:  # do not end inside a UTF-8 sequence
            cut = cut[:-1]
        if cut and cut[-1] >= 0xC0:
            cut = cut[:-1]
        data = cut + b" " * (spec.size - len(cut) - 1) + b"\n" if spec.size > len(cut) else cut
    return data[: spec.size] if len(data) > spec.size else data


def _csv_cell(value: str) -> str:
    if any(c in value for c in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
