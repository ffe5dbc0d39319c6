"""Generated file contents open with real parsers, have exact sizes, are deterministic, and
successive versions share most of their bytes."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
import zlib
from xml.dom import minidom

import pytest
from pyfastcdc import FastCDC

from dingtalk_emulator.files import corpus, sensitive
from dingtalk_emulator.files.blob import read_all
from dingtalk_emulator.files.render import MIN_SIZE, ContentSpec, render, text_of

SIZES = [16_000, 48_000, 600_000]


def spec(
    ext: str, size: int, version: int = 1, key: str = "1/sp/42", kind: str = "contract", lang: str = "zh-Hant"
) -> ContentSpec:
    return ContentSpec(key, ext, version, size, kind, lang)


def zip_xml_parts(data: bytes) -> dict[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None, "a CRC in the archive is wrong"
    return {n: z.read(n) for n in z.namelist()}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", corpus.LANGS)
def test_docx_is_a_valid_package_with_the_text(size: int, lang: str) -> None:
    s = spec("docx", size, lang=lang)
    data = read_all(render(s))
    assert len(data) == size
    parts = zip_xml_parts(data)
    assert {"[Content_Types].xml", "_rels/.rels", "word/document.xml"} <= set(parts)
    for name, body in parts.items():
        if name.endswith((".xml", ".rels")):
            minidom.parseString(body)  # raises on malformed XML
    doc = minidom.parseString(parts["word/document.xml"])
    text = "".join(t.firstChild.data for t in doc.getElementsByTagName("w:t") if t.firstChild)
    expected = text_of(s)
    assert expected.title in text
    assert all(p in text for p in expected.paragraphs)
    if size >= 160_000:  # big documents embed an image referenced from the document
        assert "word/media/image1.png" in parts
        assert b'r:embed="rIdImg1"' in parts["word/document.xml"]
        check_png(parts["word/media/image1.png"])


@pytest.mark.parametrize("size", SIZES)
def test_xlsx_is_a_valid_workbook_with_cells(size: int) -> None:
    s = spec("xlsx", size, kind="invoice", lang="pt")
    data = read_all(render(s))
    assert len(data) == size
    parts = zip_xml_parts(data)
    assert "xl/workbook.xml" in parts and "xl/worksheets/sheet1.xml" in parts
    for body in parts.values():
        minidom.parseString(body)
    sheet = minidom.parseString(parts["xl/worksheets/sheet1.xml"])
    rows = sheet.getElementsByTagName("row")
    cells_text = [t.firstChild.data for t in sheet.getElementsByTagName("t") if t.firstChild]
    assert text_of(s).title in cells_text
    if size >= 160_000:
        assert len(rows) > 1000  # a long generated table
        numbers = [
            c.getElementsByTagName("v")[0].firstChild.data
            for c in rows[500].getElementsByTagName("c")
            if c.getElementsByTagName("v")
        ]
        assert all(re.fullmatch(r"[0-9.]+", n) for n in numbers) and numbers


def pdf_check(data: bytes) -> int:
    """Header, trailer, startxref → xref, and every xref offset points at its object; returns #objects."""
    assert data.startswith(b"%PDF-1.4\n")
    assert data.rstrip().endswith(b"%%EOF")
    sx = int(data[data.rindex(b"startxref") + 10 :].split()[0])
    assert data[sx : sx + 4] == b"xref"
    header = data[sx:].split(b"\n", 2)
    count = int(header[1].split()[1])
    table = header[2]
    for i in range(1, count):
        entry = table[20 * i : 20 * i + 20]
        offset = int(entry[:10])
        assert entry[17:18] == b"n"
        assert data[offset:].startswith(b"%d 0 obj" % i), f"object {i} not at {offset}"
    return count


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", ["zh-Hant", "en"])
def test_pdf_structure_and_text(size: int, lang: str) -> None:
    s = spec("pdf", size, lang=lang)
    data = read_all(render(s))
    assert len(data) == size
    assert pdf_check(data) >= 5
    title = text_of(s).title
    if lang == "en":
        assert title.encode("cp1252") in data
    else:  # UCS-2 hex strings for CJK text
        assert title[:8].encode("utf-16-be").hex().upper().encode() in data
        assert b"/ToUnicode" in data
    if size >= 160_000:
        assert b"/Subtype /Image" in data


