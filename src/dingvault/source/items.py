"""The connector's output: items, attachment references, batches and cursor updates.

This is the contract between `source/` (which reads DingTalk) and `backup/` (which stores what it
reads). It is deliberately small and stable.

Identity
    `(kind, source_id)` follows the shared ground-truth contract exactly, e.g.
    `("approval", "<processInstanceId>")`, `("file", "<spaceId>/<dentryId>")`,
    `("calendar_event", "<unionId>/<eventId>")`. See `KINDS` below.

Raw and fields
    `raw` keeps the API payload(s) verbatim, keyed by what produced them
    (e.g. `{"detail": <GET /v1.0/workflow/processInstances body["result"]>}`); field names are never
    rewritten — it is the legal original. `fields` holds the normalised values the catalog indexes:
    `title`, `name`, `path`, `created` / `modified` (ISO-8601 UTC strings), `owner` (userid or
    unionId, see `owner_id_type`), `dept_id`, `status`, `size`, `sha256` (when the API gives one).

Change detection
    `version_key` is the API's own change marker (modifiedTime, version, gmtModified) or, when the
    API has none, a hash of the payload without its *derived* fields (member counts, space usage,
    a folder's last-activity time: they change with other records, which are versioned themselves).
    If the engine already holds `(kind, source_id)` with the same `version_key` it may skip storing
    a new version and skip downloading attachments.

Batches and cursors
    Collectors yield `Batch`es. A batch's `cursor` (if any) must be committed by the engine only
    after the batch's items (and attachments) are durable: the cursor says "everything before this
    point is safely stored", which is how a killed run resumes where it stopped. `deleted` lists
    `source_id`s (of the batch's `deleted_kind`, default: the collector's main kind for that
    container) that the API reported as deleted. `complete` lists containers whose listing this run
    has finished: every id of that container (and kind) the engine holds that was not yielded in
    this run is gone at the source. Collectors claim only what they really listed in full —
    containers are chosen so (time-partitioned `<processCode>/<YYYY-MM>`, per user, per space) that
    records beyond the API's reach, of people who left, or out of scope are never taken for deleted.

Failures
    A family-wide failure (quota, missing scope, bad credentials, IP ban) is raised from `collect`.
    Parts that could not be read are reported at the end as `IncompleteCollection`, after every
    readable batch was yielded; their cursors were not advanced and no completeness was claimed
    over them. `collector.skipped` lists what was deliberately not read, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from dingvault.source.filenames import safe_filename

__all__ = [
    "KINDS",
    "AllScope",
    "AttachmentRef",
    "Batch",
    "CompleteListing",
    "CursorKey",
    "CursorUpdate",
    "Item",
    "Mode",
    "ScopeFilter",
    "safe_filename",
]

# The item kinds of the shared ground-truth contract (`GET /_emulator/truth?kind=K`).
KINDS: tuple[str, ...] = (
    "department",
    "user",
    "resigned_user",
    "approval_template",
    "approval",
    "drive_space",
    "file",
    "wiki_workspace",
    "wiki_node",
    "doc",
    "attendance",
    "calendar_event",
    "todo",
    "report",
    "group",
    "robot_message",
    "org_group",
    "file_audit_log",
)

Mode = Literal["full", "incremental"]

# Cursor states are keyed by (collector name, container); container "" = the collector as a whole.
CursorKey = tuple[str, str]


@dataclass(slots=True)
class AttachmentRef:
    """Something to download for an item, fetched with `collector.open_attachment(ref)`.

    `name` is the name the API gives (verbatim; pass it through `safe_filename` before using it on
    a filesystem). `size` is the size the API announces, if any (bytes). `ref` is what the
    collector needs to fetch it again later, e.g. `{"spaceId", "dentryId", "version", "unionId"}`,
    `{"processInstanceId", "fileId"}` or `{"downloadCode", "robotCode"}`. `kind` says what it is:
    `file_content`, `approval_attachment`, `robot_media`, `doc_blocks`.
    """

    name: str
    size: int | None
    ref: dict[str, Any]
    kind: str

    @property
    def safe_name(self) -> str:
        return safe_filename(self.name)


@dataclass(slots=True)
class Item:
    """One record read from DingTalk. See the module docstring for the meaning of each field."""

    kind: str
    source_id: str
    raw: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)
    version_key: str | None = None
    attachments: list[AttachmentRef] = field(default_factory=list)
    container: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.source_id)


@dataclass(slots=True, frozen=True)
class CursorUpdate:
    """New sync state for `(collector, container)`; commit after the batch it rides on is durable."""

    collector: str
    container: str
    state: dict[str, Any]

    @property
    def key(self) -> CursorKey:
        return (self.collector, self.container)


@dataclass(slots=True, frozen=True)
class CompleteListing:
    """In `full` mode: the listing of `kind` items in `container` is complete for this run."""

    kind: str
    container: str


@dataclass(slots=True)
class Batch:
    items: list[Item] = field(default_factory=list)
    cursor: CursorUpdate | None = None
    deleted: list[str] | None = None
    # Kind of the ids in `deleted` (defaults to the kind of the batch's items when they share one).
    deleted_kind: str | None = None
    complete: list[CompleteListing] | None = None


@runtime_checkable
class ScopeFilter(Protocol):
    """What the backup engine's `Scope` offers; collectors code against this protocol only."""

    def includes_user(self, userid: str) -> bool: ...

    def includes_dept(self, dept_id: int | str) -> bool: ...

    def includes_kind(self, kind: str) -> bool: ...

    def includes_file(self, name: str, size: int | None) -> bool: ...


class AllScope:
    """A scope that includes everything (the default when no scope is configured)."""

    def includes_user(self, userid: str) -> bool:
        return True

    def includes_dept(self, dept_id: int | str) -> bool:
        return True

    def includes_kind(self, kind: str) -> bool:
        return True

    def includes_file(self, name: str, size: int | None) -> bool:
        return True


def cursor_state(
    cursors: Mapping[CursorKey, dict[str, Any]], collector: str, container: str
) -> dict[str, Any]:
    """The stored state for `(collector, container)`, or an empty dict."""
    return dict(cursors.get((collector, container)) or {})
