"""Helpers shared by the vault tests (importable: tests/vault is on sys.path under pytest)."""

from __future__ import annotations

from pathlib import Path

from dingvault.vault import Vault
from dingvault.vault.backends import Backend
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

PASSPHRASE = "correct horse battery staple 馬"


def make_vault(backend: Backend, cache_dir: Path) -> tuple[Vault, str]:
    vault, recovery = Vault.init(backend, PASSPHRASE, kdf=FAST_KDF_FOR_TESTS, cache_dir=cache_dir)
    assert recovery is not None
    return vault, recovery


def reopen(v: Vault, cache_dir: Path, passphrase: str = PASSPHRASE) -> Vault:
    """Open the same backend afresh with a new, empty cache (as another machine would)."""
    v.close()
    return Vault.open(v.backend, passphrase, cache_dir=cache_dir / f"again-{id(v)}")


def flip_bit(backend: Backend, key: str, bit: int) -> None:
    data = bytearray(backend.get(key))
    data[bit // 8] ^= 1 << (bit % 8)
    backend.put(key, bytes(data), overwrite=True)
