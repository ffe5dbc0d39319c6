"""Replicas: named copies of the vault on other storage, and the registry that lists them.

A replica is a name, a backend URL, a region label (for residency reports, e.g. ``mo``,
``hk``, ``cn-shenzhen``) and the classification levels it may hold. Packs of other levels are
never shipped to it (see ``replication``).

Where the registry lives — decided: a JSON file, ``<home>/replicas.json`` (mode 0600), not an
object in the vault. The replicator ships ciphertext only and must run without the vault being
unlocked (a service restarted at night has no passphrase), so the list of places to ship to must
be readable without the key. Nothing in it is secret: backend URLs are refused if they carry
credentials (``backends.from_url``), and credentials come from the environment / AWS config.
Edits are atomic (temp file, fsync, rename) and serialised with an advisory lock, so two
``dingvault replica add`` runs cannot lose each other's entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .backends import BackendError, redact_url
from .levels import LEVELS

REGISTRY_FILE = "replicas.json"
REGISTRY_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SCHEMES = {"", "file", "s3", "memory"}


class ReplicaError(Exception):
    """A replica definition or the registry is invalid; the message says what to fix."""


@dataclass(frozen=True)
class Replica:
    name: str
    url: str
    region: str = ""
    levels: tuple[str, ...] = field(default=LEVELS)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ReplicaError(
                f"invalid replica name {self.name!r}: use 1-63 of a-z, 0-9, '-', '_' (starting with a letter or digit)"
            )
        check_replica_url(self.url)
        levels = tuple(dict.fromkeys(str(x).strip().lower() for x in self.levels))
        if not levels:
            raise ReplicaError(f"replica {self.name}: give at least one level ({', '.join(LEVELS)})")
        unknown = [x for x in levels if x not in LEVELS]
        if unknown:
            raise ReplicaError(
                f"replica {self.name}: unknown level(s) {unknown}; levels are {', '.join(LEVELS)}"
            )
        # Stored in the canonical order so equality and the registry file are stable.
        object.__setattr__(self, "levels", tuple(x for x in LEVELS if x in levels))

    def allows(self, level: str) -> bool:
        return level in self.levels

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "region": self.region, "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Replica:
        try:
            return cls(name=d["name"], url=d["url"], region=d.get("region", ""), levels=tuple(d["levels"]))
        except (KeyError, TypeError) as exc:
            raise ReplicaError(f"malformed replica entry {d!r}: {exc}") from None


def check_replica_url(url: str) -> None:
    """Refuse URLs the registry must not store: unknown schemes and embedded credentials."""
    if not isinstance(url, str) or not url:
        raise ReplicaError("replica URL is empty")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES and not (len(scheme) == 1 and url[1:2] == ":"):
        raise ReplicaError(f"unsupported replica URL scheme {scheme!r} in {redact_url(url)} (file, s3)")
    if scheme == "" and not os.path.isabs(url):
        # The service may run from another directory than the command that added the replica.
        raise ReplicaError(f"replica path {url!r} must be absolute (or a file:// URL)")
    if "@" in parts.netloc or any(
        w in k.lower()
        for k in _query_keys(parts.query)
        for w in ("key", "secret", "token", "password", "credential")
    ):
        raise ReplicaError(
            f"credentials must not be in a replica URL ({redact_url(url)}): they would be stored in "
            "replicas.json; use the environment, the AWS config files or a credentials file"
        )


def _query_keys(query: str) -> Iterator[str]:
    for part in query.split("&"):
        if part:
            yield part.split("=", 1)[0]


class ReplicaRegistry:
    """The replicas of one installation, persisted in ``<home>/replicas.json``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def in_home(cls, home: str | os.PathLike[str]) -> ReplicaRegistry:
        return cls(Path(home) / REGISTRY_FILE)

    def list(self) -> list[Replica]:
        return list(self._load().values())

    def get(self, name: str) -> Replica:
        try:
            return self._load()[name]
        except KeyError:
            known = ", ".join(self._load()) or "none"
            raise ReplicaError(f"no replica named {name!r} (known: {known})") from None

    def add(self, replica: Replica, *, replace: bool = False) -> None:
        with self._locked():
            entries = self._load()
            if replica.name in entries and not replace:
                raise ReplicaError(f"a replica named {replica.name!r} already exists (remove it first)")
            for other in entries.values():
                if other.name != replica.name and other.url == replica.url:
                    raise ReplicaError(f"replica {other.name!r} already uses {redact_url(replica.url)}")
            entries[replica.name] = replica
            self._save(entries)

    def remove(self, name: str) -> Replica:
        with self._locked():
            entries = self._load()
            if name not in entries:
                raise ReplicaError(f"no replica named {name!r}")
            gone = entries.pop(name)
            self._save(entries)
            return gone

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> dict[str, Replica]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ReplicaError(f"cannot read replica registry {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ReplicaError(f"replica registry {self.path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != REGISTRY_VERSION:
            raise ReplicaError(
                f"replica registry {self.path} has an unknown format (expected version {REGISTRY_VERSION})"
            )
        out: dict[str, Replica] = {}
        for d in doc.get("replicas", []):
            r = Replica.from_dict(d)
            out[r.name] = r
        return out

    def _save(self, entries: dict[str, Replica]) -> None:
        doc = {"version": REGISTRY_VERSION, "replicas": [r.to_dict() for r in entries.values()]}
        data = json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".replicas-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise ReplicaError(f"cannot write replica registry {self.path}: {exc.strerror}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ReplicaError(f"cannot lock replica registry {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def open_replica_backend(replica: Replica, **opts: Any):  # type: ignore[no-untyped-def]
    """The replica's backend (``opts`` go to ``from_url``, e.g. an S3 credentials file)."""
    from .backends import from_url

    try:
        return from_url(replica.url, **opts)
    except BackendError as exc:
        raise BackendError(f"replica {replica.name}: {exc}") from exc
