"""The hot path of record_versions on SQLite: plain driver executemany over prepared tuples.

Why: in a batch of new versions about a third of the time went into SQLAlchemy building and
type-processing each row's parameters. These few statements are fixed, their values are already
validated (catalog.validate), and their conversions are the same ones the column types do
(timestamps as UTC text via types.sqlite_datetime_text, JSON via orjson, booleans as 0/1), so the
rows go straight to sqlite3. Reads, and every other write, stay on SQLAlchemy Core; PostgreSQL
uses Core throughout. The SQLite and PostgreSQL test runs cover both paths with the same tests.
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


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _insert_sql(table: sa.Table) -> str:
    names = [c.name for c in table.columns]
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


_ITEM_COLUMNS = [c.name for c in items.columns]
_VERSION_COLUMNS = [c.name for c in versions.columns]
_INSERT_ITEMS = _insert_sql(items)
_INSERT_VERSIONS = _insert_sql(versions)
_TOUCH = (
    "last_seen_at = ?, last_seen_run_id = COALESCE(?, last_seen_run_id), container = COALESCE(?, container), "
    "deleted_at_source = 0, deleted_at = NULL, deleted_run_id = NULL"
)
_UPDATE_CHANGED = f"UPDATE items SET latest_version_id = ?, version_count = ?, {_TOUCH} WHERE id = ?"
_UPDATE_SEEN = f"UPDATE items SET {_TOUCH} WHERE id = ?"

# Guard: the tuple builders below list the columns in table order.
assert _ITEM_COLUMNS == [
    "id", "kind", "source_id", "container", "latest_version_id", "version_count", "deleted_at_source",
    "deleted_at", "deleted_run_id", "first_seen_at", "last_seen_at", "last_seen_run_id",
]  # fmt: skip
assert _VERSION_COLUMNS == [
    "id", "item_id", "seq", "content_hash", "version_key", "captured_at", "size", "level", "attachments",
    "title", "owner_userid", "department", "source_created_at", "source_modified_at", "extra", "run_id",
]  # fmt: skip


def insert_items(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    _ts = _TimeText()
    conn.exec_driver_sql(
        _INSERT_ITEMS,
        [
            (
                r["id"], r["kind"], r["source_id"], r["container"], r["latest_version_id"], r["version_count"],
                1 if r["deleted_at_source"] else 0, _ts(r["deleted_at"]), r["deleted_run_id"],
                _ts(r["first_seen_at"]), _ts(r["last_seen_at"]), r["last_seen_run_id"],
            )
            for r in rows
        ],
    )  # fmt: skip


def insert_versions(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    _ts = _TimeText()
    conn.exec_driver_sql(
        _INSERT_VERSIONS,
        [
            (
                r["id"], r["item_id"], r["seq"], r["content_hash"], r["version_key"], _ts(r["captured_at"]),
                r["size"], r["level"], _json(r["attachments"]), r["title"], r["owner_userid"], r["department"],
                _ts(r["source_created_at"]), _ts(r["source_modified_at"]), _json(r["extra"]), r["run_id"],
            )
            for r in rows
        ],
    )  # fmt: skip


def update_items(
    conn: sa.Connection, changed: Sequence[dict[str, Any]], seen: Sequence[dict[str, Any]]
) -> None:
    """Stamp touched items; ``changed`` ones also get their new latest version (see Catalog._record_batch)."""
    _ts = _TimeText()
    if changed:
        conn.exec_driver_sql(
            _UPDATE_CHANGED,
            [
                (t["b_latest"], t["b_count"], _ts(t["b_seen"]), t["b_run"], t["b_container"], t["b_id"])
                for t in changed
            ],
        )
    if seen:
        conn.exec_driver_sql(
            _UPDATE_SEEN, [(_ts(t["b_seen"]), t["b_run"], t["b_container"], t["b_id"]) for t in seen]
        )
