"""Sealed secrets: the DingTalk app secret is stored encrypted, never in plain text.

The sealing key is derived (HKDF-SHA256) from key material that only an opened vault has — the
vault's master key — so the secret is exactly as safe as the vault: whoever can open the vault with
the passphrase (or a recovery key) can use the app secret, nobody else can. Changing the passphrase
does not re-seal anything because the master key does not change.

File format (JSON, one file per secret under ``<home>/secrets/<name>.sealed``)::

    {"v": 1, "alg": "AES-256-GCM", "kdf": "HKDF-SHA256", "info": "dingvault/secret/<name>",
     "salt": b64(16), "nonce": b64(12), "ct": b64(ciphertext || tag)}

The secret's name is bound as associated data, so a sealed file renamed to another secret's name
fails to open instead of yielding the wrong secret.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT_VERSION = 1


class SecretError(Exception):
    """A sealed secret is missing, damaged, or was sealed by another vault."""


def _derive(key_material: bytes, salt: bytes, name: str) -> bytes:
    if len(key_material) < 16:
        raise SecretError("sealing key material is too short")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=f"dingvault/secret/{name}".encode()
    ).derive(key_material)


def seal(plaintext: str, key_material: bytes, name: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _derive(key_material, salt, name)
    ct = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), name.encode())
    doc = {
        "v": FORMAT_VERSION,
        "alg": "AES-256-GCM",
        "kdf": "HKDF-SHA256",
        "info": f"dingvault/secret/{name}",
        "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "ct": base64.b64encode(ct).decode(),
    }
    return json.dumps(doc).encode()


def unseal(sealed: bytes, key_material: bytes, name: str) -> str:
    try:
        doc = json.loads(sealed)
        if doc.get("v") != FORMAT_VERSION:
            raise SecretError(f"sealed secret {name!r}: unsupported format version {doc.get('v')!r}")
        salt = base64.b64decode(doc["salt"])
        nonce = base64.b64decode(doc["nonce"])
        ct = base64.b64decode(doc["ct"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SecretError(f"sealed secret {name!r} is damaged: {exc}") from exc
    try:
        return AESGCM(_derive(key_material, salt, name)).decrypt(nonce, ct, name.encode()).decode("utf-8")
    except InvalidTag as exc:
        raise SecretError(
            f"sealed secret {name!r} cannot be opened with this vault's key "
            "(it was sealed by another vault, or the file was altered); run `dingvault connect` again"
        ) from exc


class SecretStore:
    """Sealed secrets in a directory (``<home>/secrets``), written atomically with mode 0600."""

    def __init__(self, directory: Path, key_material: bytes) -> None:
        self.directory = directory
        self._key = key_material

    def _path(self, name: str) -> Path:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise SecretError(f"invalid secret name {name!r}")
        return self.directory / f"{name}.sealed"

    def put(self, name: str, value: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(seal(value, self._key, name))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def get(self, name: str) -> str:
        path = self._path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise SecretError(f"no stored secret {name!r}; run `dingvault connect` first") from exc
        return unseal(data, self._key, name)

    def has(self, name: str) -> bool:
        return self._path(name).exists()
