"""Identity numbers, phones and bank cards with valid check digits, planted in generated records.

dingvault's classifiers must find them, so each generator produces the real format:
Macau BIR `1234567(8)`, Hong Kong HKID `A123456(3)` (mod-11 check), mainland resident ID (18 digits,
ISO 7064 MOD 11-2), Luhn-valid bank cards, and +853/+852/+86 phone numbers.
"""

from __future__ import annotations

import random

_MAINLAND_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_MAINLAND_CHECK = "10X98765432"
# Area codes of Guangdong cities that trade with Macau (Zhuhai, Guangzhou, Shenzhen, Zhongshan).
_DIGIT = "0123456789"
_MAINLAND_AREAS = ("440402", "440106", "440304", "442000")


def _digits(r: random.Random, n: int) -> str:
    """The digits of n successive `r.randrange(10)` calls, drawn the way CPython draws them (4 bits,
    again while >= 10) without the per-call overhead: generation is on every document's path."""
    bits = r.getrandbits
    out = []
    while len(out) < n:
        v = bits(4)
        if v < 10:
            out.append(_DIGIT[v])
    return "".join(out)


def macau_id(r: random.Random) -> str:
    """Macau resident identity card (BIR) number, e.g. `1234567(8)`; the first digit is 1, 5 or 7.

    The check-digit algorithm is not public, so any digit is accepted as the check digit.
    """
    body = str(r.choice((1, 5, 7))) + _digits(r, 6)
    return f"{body}({r.randrange(10)})"


def hkid_check_digit(prefix: str, digits: str) -> str:
    letters = prefix.rjust(2)  # a single-letter prefix counts as a space (value 36)
    values = [36 if c == " " else ord(c) - ord("A") + 10 for c in letters] + [int(d) for d in digits]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def hkid(r: random.Random) -> str:
    prefix = r.choice("ACDEGHKMPRVWYZ")
    digits = _digits(r, 6)
    return f"{prefix}{digits}({hkid_check_digit(prefix, digits)})"


def mainland_check_digit(first17: str) -> str:
    return _MAINLAND_CHECK[sum(int(d) * w for d, w in zip(first17, _MAINLAND_WEIGHTS, strict=True)) % 11]


def mainland_id(r: random.Random) -> str:
    birth = f"{r.randrange(1965, 2002)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}"
    first17 = r.choice(_MAINLAND_AREAS) + birth + f"{r.randrange(1000):03d}"
    return first17 + mainland_check_digit(first17)


def luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions, counted from the digit left of the check digit
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def bank_card(r: random.Random) -> str:
    prefix = r.choice(("62", "4", "5"))  # UnionPay, Visa, Mastercard
    partial = prefix + _digits(r, 15 - len(prefix))
    return partial + luhn_check_digit(partial)


def phone(r: random.Random, region: str = "853") -> str:
    """`+853 6xxx xxxx`, `+852 9xxx xxxx` or `+86 1xx xxxx xxxx`."""
    if region == "852":
        return f"+852 {r.choice('5679')}{r.randrange(1000):03d} {r.randrange(10000):04d}"
    if region == "86":
        return f"+86 1{r.choice('3589')}{r.randrange(10)} {r.randrange(10000):04d} {r.randrange(10000):04d}"
    return f"+853 6{r.randrange(1000):03d} {r.randrange(10000):04d}"
