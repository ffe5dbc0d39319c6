"""Minimal valid .docx and .xlsx packages, written by hand (zipfile-free, stored, deterministic).

A .docx holds the document text as paragraphs and a table; a large one embeds a big PNG image. A
.xlsx holds one sheet of inline-string/number cells; a large one has a long table made of row
blocks (a seeded block with the row numbers changed), so megabytes are produced at memory speed.
Both are padded to an exact size with an XML comment after the root element (allowed by XML).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from xml.sax.saxutils import escape

from . import png
from .blob import Lazy, Part, Raw, Seq
from .corpus import DocText
from .seeding import randbelow_rounds, rng
from .ziputil import zip_part, zip_size

_CT_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_CORE_REL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_IMAGE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
_IMAGE_NAME = "word/media/image1.png"
# Below this size a document is text only; above it the rest is an embedded image / long table.
BIG_THRESHOLD = 160_000


def _pad(n: int) -> bytes:
    if n <= 0:
        return b""
    if n < 7:
        return b"\n" * n
    return b"<!--" + b"." * (n - 7) + b"-->"


def _core(title: str, creator: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{escape(title)}</dc:title><dc:creator>{escape(creator)}</dc:creator>"
        "</cp:coreProperties>"
    ).encode()


def _rels(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{escape(target)}"/>' for i, t, target in items)
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{_REL_NS}">{body}</Relationships>'.encode()


def _docx_body(doc: DocText, image: tuple[int, int] | None) -> bytes:
    def para(text: str, bold: bool = False) -> str:
        rpr = '<w:rPr><w:b/><w:sz w:val="32"/></w:rPr>' if bold else ""
        return f'<w:p><w:r>{rpr}<w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'

    out = [para(doc.title, bold=True)]
    out.extend(para(p) for p in doc.paragraphs)
    if doc.table:
        rows = "".join(
            "<w:tr>"
            + "".join(f"<w:tc><w:p><w:r><w:t>{escape(c)}</w:t></w:r></w:p></w:tc>" for c in row)
            + "</w:tr>"
            for row in doc.table
        )
        out.append(f'<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/></w:tblPr>{rows}</w:tbl>')
    if image:
        cx, cy = image[0] * 6350, image[1] * 6350  # EMU at 144 dpi keeps the drawing on a page-ish scale
        out.append(
            f'<w:p><w:r><w:drawing><wp:inline><wp:extent cx="{cx}" cy="{cy}"/><wp:docPr id="1" name="Picture 1"/>'
            '<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
            '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture">'
            '<pic:pic xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture">'
            '<pic:nvPicPr><pic:cNvPr id="1" name="image1.png"/><pic:cNvPicPr/></pic:nvPicPr>'
            '<pic:blipFill><a:blip r:embed="rIdImg1"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>'
            f'<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="{cx}" cy="{cy}"/></a:xfrm><a:prstGeom prst="rect"/></pic:spPr>'
            "</pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:document xmlns:w="{_W_NS}" xmlns:r="{_R_NS}" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing">'
        f"<w:body>{''.join(out)}<w:sectPr/></w:body></w:document>"
    ).encode()


def docx_part(
    key: str,
    doc: DocText,
    target: int,
    creator: str = "",
    variant_of: Callable[[int], int] = lambda i: 0,
    content_key: str = "",
) -> Part:
    """A .docx of exactly `target` bytes (raises ValueError if the text alone is larger).

    `key` names this exact content (CRC cache); `content_key` (default `key`) seeds the image,
    so versions of one file share its unedited blocks.
    """
    ct_img = '<Default Extension="png" ContentType="image/png"/>'
    content_types = (
        _CT_HEAD
        + '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>{img}'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    )
    root_rels = _rels([("rId1", _OFFICE_DOC, "word/document.xml"), ("rId2", _CORE_REL, "docProps/core.xml")])
    core = _core(doc.title, creator)

    def build(image_size: int) -> tuple[list[tuple[str, Part]], int]:
        image = None
        entries: list[tuple[str, Part]] = [
            ("[Content_Types].xml", Raw(content_types.format(img=ct_img if image_size else "").encode())),
            ("_rels/.rels", Raw(root_rels)),
            ("docProps/core.xml", Raw(core)),
        ]
        if image_size:
            nblocks, _ = png.plan(image_size)
            image = (png.WIDTH, nblocks * png.ROWS_PER_BLOCK)
            entries.append(
                ("word/_rels/document.xml.rels", Raw(_rels([("rIdImg1", _IMAGE_REL, "media/image1.png")])))
            )
        body = _docx_body(doc, image)
        entries.append(("word/document.xml", Raw(body)))
        if image_size:
            entries.append(
                (
                    _IMAGE_NAME,
                    png.png_part(
                        (content_key or key) + "/img",
                        image_size,
                        variant_of,
                        doc.title[:40],
                        version_key=key + "/img",
                    ),
                )
            )
        return entries, zip_size([(n, p.length) for n, p in entries])

    image_size = 0
    if target >= BIG_THRESHOLD:
        # Measure with the smallest image, then grow the PNG to fill the target, leaving a little
        # slack for the drawing's digits; the XML comment pads the rest exactly.
        _, with_min = build(png.min_size())
        image_size = png.min_size() + target - with_min - 64
        for attempt in (image_size, image_size - png.MIN_PAD):
            try:
                png.plan(attempt)
                image_size = attempt
                break
            except ValueError:
                continue
    entries, natural = build(image_size)
    if natural > target:
        raise ValueError(f"docx text needs {natural} bytes, more than the target {target}")
    name, body = entries[-2] if image_size else entries[-1]
    assert name == "word/document.xml" and isinstance(body, Raw)
    padded = Raw(body.data + _pad(target - natural))
    entries[entries.index((name, body))] = (name, padded)
    return zip_part(key, entries)


# --- xlsx -----------------------------------------------------------------------------------

_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
_ROWS_PER_BLOCK = 1000
_PREFIX_WIDTH = 10


def _cell(v: str) -> str:
    try:
        float(v.replace(",", ""))
        if v.strip() and "," not in v:
            return f"<c><v>{v}</v></c>"
    except ValueError:
        pass
    return f'<c t="inlineStr"><is><t xml:space="preserve">{escape(v)}</t></is></c>'


@functools.lru_cache(maxsize=64)
def _item_cells(items: tuple[str, ...]) -> list[bytes]:
    """The encoded `<c>` of each item of a language's item list (a handful of fixed lists)."""
    return [_cell(v).encode() for v in items]


