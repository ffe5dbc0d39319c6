"""Key slots: the vault's keys wrapped by passphrase-derived keys.

A vault has one random 32-byte *master key* (metadata encryption, blob-id keys) and one random
32-byte *data key per classification level*. A key slot (``keys/<slot id>``) stores these keys
encrypted (AES-256-GCM) under a key derived from a passphrase by Argon2id. Several slots can
wrap the same keys: a second passphrase, the recovery key shown once at ``init``, or a restricted
slot that wraps only some levels' data keys (a role that may read ``public`` and ``internal`` but
never ``confidential``). Changing a passphrase writes a new slot and deletes the old one; no
data is rewritten.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from . import crypto
from .backends.base import Backend, ObjectNotFound
from .errors import IntegrityError, VaultError, WrongPassphrase
from .levels import LEVELS, StorageClass, parse_level

KEYS_PREFIX = "keys/"
_RECOVERY_SHAPE = re.compile(r"(?:[A-Z2-7]{4}-){12}[A-Z2-7]{4}")
SLOT_AAD = b"dingvault key slot v1"


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. The defaults follow RFC 9106's second recommended option (64 MiB, t=3)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 2

    def as_dict(self) -> dict[str, int]:
        return {"t": self.time_cost, "m": self.memory_kib, "p": self.parallelism}


# For tests and benchmarks only: Argon2id's cost is deliberate, and tests open many vaults.
FAST_KDF_FOR_TESTS = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)


@dataclass
class KeyMaterial:
    """The plaintext keys that a slot unlocks."""

    master: bytes
    levels: dict[StorageClass, bytes] = field(default_factory=dict)

    @classmethod
    def generate(cls) -> KeyMaterial:
        return cls(
            master=crypto.random_key(),
            levels={parse_level(name): crypto.random_key() for name in LEVELS},
        )

    def restricted(self, levels: Iterable[str | StorageClass]) -> KeyMaterial:
        wanted = {parse_level(x) for x in levels}
        missing = wanted - set(self.levels)
        if missing:
            names = ", ".join(sorted(m.label for m in missing))
            raise VaultError(
                f"cannot grant level(s) {names}: the key used to open the vault does not hold them"
            )
        return KeyMaterial(master=self.master, levels={k: v for k, v in self.levels.items() if k in wanted})

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "master": _b64(self.master),
                "levels": {cls.label: _b64(key) for cls, key in sorted(self.levels.items())},
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyMaterial:
        try:
            doc = orjson.loads(raw)
            return cls(
                master=_unb64(doc["master"]),
                levels={parse_level(name): _unb64(key) for name, key in doc["levels"].items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"key slot payload is malformed: {exc}") from None


@dataclass(frozen=True)
class KeySlot:
    slot_id: str
    kind: str  # "passphrase" | "recovery"
    label: str
    created: str
    levels: tuple[str, ...]
    key: str  # backend object key


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _kdf_aad(kdf: dict) -> bytes:
    # The KDF parameters are authenticated, so nobody can lower the cost of a slot unnoticed.
    return SLOT_AAD + orjson.dumps(kdf, option=orjson.OPT_SORT_KEYS)


def write_slot(
    backend: Backend,
    material: KeyMaterial,
    passphrase: str,
    *,
    kind: str = "passphrase",
    label: str = "",
    kdf: KdfParams | None = None,
) -> KeySlot:
    if not passphrase:
        raise VaultError("an empty passphrase is not allowed")
    kdf = kdf or KdfParams()
    salt = os.urandom(16)
    kdf_doc = {"name": "argon2id", "salt": _b64(salt), **kdf.as_dict()}
    kek = crypto.argon2id(
        passphrase.encode("utf-8"),
        salt,
        time_cost=kdf.time_cost,
        memory_kib=kdf.memory_kib,
        parallelism=kdf.parallelism,
    )
    sealed = crypto.Sealer(kek).seal(material.to_bytes(), _kdf_aad(kdf_doc))
    slot_id = secrets.token_hex(16)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    levels = tuple(cls.label for cls in sorted(material.levels))
    doc = {
        "version": 1,
        "kind": kind,
        "label": label,
        "created": created,
        "levels": list(levels),  # informational; the sealed payload is authoritative
        "kdf": kdf_doc,
        "sealed": _b64(sealed),
    }
    key = KEYS_PREFIX + slot_id
    backend.put(key, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return KeySlot(slot_id, kind, label, created, levels, key)


def _load_doc(backend: Backend, key: str) -> dict:
    try:
        doc = orjson.loads(backend.get(key))
        if doc.get("version") != 1 or doc["kdf"]["name"] != "argon2id":
            raise ValueError(f"unsupported key slot version/kdf in {key}")
        return doc
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"key slot {key} is malformed: {exc}") from None


def list_slots(backend: Backend) -> list[KeySlot]:
    slots = []
    for info in backend.list(KEYS_PREFIX):
        try:
            doc = _load_doc(backend, info.key)
        except (IntegrityError, ObjectNotFound):
            continue
        slots.append(
            KeySlot(
                slot_id=info.key[len(KEYS_PREFIX) :],
                kind=str(doc.get("kind", "passphrase")),
                label=str(doc.get("label", "")),
                created=str(doc.get("created", "")),
                levels=tuple(doc.get("levels", ())),
                key=info.key,
            )
        )
    return sorted(slots, key=lambda s: (s.created, s.slot_id))


def try_slot(backend: Backend, key: str, passphrase: str) -> KeyMaterial | None:
    doc = _load_doc(backend, key)
    kdf = doc["kdf"]
    kek = crypto.argon2id(
        passphrase.encode("utf-8"),
        _unb64(kdf["salt"]),
        time_cost=int(kdf["t"]),
        memory_kib=int(kdf["m"]),
        parallelism=int(kdf["p"]),
    )
    try:
        raw = crypto.Sealer(kek).open(_unb64(doc["sealed"]), _kdf_aad(kdf), what=f"key slot {key}")
    except IntegrityError:
        return None
    return KeyMaterial.from_bytes(raw)


def unlock(backend: Backend, passphrase: str) -> tuple[KeyMaterial, KeySlot]:
    """Try every slot (as restic does); the first that authenticates wins."""
    slots = list_slots(backend)
    if not slots:
        raise VaultError(f"the vault at {backend.url} has no key slots (keys/ is empty or unreadable)")
    # Argon2id is slow on purpose: try the likely slots first (recovery slots first only when
    # the text looks like a recovery key).
    looks_recovery = _RECOVERY_SHAPE.fullmatch(normalise_recovery_key(passphrase)) is not None
    slots.sort(key=lambda s: (s.kind == "recovery") != looks_recovery)
    for slot in slots:
        candidate = normalise_recovery_key(passphrase) if slot.kind == "recovery" else passphrase
        material = try_slot(backend, slot.key, candidate)
        if material is not None:
            return material, slot
    raise WrongPassphrase(
        f"wrong passphrase: none of the {len(slots)} key slot(s) of {backend.url} opens with it"
    )


def new_recovery_key() -> str:
    """256 random bits shown as 13 groups of 4 base32 characters (easy to copy, no ambiguity)."""
    text = base64.b32encode(os.urandom(32)).decode("ascii").rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def normalise_recovery_key(text: str) -> str:
    """Recovery keys are accepted with any case, spacing or dashes."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    return "-".join(cleaned[i : i + 4] for i in range(0, len(cleaned), 4))
