"""What the engine needs from storage (vault + catalog), as one small synchronous interface.

The engine's event loop never touches the vault or the catalog directly: everything goes through a
``Store`` on a single dedicated thread (the vault writer and SQLite both want one writer). Keeping
the interface this narrow is also what lets the engine's tests run against an in-memory store.

Ordering contract (what makes a killed run safe to resume):
    put_attachment / put_version  →  durable()  →  commit(...)
``commit`` records versions, seen marks, deletions and cursors -- all of them in one catalog
transaction, so a cursor is never committed without the versions and marks it covers -- and must
only be called after ``durable`` returned, so the catalog never points at a blob the vault could
lose, and a cursor never moves past an item that is not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from dingvault.backup.stats import ItemFailure, RunStats


@dataclass(frozen=True)
class KnownVersion:
    """What the catalog holds as the current version of an item (for change detection)."""

    version_key: str | None
    content_hash: str
    # identity (payload.attachment_identity, hex) -> (blob ids, sha256, size) of stored attachments
    attachments: Mapping[str, tuple[list[str], str | None, int | None]] = field(default_factory=dict)
    deleted: bool = False


@dataclass
class VersionRecord:
    kind: str
    source_id: str
    container: str | None
    content_hash: str
    version_key: str | None
    fields: dict[str, Any]
    attachments: list[dict[str, Any]]  # [{"blob_ids": [...], "name", "size", "sha256", "identity"}]
    size: int
    level: str = "internal"


@dataclass
class Commit:
    """Everything that becomes visible at once after the blobs it refers to are durable."""

    versions: list[VersionRecord] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, source_id, container)
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (kind, source_id) reported deleted
    complete: list[tuple[str, str]] = field(default_factory=list)  # (kind, container) fully listed
    cursors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.versions) + len(self.seen) + len(self.deleted)


@dataclass
class CommitResult:
    new: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)


class Store(Protocol):
    def start_run(self, mode: str, families: Iterable[str]) -> int: ...

    def load_cursors(self) -> dict[tuple[str, str], dict[str, Any]]: ...

    def known(self, kind: str, source_ids: list[str]) -> dict[str, KnownVersion]: ...

    def put_attachment(self, stream: IO[bytes], level: str, size: int | None = None) -> list[str]: ...

    def put_version(self, payload: bytes, level: str) -> str: ...

    def durable(self) -> None: ...

    def commit(self, run_id: int, commit: Commit) -> CommitResult: ...

    def finish_run(self, run_id: int, stats: RunStats) -> None: ...

    def commit_snapshot(self, run_id: int) -> str: ...

    def export_catalog(self, run_id: int) -> str | None: ...
