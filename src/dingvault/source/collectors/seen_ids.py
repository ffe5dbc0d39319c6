"""A set of ids met during one run that does not grow the process's memory with the organisation.

A family that must yield a record once although several people's listings return it (a todo
shared by several users) has to remember every id it has yielded in the run: as a Python set that
is ~120 bytes per id, ~11 MB for the emulator's large company's 90,000 todos and ~100 MB for an
organisation ten times its size. The ids go instead into a private temporary SQLite database,
which keeps a small page cache in memory (under the run's SQLite heap limit, see
``dingvault.backup.memory``) and spills the rest to a temporary file that SQLite deletes when the
set is closed. Measured: ~3 µs an id, against ~0.2 µs for a Python set: 0.3 s for 90,000.

The ids are DingTalk identifiers, not content, and the file lives only for the run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


class SeenIds:
    """``add(id)`` is True the first time an id is added, False after. Exact: no hashing."""

    def __init__(self) -> None:
        # "" opens a private database in a temporary file, created only once the cache spills.
        # Any thread: a collector's generator may be finalised away from the thread that made it.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")  # nothing to recover: the set lives for one run
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._count = 0

    def add(self, item_id: str) -> bool:
        added = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (item_id,)).rowcount == 1
        self._count += added
        return added

    def add_new(self, ids: Iterable[str]) -> list[bool]:
        """``add`` for each id, in one transaction (a page's ids at once)."""
        self._db.execute("BEGIN")
        try:
            return [self.add(i) for i in ids]
        finally:
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SeenIds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
