"""A minimal valid PDF 1.4 written by hand: text pages, optionally one large raw RGB image.

Chinese text uses the standard CJK fonts every reader ships (MSung-Light for Traditional,
STSong-Light for Simplified) with UCS-2 encodings, plus an identity ToUnicode map so text
extractors recover the characters; Portuguese and English use Helvetica with WinAnsiEncoding.
Object offsets are computed arithmetically, so the xref table is exact and the image stream can
be streamed lazily. A comment after the header pads the file to the exact size wanted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from .blob import Lazy, Part, Raw, Seq
from .corpus import DocText
from .seeding import h64, rng

IMG_WIDTH = 1285  # 3 × 1285 × 17 rows = 65535: one tile per 17 rows
_IMG_ROW = 3 * IMG_WIDTH
_IMG_BLOCK = 17 * _IMG_ROW
_LINES_PER_PAGE = 46
_TO_UNICODE = (
    b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS def "
    b"/CMapType 2 def 1 begincodespacerange <0000> <FFFF> endcodespacerange "
    b"1 beginbfrange <0000> <FFFF> <0000> endbfrange endcmap CMapName currentdict /CMap defineresource pop end end"
)


_TOKEN = re.compile(
    r"\+\d{2,3}(?: \d{3,4}){2,3}|[\x21-\x7e\u00a0-\u024f]+|.", re.S
)  # phones keep their spaces


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrap that never splits a run of Latin letters/digits/punctuation (ID numbers, phones,
    card numbers, words), so text extraction finds planted values on one line."""
    lines: list[str] = []
    current = ""
    for token in _TOKEN.findall(text):
        if current and len(current) + len(token) > width:
            lines.append(current)
            current = token.lstrip(" ")
        else:
            current += token
    lines.append(current)
    return lines


def _latin(text: str) -> bytes:
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _ucs2(text: str) -> bytes:
    return b"<" + text.encode("utf-16-be", "replace").hex().upper().encode() + b">"