def check_png(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, kinds = 8, b"", []
    width = height = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and pos == len(data)
    raw = zlib.decompress(idat)  # checks the Adler-32 too
    assert len(raw) == height * (1 + 3 * width)
    assert all(raw[r * (1 + 3 * width)] == 0 for r in range(height))  # valid filter bytes
    return width, height


@pytest.mark.parametrize("size", [MIN_SIZE["png"], 100_000, 777_777, 3_000_000])
def test_png_chunks_and_pixels(size: int) -> None:
    data = read_all(render(spec("png", size)))
    assert len(data) == size
    w, h = check_png(data)
    assert w > 0 and h > 0


@pytest.mark.parametrize("ext", ["csv", "txt"])
@pytest.mark.parametrize("size", [64, 999, 20_000, 300_000])
def test_text_files_are_utf8_of_exact_size(ext: str, size: int) -> None:
    data = read_all(render(spec(ext, size, kind="price_list", lang="zh-Hant")))
    assert len(data) == size
    text = data.decode("utf-8")
    if ext == "csv" and size >= 999:
        assert "," in text.splitlines()[1]


@pytest.mark.parametrize("ext", ["docx", "xlsx", "pdf", "png", "csv", "txt"])
def test_deterministic_and_range_consistent(ext: str) -> None:
    s = spec(ext, 400_000 if ext != "csv" else 30_000, version=2)
    a, b = read_all(render(s)), read_all(render(s))
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    part = render(s)
    for start, end in [(0, 1), (5, 70_000), (len(a) - 100, len(a)), (12345, 12346)]:
        assert b"".join(part.iter_range(start, end)) == a[start:end]
    assert read_all(render(spec(ext, len(a), version=2, key="1/sp/43"))) != a  # another file differs


def shared_chunk_ratio(a: bytes, b: bytes) -> float:
    """Share of b's bytes in content-defined chunks that also occur in a (what a dedup vault saves)."""
    cdc = FastCDC(avg_size=16384)
    chunks_a = {hashlib.sha256(bytes(c.data)).digest() for c in cdc.cut_buf(a)}
    shared = sum(c.length for c in cdc.cut_buf(b) if hashlib.sha256(bytes(c.data)).digest() in chunks_a)
    return shared / len(b)


@pytest.mark.parametrize("ext", ["docx", "xlsx", "pdf", "png"])
def test_new_version_changes_only_part_of_a_big_file(ext: str) -> None:
    v1 = read_all(render(spec(ext, 2_000_000, version=1)))
    v2 = read_all(render(spec(ext, 2_000_000, version=2)))
    assert v1 != v2
    assert 0.5 < shared_chunk_ratio(v1, v2) < 1.0


def test_new_version_edits_some_paragraphs_and_keeps_the_rest() -> None:
    d1 = corpus.compose("k/1", "contract", "zh-Hant", 1)
    d3 = corpus.compose("k/1", "contract", "zh-Hant", 3)
    kept = sum(p in d1.paragraphs for p in d3.paragraphs)
    assert 0 < kept < len(d3.paragraphs)
    assert len(d3.paragraphs) > len(d1.paragraphs)


def test_planted_sensitive_values_are_valid_and_in_the_text() -> None:
    seen = set()
    for i in range(40):
        for kind in ("contract", "hr_form", "invoice"):
            for lang in corpus.LANGS:
                doc = corpus.compose(f"s/{i}", kind, lang, 1)
                text = "\n".join(doc.lines())
                for typ, value, where in doc.planted:
                    seen.add(typ)
                    assert value in text
                    assert where.startswith("p") and value in doc.paragraphs[int(where[1:])]
                    if typ == "hk_id":
                        m = re.fullmatch(r"([A-Z]{1,2})(\d{6})\(([0-9A])\)", value)
                        assert m and sensitive.hk_id_check(m[1], m[2]) == m[3]
                    elif typ == "cn_id":
                        assert len(value) == 18 and sensitive.cn_id_check(value[:17]) == value[17]
                    elif typ == "bank_card":
                        assert sensitive.luhn_valid(value)
                    elif typ == "mo_id":
                        assert re.fullmatch(r"[157]\d{6}\(\d\)", value)
    assert {"hk_id", "cn_id", "mo_id", "bank_card", "mo_phone", "hk_phone", "cn_phone"} <= seen


def test_known_check_digits() -> None:
    assert sensitive.hk_id_check("A", "123456") == "3"
    assert sensitive.hk_id_check("G", "123456") == "A"
    assert sensitive.cn_id_check("11010519491231002") == "X"
    assert sensitive.luhn_valid("79927398713") and not sensitive.luhn_valid("79927398710")


def test_docx_with_planted_ids_contains_them() -> None:
    s = spec("docx", 30_000, kind="hr_form", lang="zh-Hant")
    doc = minidom.parseString(zip_xml_parts(read_all(render(s)))["word/document.xml"])
    text = "".join(t.firstChild.data for t in doc.getElementsByTagName("w:t") if t.firstChild)
    planted = text_of(s).planted
    assert planted and all(v in text for _, v, _ in planted)


def test_too_small_target_is_a_clear_error() -> None:
    with pytest.raises(ValueError):
        read_all(render(spec("docx", 2_000)))
    with pytest.raises(ValueError):
        render(spec("exe", 20_000))


@pytest.mark.parametrize("lang", corpus.LANGS)
def test_pdf_keeps_planted_values_on_one_line(lang: str) -> None:
    s = spec("pdf", 30_000, kind="hr_form", lang=lang)
    data = read_all(render(s))
    planted = text_of(s).planted
    assert planted
    for _, value, _ in planted:
        # Latin text is a PDF literal string, where parentheses are escaped.
        encoded = (
            value.encode("cp1252").replace(b"(", b"\\(").replace(b")", b"\\)")
            if lang in ("pt", "en")
            else value.encode("utf-16-be").hex().upper().encode()
        )
        assert encoded in data, value
