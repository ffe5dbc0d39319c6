"""Deterministic derivation: every generated value comes from `(seed, family, index, ...)`.

Record i of a family is a pure function of the seed and i, so a 2M-record profile costs nothing
until a page is asked for, and the same seed always yields the same company.
"""

from __future__ import annotations

import functools
import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone

MACAU_TZ = timezone(timedelta(hours=8))  # Macau has no DST
DAY_MS = 86_400_000
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def h64(seed: int, family: str, *parts: object) -> int:
    """A stable 64-bit hash of the seed, a family name and any parts (Python's hash() is salted)."""
    key = f"{seed}\x1f{family}\x1f" + "\x1f".join(map(str, parts))
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def rng(seed: int, family: str, *parts: object) -> random.Random:
    return random.Random(h64(seed, family, *parts))


def hexid(seed: int, family: str, *parts: object, length: int = 32) -> str:
    key = f"{seed}\x1f{family}\x1f" + "\x1f".join(map(str, parts))
    return hashlib.blake2b(key.encode(), digest_size=(length + 1) // 2).hexdigest()[:length]


def b62(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(out)


def b62id(seed: int, family: str, *parts: object, length: int = 27) -> str:
    key = f"{seed}\x1f{family}\x1f" + "\x1f".join(map(str, parts))
    n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=64).digest(), "big")
    return b62(n, length)


def start_of_day_ms(epoch_s: float) -> int:
    """Midnight (Macau time) of the day containing `epoch_s`, in epoch ms: the anchor of all timestamps."""
    d = datetime.fromtimestamp(epoch_s, MACAU_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(d.timestamp() * 1000)


# Timestamps are formatted on every record of every page: the date part of a day is formatted
# once (strftime, cached), the time of day by arithmetic — the same text as strftime of the instant.
_MACAU_OFFSET_MS = 8 * 3_600_000


@functools.lru_cache(maxsize=8192)
def _utc_date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def _split(ms: int) -> tuple[str, int, int, int]:
    """(date, hour, minute, second) of epoch `ms` in UTC (floor, as datetime.fromtimestamp)."""
    if type(ms) is not int:  # a float: let datetime round it exactly as before
        t = datetime.fromtimestamp(ms / 1000, UTC)
        return t.strftime("%Y-%m-%d"), t.hour, t.minute, t.second
    day, rest = divmod(ms, DAY_MS)
    seconds = rest // 1000
    return _utc_date(day), seconds // 3600, seconds // 60 % 60, seconds % 60


def iso_minutes(ms: int) -> str:
    """`2022-08-31T11:52Z` — the workflow API's time format (UTC, minute precision)."""
    date, h, m, _ = _split(ms)
    return f"{date}T{h:02d}:{m:02d}Z"


def iso_seconds(ms: int) -> str:
    """`2021-01-06T11:47:37Z` (UTC)."""
    date, h, m, sec = _split(ms)
    return f"{date}T{h:02d}:{m:02d}:{sec:02d}Z"


def local_datetime(ms: int) -> str:
    """`2020-12-21 15:30:26` in Macau time — the legacy APIs' string format."""
    date, h, m, sec = _split(ms + _MACAU_OFFSET_MS)  # Macau has no DST: a fixed shift
    return f"{date} {h:02d}:{m:02d}:{sec:02d}"


def local_iso(ms: int) -> str:
    """`2024-05-02T10:30:00+08:00` — `datetime.fromtimestamp(ms / 1000, MACAU_TZ).isoformat()`."""
    if type(ms) is not int or ms % 1000:  # fractions of a second: isoformat adds microseconds
        return datetime.fromtimestamp(ms / 1000, MACAU_TZ).isoformat()
    date, h, m, sec = _split(ms + _MACAU_OFFSET_MS)
    return f"{date}T{h:02d}:{m:02d}:{sec:02d}+08:00"


def parse_local_datetime(text: str) -> int:
    """Inverse of `local_datetime`; also accepts a bare date. Raises ValueError on bad input."""
    text = text.strip()
    fmt = "%Y-%m-%d %H:%M:%S" if " " in text else "%Y-%m-%d"
    return int(datetime.strptime(text, fmt).replace(tzinfo=MACAU_TZ).timestamp() * 1000)


def parse_iso(text: str) -> int:
    """ISO-8601 (`2022-01-01T10:00:00Z`, `...+08:00`, `2022-08-31T11:52Z`) → epoch ms. Raises ValueError."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp() * 1000)
