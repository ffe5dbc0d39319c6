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

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def id_type() -> sa.types.TypeEngine[int]:
    # On SQLite only "INTEGER PRIMARY KEY" aliases the rowid (and so autoincrements); BIGINT would not.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
