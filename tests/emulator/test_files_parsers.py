"""Generated files read back with the libraries a user's tools (and the vault's text extraction)
would use: pypdf, openpyxl, python-docx."""

from __future__ import annotations

import io

import docx
import openpyxl
import pytest
from pypdf import PdfReader

from dingtalk_emulator.files import corpus
from dingtalk_emulator.files.blob import read_all
from dingtalk_emulator.files.pdf import pdf_part
from dingtalk_emulator.files.render import ContentSpec, render, text_of


@pytest.mark.parametrize("lang", corpus.LANGS)
@pytest.mark.parametrize("size", [20_000, 400_000])
def test_pdf_text_extracts_with_pypdf(lang: str, size: int) -> None:
    s = ContentSpec("p/1", "pdf", 2, size, "hr_form", lang)
    reader = PdfReader(io.BytesIO(read_all(render(s))), strict=True)
    text = "".join(page.extract_text() for page in reader.pages)
    doc = text_of(s)
    assert doc.title in text
    for _, value, _ in doc.planted:  # classifiers must be able to find every planted value
        assert value in text, value
    if size > 160_000:
        assert reader.pages[0].images  # the big image is a real image XObject


def test_long_pdf_flows_onto_several_pages() -> None:
    base = corpus.compose("p/2", "contract", "zh-Hant", 1)
    long_doc = corpus.DocText(
        "contract", "zh-Hant", base.title, [f"第{i}段：{base.paragraphs[i % 8]}" for i in range(120)]
    )
    reader = PdfReader(io.BytesIO(read_all(pdf_part("p/2@1", long_doc, 60_000))), strict=True)
    assert len(reader.pages) >= 4
    assert "第119段" in reader.pages[-1].extract_text() and "第0段" in reader.pages[0].extract_text()


@pytest.mark.parametrize("size", [20_000, 400_000])
def test_xlsx_opens_with_openpyxl(size: int) -> None:
    s = ContentSpec("x/1", "xlsx", 1, size, "invoice", "zh-Hant")
    wb = openpyxl.load_workbook(io.BytesIO(read_all(render(s))), read_only=True)
    rows = list(wb.active.iter_rows(values_only=True))
    doc = text_of(s)
    assert rows[0][0] == doc.title
    assert doc.table is not None and list(rows[len(doc.paragraphs) + 1][:4]) == doc.table[0]
    if size > 160_000:
        tail = rows[-1]
        assert isinstance(tail[0], int) and isinstance(tail[2], int) and isinstance(tail[3], float)


@pytest.mark.parametrize("size", [20_000, 400_000])
def test_docx_opens_with_python_docx(size: int) -> None:
    s = ContentSpec("d/1", "docx", 3, size, "contract", "pt")
    document = docx.Document(io.BytesIO(read_all(render(s))))
    doc = text_of(s)
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == doc.title and texts[1 : 1 + len(doc.paragraphs)] == doc.paragraphs
    assert document.core_properties.title == doc.title
    assert len(document.inline_shapes) == (1 if size > 160_000 else 0)
