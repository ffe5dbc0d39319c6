"""The service's own durable state: ``<home>/service/state.db`` (SQLite, ``synchronous=FULL``).

* **inbox** - every Stream event and robot message, written (and fsynced) *before* the ACK goes
  back to DingTalk. The primary key is the event id (robot messages: the ``msgId``), so a
  redelivered event is dropped here. A row stays ``pending`` until the event-driven run that
  handles it has committed to the vault; a crash between the two replays it at start-up.
* **kv** - small facts that must survive restarts: when the Stream connection was last known up
  (for catch-up after a gap), when each scheduled run last fired.
* **holds** - where offboarding holds were kept before they moved into the catalog (a lost
  machine lost them with this file). Still read: ``migrate_legacy_holds`` copies them into the
  catalog once, at the service's start, and until then ``ServiceHolds`` honours them too.

One connection guarded by a lock: the listener, the runner and the HTTP endpoints touch it from
different threads, and SQLite in WAL mode keeps each commit short.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dingvault.catalog import Catalog, CatalogHolds

log = logging.getLogger(__name__)

# Set in the kv table once the state DB's holds have been copied into the catalog.
HOLDS_MIGRATED = "holds_migrated_to_catalog"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id TEXT PRIMARY KEY,            -- eventId, or the robot message's msgId
    source TEXT NOT NULL,           -- 'event' | 'callback'
    type TEXT NOT NULL,             -- event type, or the callback topic
    born_ms INTEGER,                -- when DingTalk says it happened (eventBornTime / createAt)
    received REAL NOT NULL,         -- epoch seconds, when it was made durable here
    data TEXT NOT NULL,             -- the event's data, verbatim JSON
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    done_at REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox(status, received);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    subject TEXT NOT NULL,
    created REAL NOT NULL,
    until REAL NOT NULL,
    snapshot_ids TEXT NOT NULL,     -- JSON list
    summary TEXT NOT NULL           -- JSON: the hand-over summary
);
"""


@dataclass(frozen=True)
class InboxEvent:
    id: str
    source: str
    type: str
    born_ms: int | None
    received: float
    data: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Hold:
    id: int
    label: str
    subject: str
    created: float
    until: float
    snapshot_ids: tuple[str, ...]
    summary: dict[str, Any]


