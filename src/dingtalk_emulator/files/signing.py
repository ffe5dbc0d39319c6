"""Signed, expiring download URLs served by the emulator itself (paths under `/_blob/`).

Storage downloads (§5.4) use HEADER_SIGNATURE: the URL carries an opaque payload and the caller
must send the returned headers (`Authorization`, `x-oss-date`) — the header names mimic the OSS
service behind DingTalk storage (uncertain: the reference shows only `{"key": "header_value"}`).
Robot media URLs (§3.3) carry `Expires` and `Signature` in the query string instead.
Both expire by the emulator clock; the payload names what to serve, so nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

import orjson


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_payload(obj: object) -> str:
    return _b64(orjson.dumps(obj))


def decode_payload(text: str) -> object:
    try:
        return orjson.loads(_unb64(text))
    except (ValueError, orjson.JSONDecodeError):
        return None


def sign(key: bytes, *parts: str) -> str:
    return _b64(hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).digest())


def verify(key: bytes, signature: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(key, *parts), signature or "")


_last_date: tuple[int, str] = (-1, "")


def http_date(seconds: float) -> str:
    """RFC 7231 date of `seconds`; the text of the current second is kept (formatting is slow)."""
    global _last_date
    whole = int(seconds)
    # Below .999999 the microsecond rounding inside formatdate cannot reach the next second.
    if seconds < 0 or seconds - whole >= 0.999999:
        return formatdate(seconds, usegmt=True)
    cached = _last_date
    if cached[0] == whole:
        return cached[1]
    text = formatdate(whole, usegmt=True)
    _last_date = (whole, text)
    return text
