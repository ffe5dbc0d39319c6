"""Plain value objects that go in and out of the catalog API (no ORM objects, nothing lazy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["new", "changed", "unchanged"]
NEW: Outcome = "new"
CHANGED: Outcome = "changed"
UNCHANGED: Outcome = "unchanged"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One observed state of an item, as the backup engine hands it to ``record_versions``.

    ``fields`` holds the normalised values the console needs; the known keys are ``title``,
    ``owner_userid``, ``department``, ``created_at`` and ``modified_at`` (times as aware datetimes,
    ISO 8601 strings with an offset, or ints in epoch milliseconds -- DingTalk's convention). Any
    other key is kept in the version's ``extra`` JSON. ``attachments`` are vault blob ids, or
    mappings with a ``blob_id`` key plus anything else worth keeping (name, size, mime type).
    """

    kind: str
    source_id: str
    content_hash: str
    version_key: str | int | None = None
    fields: Mapping[str, Any] | None = None
    attachments: Sequence[str | Mapping[str, Any]] = ()
    level: str = "internal"
    run_id: int | None = None
    size: int | None = None
    container: str | None = None
    captured_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: int
    kind: str
    source_id: str
    seq: int
    content_hash: str
    version_key: str | None
    captured_at: datetime
    size: int | None
    level: str
    attachments: list[dict[str, Any]]
    title: str | None
    owner_userid: str | None
    department: str | None
    source_created_at: datetime | None
    source_modified_at: datetime | None
    extra: dict[str, Any] | None
    run_id: int | None


@dataclass(frozen=True, slots=True)
class ItemInfo:
    id: int
    kind: str
    source_id: str
    container: str | None
    latest_version_id: int | None
    version_count: int
    deleted_at_source: bool
    deleted_at: datetime | None
    deleted_run_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    last_seen_run_id: int | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    families: tuple[str, ...]
    stats: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class RunErrorRecord:
    """One failure to keep against a run (an item that could not be fetched, a page that failed)."""

    error_class: str
    message: str
    kind: str | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunErrorInfo:
    id: int
    run_id: int
    kind: str | None
    source_id: str | None
    error_class: str
    message: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    id: int
    vault_snapshot_id: str
    run_id: int | None
    created_at: datetime
    item_count: int
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class CursorInfo:
    collector: str
    container_key: str
    state: dict[str, Any]
    updated_at: datetime
    run_id: int | None


@dataclass(frozen=True, slots=True)
class KindCounts:
    kind: str
    live: int = 0
    deleted: int = 0
    versions: int = 0


@dataclass(slots=True)
class GroupResult:
    """What ``Catalog.write_group`` did: outcomes of its versions (in the order they were added),
    known items it stamped as seen, and items it newly marked deleted at the source, per kind."""

    outcomes: list[Outcome] = field(default_factory=list)
    seen: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
