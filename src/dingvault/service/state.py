"""The service's own durable state: ``<home>/service/state.db`` (SQLite, ``synchronous=FULL``).

* **inbox** - every Stream event and robot message, written (and fsynced) *before* the ACK goes
  back to DingTalk. The primary key is the event id (robot messages: the ``msgId``), so a
  redelivered event is dropped here. A row stays ``pending`` until the event-driven run that
  handles it has committed to the vault; a crash between the two replays it at start-up.
* **kv** - small facts that must survive restarts: when the Stream connection was last known up
  (for catch-up after a gap), when each scheduled run last fired.
* **holds** - offboarding holds (label, subject, snapshot ids, until); ``ServiceHolds`` offers
  them to the vault's prune as a ``HoldProvider``.

One connection guarded by a lock: the listener, the runner and the HTTP endpoints touch it from
different threads, and SQLite in WAL mode keeps each commit short.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    def add_event(self, event_id: str, source: str, type_: str, born_ms: int | None, data: dict[str, Any]) -> bool:
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
                "UPDATE inbox SET status = 'done', done_at = ?, error = NULL WHERE id = ?", [(now, i) for i in ids]
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

    # ---- holds --------------------------------------------------------------------------------
    def add_hold(
        self, label: str, subject: str, until: float, snapshot_ids: Iterable[str], summary: dict[str, Any]
    ) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO holds(label, subject, created, until, snapshot_ids, summary) VALUES (?,?,?,?,?,?)",
                (label, subject, time.time(), until, json.dumps(sorted(set(snapshot_ids))),
                 json.dumps(summary, ensure_ascii=False)),
            )
            return int(cur.lastrowid or 0)

    def holds(self, *, active_at: float | None = None) -> list[Hold]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, label, subject, created, until, snapshot_ids, summary FROM holds ORDER BY id"
            ).fetchall()
        out = [Hold(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), json.loads(r[6])) for r in rows]
        if active_at is not None:
            out = [h for h in out if h.until > active_at]
        return out


class ServiceHolds:
    """The service's holds as the vault's ``HoldProvider``: prune keeps every held snapshot."""

    def __init__(self, state: ServiceState, clock: Any = time.time) -> None:
        self._state = state
        self._clock = clock

    def held_snapshot_ids(self) -> Iterable[str]:
        return sorted({s for h in self._state.holds(active_at=self._clock()) for s in h.snapshot_ids})

    def held_blob_ids(self) -> Iterable[bytes]:
        return ()


def service_holds_in_home(home: Path) -> ServiceHolds | None:
    """The service's holds of an installation, for ``vault prune``; None when it never ran."""
    path = Path(home) / "service" / "state.db"
    if not path.exists():
        return None
    return ServiceHolds(ServiceState(path))
