"""The index: which pack holds each blob.

Authoritative index files live in the backend (``index/<sha256>``, sealed, see ``objects``).
Each lists packs and the blobs inside them. A local SQLite database caches their union so that
millions of blobs never sit in process memory; it is rebuilt from the backend whenever an index
file it knew has disappeared (prune or repair rewrote the index), and topped up with new files.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError
from .levels import StorageClass
from .pack import BlobEntry

INDEX_PREFIX = "index/"
INDEX_MAGIC = b"DVIX"
INDEX_VERSION = 1
_HEAD = struct.Struct("<4sII")  # magic, version, pack count
_PACK = struct.Struct("<32sB32sQI")  # pack id, class, salt, pack size, entry count
_ENTRY = struct.Struct("<32sBIIII")  # blob id, type, seg offset, seg length, offset, length

# How many blob entries one index file holds at most when the whole index is rewritten.
ENTRIES_PER_INDEX_FILE = 200_000


@dataclass(frozen=True)
class PackRecord:
    pack_id: bytes
    storage_class: StorageClass
    salt: bytes
    size: int
    entries: tuple[BlobEntry, ...]


@dataclass(frozen=True)
class Location:
    blob_id: bytes
    blob_type: int
    pack_id: bytes
    storage_class: StorageClass
    salt: bytes
    seg_offset: int
    seg_length: int
    offset: int
    length: int


def encode_index(packs: Iterable[PackRecord]) -> bytes:
    packs = list(packs)
    out = bytearray(_HEAD.pack(INDEX_MAGIC, INDEX_VERSION, len(packs)))
    pack_entry = _PACK.pack
    entry = _ENTRY.pack
    for p in packs:
        out += pack_entry(p.pack_id, int(p.storage_class), p.salt, p.size, len(p.entries))
        for e in p.entries:
            out += entry(e.blob_id, e.blob_type, e.seg_offset, e.seg_length, e.offset, e.length)
    return bytes(out)


def decode_index(raw: bytes, what: str) -> list[PackRecord]:
    try:
        magic, version, npacks = _HEAD.unpack_from(raw, 0)
        if magic != INDEX_MAGIC or version != INDEX_VERSION:
            raise IntegrityError(f"{what}: not an index (magic {magic!r}, version {version})")
        pos = _HEAD.size
        packs = []
        for _ in range(npacks):
            pack_id, cls, salt, size, n = _PACK.unpack_from(raw, pos)
            pos += _PACK.size
            entries = tuple(
                BlobEntry(*fields) for fields in _ENTRY.iter_unpack(raw[pos : pos + n * _ENTRY.size])
            )
            if len(entries) != n:
                raise IntegrityError(f"{what}: truncated entry list")
            pos += n * _ENTRY.size
            packs.append(PackRecord(pack_id, StorageClass(cls), salt, size, entries))
        if pos != len(raw):
            raise IntegrityError(f"{what}: {len(raw) - pos} stray bytes at the end")
        return packs
    except (struct.error, ValueError) as exc:
        raise IntegrityError(f"{what}: malformed index ({exc})") from None


_SCHEMA = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS packs(
    pid INTEGER PRIMARY KEY, pack_id BLOB UNIQUE NOT NULL, class INT NOT NULL, salt BLOB NOT NULL,
    size INT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs(
    id BLOB PRIMARY KEY, type INT NOT NULL, pid INT NOT NULL, seg_off INT NOT NULL,
    seg_len INT NOT NULL, off INT NOT NULL, len INT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_pid ON blobs(pid);
CREATE TABLE IF NOT EXISTS index_files(name TEXT PRIMARY KEY);
"""

_BATCH = 500  # ids per IN (...) query


