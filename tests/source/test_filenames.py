"""safe_filename: hostile names from the API become safe, readable and distinct."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dingvault.source.filenames import MAX_NAME_BYTES, safe_filename


def _assert_safe(name: str) -> None:
    assert name not in ("", ".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    for bad in "\u202e\u202d\u2066\u2067\u2068\u2069\u200e\u200f":
        assert bad not in name
    assert not name.endswith((" ", "."))


def test_clean_names_are_unchanged() -> None:
    for name in ["合同.pdf", "Relatório de vendas 2026.xlsx", "報銷單 (1).docx", "photo 🎉.jpg", ".bashrc"]:
        assert safe_filename(name) == name


@pytest.mark.parametrize(
    "hostile",
    [
        "../../etc/passwd",
        "..",
        ".",
        "a/b\\c",
        "evil\x00.txt",
        "invoice\u202efdp.exe",
        "CON",
        "con.txt",
        "LPT1.log",
        "  trailing dots ... ",
        "line\nbreak",
        "",
        "x" * 400 + ".pdf",
        "合" * 200 + ".docx",
    ],
)
def test_hostile_names_become_safe(hostile: str) -> None:
    _assert_safe(safe_filename(hostile))


def test_rtl_override_cannot_disguise_extension() -> None:
    safe = safe_filename("invoice\u202efdp.exe")
    assert safe.endswith(".exe")
    assert "invoicefdp" in safe


def test_reserved_device_name_is_prefixed() -> None:
    assert safe_filename("CON").upper() != "CON"
    assert not safe_filename("nul.txt").upper().startswith("NUL.")


def test_long_name_keeps_extension_and_fits() -> None:
    safe = safe_filename("合" * 200 + ".docx")
    assert safe.endswith(".docx")
    assert len(safe.encode()) <= MAX_NAME_BYTES
    safe.encode("utf-8").decode("utf-8")  # valid UTF-8, no half characters


def test_different_hostile_names_do_not_collide() -> None:
    names = ["a/b", "a\\b", "a:b", "a|b", "a\u202eb", "a\x00b", "x" * 300, "x" * 301]
    safe = {safe_filename(n) for n in names}
    assert len(safe) == len(names)


def test_sanitised_name_does_not_collide_with_a_clean_one() -> None:
    assert safe_filename("a/b") != safe_filename("a_b")


@given(st.text(max_size=600))
def test_any_text_gives_a_safe_name(text: str) -> None:
    _assert_safe(safe_filename(text))
