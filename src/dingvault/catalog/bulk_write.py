"""The hot path of record_versions: plain driver ``executemany`` over prepared tuples.

Why: in a batch of new versions about a third of the time went into SQLAlchemy building and
type-processing each row's parameters (and, on PostgreSQL, psycopg parsing the huge multi-VALUES
statements SQLAlchemy renders). These few statements are fixed and their values are already
validated (catalog.validate), so the rows go straight to the driver -- sqlite3's C executemany,
psycopg's pipelined executemany -- with the same conversions the column types do:

- timestamps: SQLite stores UTC text (types.sqlite_datetime_text, SQLAlchemy's DATETIME format);
  psycopg sends aware datetimes as timestamptz;
- JSON: orjson text (cast to jsonb on PostgreSQL);
- booleans: 0/1 on SQLite, true/false on PostgreSQL.

Reads and every other write stay on SQLAlchemy Core. The SQLite and PostgreSQL test runs cover
this module on both databases with the same tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from dingvault.catalog.schema import items, versions
from dingvault.catalog.types import sqlite_datetime_text


class _TimeText:
    """Timestamp -> SQLite text, memoised for one statement: a batch shares most of its times
    (the capture time, first/last seen), and the conversion is a large share of the row cost."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[object, str | None] = {None: None}

    def __call__(self, value: Any) -> str | None:
        try:
            return self._memo[value]
        except KeyError:
            text = self._memo[value] = sqlite_datetime_text(value)
            return text
        except TypeError:  # unhashable: not a datetime; let the converter say so
            return sqlite_datetime_text(value)


def _same(value: Any) -> Any:
    return value


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


# Guard: the tuple builders below list the columns in table order.
assert [c.name for c in items.columns] == [
    "id", "kind", "source_id", "container", "latest_version_id", "version_count", "deleted_at_source",
    "deleted_at", "deleted_run_id", "first_seen_at", "last_seen_at", "last_seen_run_id",
]  # fmt: skip
assert [c.name for c in versions.columns] == [
    "id", "item_id", "seq", "content_hash", "version_key", "captured_at", "size", "level", "attachments",
    "title", "owner_userid", "department", "source_created_at", "source_modified_at", "extra", "run_id",
]  # fmt: skip


class BulkWriter:
    """The fixed statements of a batch, for one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        p = "%s" if self.pg else "?"
        jsonb = f"{p}::jsonb" if self.pg else p
        # PostgreSQL: ids come from the sequence and a concurrent writer may have created the item.
        item_cols = [c.name for c in items.columns if not (self.pg and c.name == "id")]
        self._insert_items = (
            f"INSERT INTO items ({', '.join(item_cols)}) VALUES ({', '.join([p] * len(item_cols))})"
            + (" ON CONFLICT (kind, source_id) DO NOTHING" if self.pg else "")
        )
        version_cols = [c.name for c in versions.columns]
        values = [jsonb if name in ("attachments", "extra") else p for name in version_cols]
        self._insert_versions = (
            f"INSERT INTO versions ({', '.join(version_cols)}) VALUES ({', '.join(values)})"
        )
        touch = (
            f"last_seen_at = {p}, last_seen_run_id = COALESCE({p}, last_seen_run_id), "
            f"container = COALESCE({p}, container), "
            "deleted_at_source = FALSE, deleted_at = NULL, deleted_run_id = NULL"
        )
        self._update_changed = (
            f"UPDATE items SET latest_version_id = {p}, version_count = {p}, {touch} WHERE id = {p}"
        )
        self._update_seen = f"UPDATE items SET {touch} WHERE id = {p}"

    def _times(self) -> Any:
        return _same if self.pg else _TimeText()

    def _bool(self, value: bool) -> Any:
        return bool(value) if self.pg else (1 if value else 0)

    def insert_items(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert item rows (with their ids on SQLite; PostgreSQL skips rows another writer created)."""
        ts, b = self._times(), self._bool
        lead = (lambda r: ()) if self.pg else (lambda r: (r["id"],))
        conn.exec_driver_sql(
            self._insert_items,
            [
                (
                    *lead(r), r["kind"], r["source_id"], r["container"], r["latest_version_id"], r["version_count"],
                    b(r["deleted_at_source"]), ts(r["deleted_at"]), r["deleted_run_id"],
                    ts(r["first_seen_at"]), ts(r["last_seen_at"]), r["last_seen_run_id"],
                )
                for r in rows
            ],
        )  # fmt: skip

    def insert_versions(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        ts = self._times()
        conn.exec_driver_sql(
            self._insert_versions,
            [
                (
                    r["id"], r["item_id"], r["seq"], r["content_hash"], r["version_key"], ts(r["captured_at"]),
                    r["size"], r["level"], _json(r["attachments"]), r["title"], r["owner_userid"], r["department"],
                    ts(r["source_created_at"]), ts(r["source_modified_at"]), _json(r["extra"]), r["run_id"],
                )
                for r in rows
            ],
        )  # fmt: skip

    def update_items(
        self, conn: sa.Connection, changed: Sequence[dict[str, Any]], seen: Sequence[dict[str, Any]]
    ) -> None:
        """Stamp touched items; ``changed`` ones also get their new latest version (see Catalog._record_batch)."""
        ts = self._times()
        if changed:
            conn.exec_driver_sql(
                self._update_changed,
                [
                    (t["b_latest"], t["b_count"], ts(t["b_seen"]), t["b_run"], t["b_container"], t["b_id"])
                    for t in changed
                ],
            )
        if seen:
            conn.exec_driver_sql(
                self._update_seen, [(ts(t["b_seen"]), t["b_run"], t["b_container"], t["b_id"]) for t in seen]
            )
