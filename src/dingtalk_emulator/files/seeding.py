"""Deterministic derivation of numbers and random generators from (seed, parts...).

`random.Random(int)` is stable across runs and Python versions for the methods used here
(`random`, `randrange`, `choice`, `randbytes`), so every generated value depends only on the seed
and the identifiers it is derived from, never on generation order.
"""

from __future__ import annotations

import hashlib
import random


def h64(*parts: object) -> int:
    """A 64-bit hash of the parts; stable across processes (unlike `hash()`)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def rng(*parts: object) -> random.Random:
    return random.Random(h64(*parts))


def digits(n: int, *parts: object) -> str:
    """An n-digit decimal string (no leading zero) derived from the parts."""
    low = 10 ** (n - 1)
    return str(low + h64(*parts) % (9 * low))
