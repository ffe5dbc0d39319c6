"""Turning names that come from DingTalk into names that are safe on any filesystem.

Names from the API (file names, attachment names, space names) are kept verbatim in an item's
`raw` payload — they are the legal original. Whenever one is used as a path component (exports,
restores to disk, temporary files) it goes through `safe_filename` first.

The result is:
  * safe: no path separators, no `.`/`..`, no NUL or other control characters, no bidirectional
    overrides (which make `exe.txt` display as `txt.exe`), no Windows-reserved device names,
    no characters Windows forbids, at most 255 bytes of UTF-8;
  * readable: everything that is harmless (Chinese, Portuguese accents, emoji, spaces) is kept;
  * unique: a name that had to be changed gets a short hash of the *original* appended, so two
    different hostile names never collapse onto the same safe name; a clean name is unchanged.
"""

from __future__ import annotations

import hashlib
import unicodedata

MAX_NAME_BYTES = 255
_HASH_LEN = 10

# Unicode bidirectional formatting characters (Trojan-Source / RTLO tricks) and invisible marks.
_BIDI_AND_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)
# Characters that Windows (and therefore SMB shares and most zip tools) refuse in names.
_FORBIDDEN = frozenset('<>:"/\\|?*')
_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
)


def _clean_char(ch: str) -> str:
    if ch in _BIDI_AND_INVISIBLE:
        return ""
    if ch in _FORBIDDEN:
        return "_"
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp"):
        # Control (incl. NUL, newlines), surrogate, private-use, unassigned, line/paragraph separators.
        return "_"
    if category == "Cf":
        # Other format characters (soft hyphen, tag characters...): invisible, drop them.
        return ""
    return ch


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # errors="ignore" drops a character cut in half instead of producing invalid UTF-8.
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _split_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    # A leading dot is not an extension; an "extension" longer than 16 chars is part of the name.
    if dot <= 0 or len(name) - dot > 16:
        return name, ""
    return name[:dot], name[dot:]


def safe_filename(name: str | None, *, default: str = "unnamed") -> str:
    """Return a filesystem-safe, readable and collision-resistant version of `name`."""
    original = "" if name is None else str(name)
    text = unicodedata.normalize("NFC", original)
    text = "".join(_clean_char(ch) for ch in text)
    # Trailing spaces and dots are stripped by Windows and hide the real extension; "." and ".." vanish.
    text = text.lstrip(" \t").rstrip(" .\t")
    if not text:
        text = default
    stem, ext = _split_ext(text)
    if stem.split(".")[0].upper().rstrip(" ") in _RESERVED_STEMS:
        stem = "_" + stem
    changed = (stem + ext) != original
    too_long = len((stem + ext).encode("utf-8")) > MAX_NAME_BYTES
    if not changed and not too_long:
        return stem + ext
    digest = hashlib.sha256(original.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH_LEN]
    suffix = f"~{digest}{ext}"
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    if budget < 1:
        # Pathological extension: drop it rather than exceed the limit.
        suffix = f"~{digest}"
        budget = MAX_NAME_BYTES - len(suffix)
    stem = _truncate_utf8(stem, budget).rstrip(" .") or "_"
    return stem + suffix
