"""Sensitive values planted in generated files: the core's generators (`company/sensitive.py`),
under the type names the `file` truth reports, so records and files carry the same formats.

* `mo_id` Macau BIR `1234567(8)` — the Macau check-digit algorithm is not public, so the check
  digit is arbitrary (detectors can only rely on the shape);
* `hk_id` HKID `A123456(3)` (mod-11 check digit), `cn_id` mainland ID (ISO 7064 MOD 11-2);
* `bank_card` Luhn-valid 16 digits; `mo_phone` / `hk_phone` / `cn_phone` with +853/+852/+86.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from dingtalk_emulator.company import sensitive as core

hk_id_check = core.hkid_check_digit
cn_id_check = core.mainland_check_digit
luhn_check = core.luhn_check_digit
luhn_valid = core.luhn_valid

GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "mo_id": core.macau_id,
    "hk_id": core.hkid,
    "cn_id": core.mainland_id,
    "bank_card": core.bank_card,
    "mo_phone": lambda r: core.phone(r, "853"),
    "hk_phone": lambda r: core.phone(r, "852"),
    "cn_phone": lambda r: core.phone(r, "86"),
}

# The names the `sensitive` truth kind uses for these types (shared with the records families).
TRUTH_TYPE = {
    "mo_id": "macau_id",
    "hk_id": "hkid_id",
    "cn_id": "mainland_id",
    "bank_card": "bank_card",
    "mo_phone": "phone",
    "hk_phone": "phone",
    "cn_phone": "phone",
}


def truth_entries(
    kind: str, item_id: str, planted: list[tuple[str, str, str]], where: Callable[[str], str]
) -> list[dict[str, str]]:
    """`sensitive` truth entries (`{"id","kind","itemId","type","value","where"}`) for one item;
    a second value of the same type in the item gets an id suffixed `-2`, `-3`, ..."""
    out = []
    seen: dict[str, int] = {}
    for typ, value, loc in planted:
        name = TRUTH_TYPE[typ]
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"-{seen[name]}"
        out.append(
            {
                "id": f"{kind}/{item_id}/{name}{suffix}",
                "kind": kind,
                "itemId": item_id,
                "type": name,
                "value": value,
                "where": where(loc),
            }
        )
    return out
