"""Generators of sensitive values planted in generated files, each with a valid check digit.

The vault's classifiers must find these, so they follow the published formats:

* Hong Kong identity card `A123456(3)`: letters map A=10..Z=35 (a missing second letter = 36),
  weights 9..2 over the 8 positions, check = (11 - sum mod 11) mod 11, 10 written `A`.
* Mainland resident identity card: 17 digits (area, birth date, sequence) + ISO 7064 MOD 11-2
  check character (`X` for 10).
* Macau resident identity card `1234567(8)`: first digit 1, 5 or 7. **The Macau check digit
  algorithm is not published** (public validators only check the `[157]\\d{6}\\(\\d\\)` shape); the
  emulator uses weights 8..2 mod 11 (10 → 0) as a stand-in, documented as such.
* Bank cards: 16 digits, Luhn-valid, Visa/Mastercard/UnionPay prefixes.
* Phones: Macau `+853 6xxx xxxx`, Hong Kong `+852 [5-9]xxx xxxx`, mainland `+86 1[3-9]x xxxx xxxx`.
"""

from __future__ import annotations

import random

_HK_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
_CN_AREAS = ("110101", "310104", "440103", "440304", "440402", "440606", "350203", "330106")


def hk_id_check(prefix: str, digits6: str) -> str:
    chars = prefix.rjust(2)  # one-letter ids get a leading space, valued 36
    values = [36 if c == " " else ord(c) - ord("A") + 10 for c in chars] + [int(d) for d in digits6]
    total = sum(v * w for v, w in zip(values, _HK_WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def hk_id(r: random.Random) -> str:
    prefix = r.choice("ABCDEGHKMPRVYZ") if r.random() < 0.9 else r.choice("WX") + r.choice("ABCDEFGH")
    body = f"{r.randrange(10**6):06d}"
    return f"{prefix}{body}({hk_id_check(prefix, body)})"


def cn_id_check(first17: str) -> str:
    return _CN_CHECK[sum(int(d) * w for d, w in zip(first17, _CN_WEIGHTS, strict=True)) % 11]


def cn_id(r: random.Random) -> str:
    birth = f"{r.randrange(1965, 2003)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}"
    first17 = f"{r.choice(_CN_AREAS)}{birth}{r.randrange(1000):03d}"
    return first17 + cn_id_check(first17)


def mo_id_check(first7: str) -> str:
    # Stand-in: the real Macau algorithm is not public (see module docstring).
    total = sum(int(d) * w for d, w in zip(first7, (8, 7, 6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 11 % 10)


def mo_id(r: random.Random) -> str:
    first7 = f"{r.choice('157')}{r.randrange(10**6):06d}"
    return f"{first7}({mo_id_check(first7)})"


def luhn_check(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check(number[:-1]) == number[-1]


def bank_card(r: random.Random) -> str:
    prefix = r.choice(("4", "51", "52", "53", "54", "55", "62"))
    partial = prefix + "".join(str(r.randrange(10)) for _ in range(15 - len(prefix)))
    return partial + luhn_check(partial)


def mo_phone(r: random.Random) -> str:
    return f"+853 6{r.randrange(1000):03d} {r.randrange(10000):04d}"


def hk_phone(r: random.Random) -> str:
    return f"+852 {r.choice('5679')}{r.randrange(1000):03d} {r.randrange(10000):04d}"


def cn_phone(r: random.Random) -> str:
    return f"+86 1{r.choice('3456789')}{r.randrange(10)} {r.randrange(10000):04d} {r.randrange(10000):04d}"


GENERATORS = {
    "mo_id": mo_id,
    "hk_id": hk_id,
    "cn_id": cn_id,
    "bank_card": bank_card,
    "mo_phone": mo_phone,
    "hk_phone": hk_phone,
    "cn_phone": cn_phone,
}