def _font_objects(lang: str) -> list[bytes]:
    if lang in ("pt", "en"):
        return [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    base, enc, ordering, supplement = (
        (b"MSung-Light", b"UniCNS-UCS2-H", b"CNS1", b"4")
        if lang == "zh-Hant"
        else (b"STSong-Light", b"UniGB-UCS2-H", b"GB1", b"4")
    )
    # objects: font (n), descendant (n+1), descriptor (n+2), ToUnicode (n+3) -- refs patched by caller
    return [
        b"<< /Type /Font /Subtype /Type0 /BaseFont /"
        + base
        + b" /Encoding /"
        + enc
        + b" /DescendantFonts [{D} 0 R] /ToUnicode {U} 0 R >>",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /"
        + base
        + b" /CIDSystemInfo << /Registry (Adobe) /Ordering ("
        + ordering
        + b") /Supplement "
        + supplement
        + b" >> /FontDescriptor {F} 0 R /DW 1000 >>",
        b"<< /Type /FontDescriptor /FontName /"
        + base
        + b" /Flags 6 /FontBBox [0 -200 1000 900] /ItalicAngle 0"
        b" /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>",
        b"<< /Length " + str(len(_TO_UNICODE)).encode() + b" >>\nstream\n" + _TO_UNICODE + b"\nendstream",
    ]


def pdf_part(
    key: str,
    doc: DocText,
    target: int,
    variant_of: Callable[[int], int] = lambda i: 0,
    big_threshold: int = 160_000,
    content_key: str = "",
) -> Part:
    cjk = doc.lang not in ("pt", "en")
    encode = _ucs2 if cjk else _latin
    width = 38 if cjk else 90
    lines: list[str] = []
    for text in [doc.title, "", *doc.paragraphs, *("  ".join(r) for r in (doc.table or []))]:
        lines.extend(_wrap(text, width))
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    # Object numbers: 1 catalog, 2 pages, 3.. fonts, then per page: page + content, then image.
    fonts = _font_objects(doc.lang)
    font_first = 3
    page_first = font_first + len(fonts)
    n_img = page_first + 2 * len(pages)

    def layout(img_rows: int) -> tuple[list[bytes], int]:
        objs: list[bytes] = []
        kids = " ".join(f"{page_first + 2 * i} 0 R" for i in range(len(pages)))
        objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
        objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
        for f in fonts:
            objs.append(
                f.replace(b"{D}", str(font_first + 1).encode())
                .replace(b"{F}", str(font_first + 2).encode())
                .replace(b"{U}", str(font_first + 3).encode())
            )
        for i, page_lines in enumerate(pages):
            xobj = f" /XObject << /Im1 {n_img} 0 R >>" if img_rows and i == 0 else ""
            objs.append(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 {font_first} 0 R >>{xobj} >>"
                f" /Contents {page_first + 2 * i + 1} 0 R >>".encode()
            )
            ops = [b"BT /F1 11 Tf 14 TL 50 800 Td"]
            ops.extend(encode(line) + b" '" for line in page_lines)
            ops.append(b"ET")
            if img_rows and i == 0:
                ops.append(b"q 495 0 0 %d 50 60 cm /Im1 Do Q" % max(1, min(300, img_rows // 10)))
            stream = b"\n".join(ops)
            objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        return objs, img_rows

    header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"

    def assemble(objs: list[bytes], img_rows: int, pad: int) -> Part:
        parts: list[Part] = []
        offsets: list[int] = []
        body = bytearray(header)
        if pad:
            body += b"%" + b"-" * (pad - 2) + b"\n" if pad >= 2 else b"\n"
        for num, obj in enumerate(objs, start=1):
            offsets.append(len(body))
            body += b"%d 0 obj\n" % num + obj + b"\nendobj\n"
        parts.append(Raw(bytes(body)))
        pos = len(body)
        if img_rows:
            offsets.append(pos)
            nbytes = img_rows * _IMG_ROW
            head = (
                b"%d 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB"
                b" /BitsPerComponent 8 /Length %d >>\nstream\n" % (n_img, IMG_WIDTH, img_rows, nbytes)
            )
            tail = b"\nendstream\nendobj\n"
            parts += [
                Raw(head),
                Lazy(nbytes, lambda: _pixels(content_key or key, nbytes, variant_of)),
                Raw(tail),
            ]
            pos += len(head) + nbytes + len(tail)
        count = len(offsets) + 1
        xref = b"xref\n0 %d\n0000000000 65535 f \n" % count + b"".join(
            b"%010d 00000 n \n" % o for o in offsets
        )
        trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, pos)
        parts.append(Raw(xref + trailer))
        return Seq(parts)

    img_rows = 0
    if target >= big_threshold:
        objs, _ = layout(1)
        probe = assemble(objs, 1, 0).length
        img_rows = max(1, (target - probe - 64) // _IMG_ROW + 1)
    objs, _ = layout(img_rows)
    natural = assemble(objs, img_rows, 0).length
    if natural > target:
        raise ValueError(f"pdf needs {natural} bytes, more than the target {target}")
    # Padding shifts every offset; the xref/startxref digits are fixed-width or checked below.
    part = assemble(objs, img_rows, target - natural)
    if part.length != target:  # startxref gained a digit: absorb it in the padding
        part = assemble(objs, img_rows, target - natural - (part.length - target))
    if part.length != target:
        raise ValueError(f"pdf size {part.length} != target {target}")
    return part


def _pixels(key: str, nbytes: int, variant_of: Callable[[int], int]) -> Iterator[bytes]:
    tile = rng("pdf-tile", key).randbytes(_IMG_BLOCK)
    full, rest = divmod(nbytes, _IMG_BLOCK)
    for i in range(full + (1 if rest else 0)):
        buf = bytearray(tile)
        buf[:16] = h64("pdf-block", key, i, variant_of(i)).to_bytes(8, "big") * 2
        yield bytes(buf) if i < full else bytes(buf[:rest])