class IndexCache:
    """SQLite cache of the union of the index files. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # A bounded page cache keeps RSS flat however many blobs the vault holds.
        self._db.execute("PRAGMA cache_size=-16384")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def known_index_files(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT name FROM index_files")}

    def clear(self) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM blobs")
            self._db.execute("DELETE FROM packs")
            self._db.execute("DELETE FROM index_files")
            self._db.execute("COMMIT")

    def add(self, name: str | None, packs: Iterable[PackRecord]) -> None:
        """Add packs (and, when ``name`` is given, record that index file as loaded) atomically."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                for p in packs:
                    db.execute(
                        "INSERT OR IGNORE INTO packs(pack_id, class, salt, size) VALUES (?,?,?,?)",
                        (p.pack_id, int(p.storage_class), p.salt, p.size),
                    )
                    (pid,) = db.execute("SELECT pid FROM packs WHERE pack_id=?", (p.pack_id,)).fetchone()
                    db.executemany(
                        "INSERT OR IGNORE INTO blobs VALUES (?,?,?,?,?,?,?)",
                        ((e[0], e[1], pid, e[2], e[3], e[4], e[5]) for e in p.entries),
                    )
                if name is not None:
                    db.execute("INSERT OR IGNORE INTO index_files VALUES (?)", (name,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def existing(self, ids: list[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        with self._lock:
            for i in range(0, len(ids), _BATCH):
                chunk = ids[i : i + _BATCH]
                q = "SELECT id FROM blobs WHERE id IN (" + ",".join("?" * len(chunk)) + ")"
                found.update(r[0] for r in self._db.execute(q, chunk))
        return found

    def locate(self, blob_id: bytes) -> Location | None:
        with self._lock:
            row = self._db.execute(
                "SELECT b.type, p.pack_id, p.class, p.salt, b.seg_off, b.seg_len, b.off, b.len "
                "FROM blobs b JOIN packs p ON p.pid=b.pid WHERE b.id=?",
                (blob_id,),
            ).fetchone()
        if row is None:
            return None
        return Location(blob_id, row[0], row[1], StorageClass(row[2]), row[3], *row[4:])

    def packs(self) -> list[tuple[bytes, StorageClass, bytes, int]]:
        """(pack id, class, salt, size) of every indexed pack."""
        with self._lock:
            return [
                (r[0], StorageClass(r[1]), r[2], r[3])
                for r in self._db.execute("SELECT pack_id, class, salt, size FROM packs")
            ]

    def pack_entries(self, pack_id: bytes) -> list[BlobEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT b.id, b.type, b.seg_off, b.seg_len, b.off, b.len FROM blobs b "
                "JOIN packs p ON p.pid=b.pid WHERE p.pack_id=? ORDER BY b.seg_off, b.off",
                (pack_id,),
            ).fetchall()
        return [BlobEntry(*r) for r in rows]

    def blob_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]

    def stats_by_class(self) -> dict[str, dict[str, int]]:
        """Packs, bytes and blobs per storage class (what each level costs, what a replica holds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.class, COUNT(*), SUM(p.size), "
                "(SELECT COUNT(*) FROM blobs b JOIN packs q ON q.pid=b.pid WHERE q.class=p.class) "
                "FROM packs p GROUP BY p.class"
            ).fetchall()
        return {
            StorageClass(c).label: {"packs": n, "pack_bytes": size or 0, "blobs": blobs}
            for c, n, size, blobs in rows
        }

    def stats(self) -> dict[str, int]:
        with self._lock:
            npacks, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size),0) FROM packs").fetchone()
        return {"packs": npacks, "pack_bytes": total, "blobs": self.blob_count()}

    def iter_records(self) -> Iterator[PackRecord]:
        """Every pack with its entries, one pack at a time (bounded memory)."""
        for pack_id, cls, salt, size in self.packs():
            yield PackRecord(pack_id, cls, salt, size, tuple(self.pack_entries(pack_id)))

    # --- scratch sets for prune/verify: kept in SQLite so a million ids cost no RAM -----------

    def mark_reset(self) -> None:
        with self._lock:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS marks(id BLOB PRIMARY KEY) WITHOUT ROWID")
            self._db.execute("DELETE FROM marks")

    def mark(self, ids: Iterable[bytes]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO marks VALUES (?)", ((i,) for i in ids))
            self._db.execute("COMMIT")

    def is_marked(self, blob_id: bytes) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM marks WHERE id=?", (blob_id,)).fetchone() is not None

    def marked_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM marks").fetchone()[0]
