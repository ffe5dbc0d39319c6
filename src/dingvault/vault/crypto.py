"""Cryptographic building blocks: key derivation, keyed blob ids, AEAD sealing.

Everything here is a thin, documented use of well-reviewed primitives (``cryptography``'s
AES-256-GCM, BLAKE3's keyed and key-derivation modes, Argon2id from ``argon2-cffi``); the exact
byte layouts are specified in ``docs/vault-format.md``.
"""

from __future__ import annotations

import os
import struct

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

# Key-derivation contexts (BLAKE3 derive_key mode). Changing one changes the format.
CTX_META = "dingvault 2026-11 vault metadata encryption key v1"
CTX_BLOB_ID = "dingvault 2026-11 blob id key v1 class {cls}"
PACK_KEY_PREFIX = b"dingvault pack key v1"

# The pack header uses a nonce no segment can have: segments use their byte offset (< 2**64)
# left-padded with four zero bytes, so a nonce starting with 0xFFFFFFFF is free.
HEADER_NONCE = b"\xff" * NONCE_SIZE


def random_key() -> bytes:
    return os.urandom(KEY_SIZE)


def derive(master: bytes, context: str) -> bytes:
    """A 32-byte subkey of ``master`` for one purpose (BLAKE3 derive_key mode)."""
    return blake3.blake3(master, derive_key_context=context).digest()


def pack_key(class_key: bytes, salt: bytes) -> bytes:
    """Each pack is encrypted under its own key, derived from its class key and a random salt.

    Why: segment nonces can then be a simple counter (the segment's offset) instead of random
    96-bit values, so no pack ever nears GCM's nonce limits however long the vault lives.
    """
    return blake3.blake3(PACK_KEY_PREFIX + salt, key=class_key).digest()


def segment_nonce(offset: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", offset)


def argon2id(secret: bytes, salt: bytes, *, time_cost: int, memory_kib: int, parallelism: int) -> bytes:
    return hash_secret_raw(
        secret,
        salt,
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=KEY_SIZE,
        type=Type.ID,
    )


class Sealer:
    """AES-256-GCM with a random nonce stored in front of the ciphertext.

    Used for the few, small metadata objects (index files, snapshots, catalog descriptors,
    locks, key slots) where random nonces are far from GCM's 2**32-messages-per-key bound.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes = b"", *, what: str = "object") -> bytes:
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise IntegrityError(f"{what}: too short to be sealed data ({len(sealed)} bytes)")
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise IntegrityError(
                f"{what}: authentication failed (damaged, or not this vault's key)"
            ) from None