def _row(cells: list[str]) -> str:
    return "<row>" + "".join(_cell(c) for c in cells) + "</row>"


class _RowBlocks:
    """Blocks of table rows: a seeded template whose sequence numbers carry the block number.

    Row r of block b has sequence number `<variant:2><b:8><r:4>`; the 10-digit block prefix is the
    same for every row of a block, so a block is one C-level `bytes.join` of the template pieces.
    """

    def __init__(self, key: str, lang_items: list[str]) -> None:
        # Row i: qty = randrange(1, 500), price = randrange(100, 99999) / 100, item = choice(items),
        # drawn in that order from rng("xlsx-rows", key); built as bytes in one pass over the draws.
        cells = _item_cells(tuple(lang_items))
        draws = randbelow_rounds(rng("xlsx-rows", key), (499, 99899, len(cells)), _ROWS_PER_BLOCK)
        tails = [
            b"%04d</v></c>%b<c><v>%d</v></c><c><v>%.2f</v></c></row>" % (i, cells[c], q + 1, (p + 100) / 100)
            for i, (q, p, c) in enumerate(draws)
        ]
        self.pieces: list[bytes] = [b"<row><c><v>", *(t + b"<row><c><v>" for t in tails[:-1]), tails[-1]]
        self.length = sum(len(p) for p in self.pieces) + _ROWS_PER_BLOCK * _PREFIX_WIDTH

    def block(self, index: int, variant: int) -> bytes:
        prefix = b"%02d%08d" % (variant % 100, index % 10**8)
        return prefix.join(self.pieces)


def xlsx_part(
    key: str,
    doc: DocText,
    target: int,
    items: list[str],
    variant_of: Callable[[int], int] = lambda i: 0,
    content_key: str = "",
) -> Part:
    """A one-sheet .xlsx of exactly `target` bytes; big targets get a long generated table."""
    content_types = (
        _CT_HEAD
        + '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    ).encode()
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="{_R_NS}">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ).encode()
    wb_rels = _rels(
        [
            (
                "rId1",
                "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet",
                "worksheets/sheet1.xml",
            )
        ]
    )
    root_rels = _rels([("rId1", _OFFICE_DOC, "xl/workbook.xml"), ("rId2", _CORE_REL, "docProps/core.xml")])
    rows = [_row([doc.title])] + [_row([p]) for p in doc.paragraphs] + [_row(r) for r in (doc.table or [])]
    head = (_SHEET_HEAD + "".join(rows)).encode()
    tail = _SHEET_TAIL.encode()
    fixed = [
        ("[Content_Types].xml", Raw(content_types)),
        ("_rels/.rels", Raw(root_rels)),
        ("docProps/core.xml", Raw(_core(doc.title, ""))),
        ("xl/workbook.xml", Raw(workbook)),
        ("xl/_rels/workbook.xml.rels", Raw(wb_rels)),
    ]
    sheet_name = "xl/worksheets/sheet1.xml"
    natural = zip_size([(n, p.length) for n, p in fixed] + [(sheet_name, len(head) + len(tail))])
    if natural > target:
        raise ValueError(f"xlsx text needs {natural} bytes, more than the target {target}")
    slack = target - natural
    if target < BIG_THRESHOLD:  # text only: no row blocks to seed
        sheet = Seq([Raw(head), Raw(tail + _pad(slack))])
        return zip_part(key, [*fixed, (sheet_name, sheet)])
    blocks = _RowBlocks(content_key or key, items)
    nblocks = slack // blocks.length
    pad = slack - nblocks * blocks.length

    def produce() -> Iterator[bytes]:
        for i in range(nblocks):
            yield blocks.block(i, variant_of(i))

    sheet = Seq([Raw(head), Lazy(nblocks * blocks.length, produce), Raw(tail + _pad(pad))])
    return zip_part(key, [*fixed, (sheet_name, sheet)])
