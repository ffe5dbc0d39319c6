"""Deterministic derivation of numbers and random generators from (seed, parts...).

`random.Random(int)` is stable across runs and Python versions for the methods used here
(`random`, `randrange`, `choice`, `randbytes`), so every generated value depends only on the seed
and the identifiers it is derived from, never on generation order.
"""

from __future__ import annotations

import hashlib
import random
import struct


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


def randbelow_rounds(r: random.Random, bounds: tuple[int, ...], rounds: int) -> list[list[int]]:
    """`rounds` rows of draws, `r._randbelow(n)` for each n of `bounds` in turn — the values that
    `randrange(a, a + n)` (minus a) and `choice(seq)` (an index, n = len(seq)) would give in that order.

    Same numbers as the `random` calls, several times faster: CPython draws each value as the top
    `n.bit_length()` bits of one 32-bit Mersenne Twister output, retrying while the value is >= n,
    and `getrandbits(32 * m)` returns the next m outputs, the first in the lowest bits.  `r` is
    left past an unspecified number of outputs: use it for nothing afterwards.
    """
    if any(not 0 < n < 1 << 32 for n in bounds):
        raise ValueError("bounds must be in 1 .. 2**32-1")
    pairs = [(n, 32 - n.bit_length()) for n in bounds]
    batch = 2 * rounds * len(bounds) + 64  # rejections are < 1 in 2: one batch nearly always does
    words = _words(r, batch)
    pos, end = 0, len(words)
    out = []
    for _ in range(rounds):
        row = []
        for n, shift in pairs:
            while True:
                if pos == end:
                    words, pos = _words(r, batch), 0
                    end = len(words)
                v = words[pos] >> shift
                pos += 1
                if v < n:
                    break
            row.append(v)
        out.append(row)
    return out


def _words(r: random.Random, count: int) -> tuple[int, ...]:
    return struct.unpack(f"<{count}I", r.getrandbits(32 * count).to_bytes(4 * count, "little"))
