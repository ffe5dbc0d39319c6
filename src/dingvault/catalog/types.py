"""Column types that behave the same on SQLite and PostgreSQL.

Why custom types: SQLite has no timezone-aware timestamp and SQLAlchemy hands back naive datetimes
from it, while PostgreSQL's ``timestamptz`` hands back aware ones. The catalog compares and exports
values across both databases, so every timestamp is stored as UTC and always read back as an aware
UTC datetime. JSON is ``JSONB`` on PostgreSQL (indexable, compact) and text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime in, an aware UTC datetime out; naive datetimes are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (Macau local? UTC?); refusing it keeps history exact.
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite: one step straight to the text SQLAlchemy's DATETIME stores ("YYYY-MM-DD
        # HH:MM:SS.ffffff", UTC), instead of process_bind_param followed by DATETIME's own
        # Python-level formatting -- timestamps are most of the per-row cost of a batch insert.
        return sqlite_datetime_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | datetime | None) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, datetime):  # already converted (e.g. through a CAST)
                return self.process_result_value(value, dialect)
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_datetime_text(value: datetime | None) -> str | None:
    """An aware datetime as the UTC text SQLite stores; the same format SQLAlchemy's DATETIME uses."""
    if value is None:
        return None
    try:
        offset = value.utcoffset()
    except AttributeError:
        raise TypeError(f"expected a datetime, got {type(value).__name__}") from None
    if offset is None:
        raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime")
    if offset:
        value = value - offset
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def json_type() -> sa.types.TypeEngine[Any]:
    # none_as_null: a Python None is SQL NULL (not the JSON text 'null'), the same on both databases.
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def id_type() -> sa.types.TypeEngine[int]:
    # On SQLite only "INTEGER PRIMARY KEY" aliases the rowid (and so autoincrements); BIGINT would not.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