class ServiceState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed inbox row survives power loss, which is what makes the ACK honest.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_home(cls, home: Path) -> ServiceState:
        return cls(Path(home) / "service" / "state.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- inbox --------------------------------------------------------------------------------
    def add_event(
        self, event_id: str, source: str, type_: str, born_ms: int | None, data: dict[str, Any]
    ) -> bool:
        """Make one event durable; False when that id is already known (a redelivery)."""
        blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO inbox(id, source, type, born_ms, received, data) VALUES (?,?,?,?,?,?)",
                (event_id, source, type_, born_ms, time.time(), blob),
            )
            return cur.rowcount == 1

    def pending(self, limit: int = 1000) -> list[InboxEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, type, born_ms, received, data, attempts FROM inbox"
                " WHERE status = 'pending' ORDER BY received LIMIT ?",
                (limit,),
            ).fetchall()
        return [InboxEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def mark_done(self, ids: Iterable[str]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE inbox SET status = 'done', done_at = ?, error = NULL WHERE id = ?",
                [(now, i) for i in ids],
            )
            self._db.execute("COMMIT")

    def mark_failed(self, ids: Iterable[str], error: str, max_attempts: int) -> list[str]:
        """Count a failed attempt; rows that reached ``max_attempts`` become 'failed'. Returns those."""
        given_up: list[str] = []
        with self._lock:
            self._db.execute("BEGIN")
            for i in ids:
                self._db.execute(
                    "UPDATE inbox SET attempts = attempts + 1, error = ? WHERE id = ?", (error[:2000], i)
                )
                row = self._db.execute("SELECT attempts FROM inbox WHERE id = ?", (i,)).fetchone()
                if row and row[0] >= max_attempts:
                    self._db.execute("UPDATE inbox SET status = 'failed' WHERE id = ?", (i,))
                    given_up.append(i)
            self._db.execute("COMMIT")
        return given_up

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def event_status(self, event_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM inbox WHERE id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def done_events(self) -> Iterator[tuple[str, str, float, float]]:
        """(id, type, received, done_at) of every handled event (the RPO bench reads these)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, type, received, done_at FROM inbox WHERE status = 'done' ORDER BY done_at"
            ).fetchall()
        yield from rows

    def forget_done(self, older_than: float) -> int:
        """Drop handled rows older than ``older_than`` (epoch s); their ids no longer dedupe."""
        with self._lock:
            cur = self._db.execute("DELETE FROM inbox WHERE status = 'done' AND done_at < ?", (older_than,))
            return cur.rowcount

    # ---- kv -----------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # ---- holds (the pre-catalog home of offboarding holds) -------------------------------------
    def add_hold(
        self, label: str, subject: str, until: float, snapshot_ids: Iterable[str], summary: dict[str, Any]
    ) -> int:
        """Write a hold here, as releases before the catalog's holds table did (upgrade tests use it)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO holds(label, subject, created, until, snapshot_ids, summary) VALUES (?,?,?,?,?,?)",
                (
                    label,
                    subject,
                    time.time(),
                    until,
                    json.dumps(sorted(set(snapshot_ids))),
                    json.dumps(summary, ensure_ascii=False),
                ),
            )
            return int(cur.lastrowid or 0)

    def legacy_holds(self, *, active_at: float | None = None) -> list[Hold]:
        """The holds stored in this file (not the catalog's): what an older release recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, label, subject, created, until, snapshot_ids, summary FROM holds ORDER BY id"
            ).fetchall()
        out = [Hold(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), json.loads(r[6])) for r in rows]
        if active_at is not None:
            out = [h for h in out if h.until > active_at]
        return out

    def legacy_holds_migrated(self) -> bool:
        return bool(self.get(HOLDS_MIGRATED))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def migrate_legacy_holds(state: ServiceState, holds: CatalogHolds) -> int:
    """Copy the state DB's holds into the catalog, once; returns how many were added.

    Idempotent: a hold already in the catalog (same label, subject and creation time: a previous
    attempt that stopped before the flag was set) is not added twice. The rows stay in the state
    DB; only the flag tells readers the catalog now has them.
    """
    if state.legacy_holds_migrated():
        return 0
    added = 0
    for h in state.legacy_holds():
        created = _utc(h.created)
        if holds.find(h.label, h.subject, created) is not None:
            continue
        holds.add(h.label, h.subject, _utc(h.until), h.snapshot_ids, h.summary, created_at=created)
        added += 1
    state.put(HOLDS_MIGRATED, time.time())
    if added:
        log.info("moved %d hold(s) from the service's state into the catalog", added)
    return added


class ServiceHolds:
    """The holds as the vault's ``HoldProvider``: prune keeps every snapshot an active hold names.

    The catalog's holds, plus, until they have been migrated, those an older release left in the
    service's state DB (so a prune run before the upgraded service first starts keeps them too).
    """

    def __init__(
        self, holds: CatalogHolds | None, legacy: ServiceState | None = None, *, clock: Any = time.time
    ) -> None:
        self.holds = holds
        self._legacy = legacy
        self._clock = clock

    def held_snapshot_ids(self) -> Iterable[str]:
        now = float(self._clock())
        held = set(self.holds.held_snapshot_ids(_utc(now))) if self.holds is not None else set()
        if self._legacy is not None and not self._legacy.legacy_holds_migrated():
            held.update(s for h in self._legacy.legacy_holds(active_at=now) for s in h.snapshot_ids)
        return sorted(held)

    def held_blob_ids(self) -> Iterable[bytes]:
        return ()


def service_holds_in_home(home: Path, catalog: Catalog | None = None) -> ServiceHolds | None:
    """The holds of an installation, for ``vault prune``; None when it has neither a catalog nor
    a service state.

    ``catalog``: an open catalog of that home (default: opened from the home's settings).
    """
    from dingvault.catalog import Catalog, CatalogHolds
    from dingvault.home import open_home

    if catalog is None:
        h = open_home(home)
        if h.is_initialised():
            catalog = Catalog.open(h.load_settings().catalog_url)
    path = Path(home) / "service" / "state.db"
    legacy = ServiceState(path) if path.exists() else None
    if catalog is None and legacy is None:
        return None
    return ServiceHolds(CatalogHolds(catalog) if catalog is not None else None, legacy)
