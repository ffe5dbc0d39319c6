"""Holds: vault snapshots that prune must keep, recorded in the catalog.

A hold names snapshots (vault snapshot ids), why (``label``: "offboarding", "legal"...), whom or
what it is about (``subject``: "user/<userid>"...), until when (``until``; None: until released)
and a free-form ``summary`` (the offboarding hand-over summary). Holds live in the catalog so that
they travel with the catalog export in the vault: a machine that is lost and rebuilt from the
vault still knows what it must not prune. Releasing a hold stamps ``released_at`` and keeps the
row, as the record of what was held and for how long.

Usage::

    holds = CatalogHolds(catalog)
    hold_id = holds.add("offboarding", "user/u1", until, ["<snapshot id>"], {"userid": "u1"})
    holds.active()            # holds in force now (not released, not expired)
    holds.release(hold_id)    # True when it was still unreleased
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dingvault.catalog.errors import CatalogInputError
from dingvault.catalog.schema import holds as holds_table

if TYPE_CHECKING:
    from dingvault.catalog.catalog import Catalog


@dataclass(frozen=True)
class HoldInfo:
    id: int
    label: str
    subject: str
    created_at: datetime
    until: datetime | None
    snapshot_ids: tuple[str, ...]
    summary: dict[str, Any]
    released_at: datetime | None

    def active_at(self, when: datetime) -> bool:
        """In force at ``when``: not released by then and not expired."""
        if self.released_at is not None and self.released_at <= when:
            return False
        return self.until is None or self.until > when


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise CatalogInputError(f"{what} must be an aware datetime, not {value!r}")
    return value.astimezone(UTC)


def _info(row: Mapping[str, Any]) -> HoldInfo:
    return HoldInfo(
        id=int(row["id"]),
        label=row["label"],
        subject=row["subject"],
        created_at=row["created_at"],
        until=row["until"],
        snapshot_ids=tuple(row["snapshot_ids"] or ()),
        summary=dict(row["summary"] or {}),
        released_at=row["released_at"],
    )


class CatalogHolds:
    """The holds of one catalog. Thread-safe, like the ``Catalog`` it uses."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def add(
        self,
        label: str,
        subject: str,
        until: datetime | None,
        snapshot_ids: Iterable[str],
        summary: Mapping[str, Any] | None = None,
        *,
        created_at: datetime | None = None,
    ) -> int:
        """Record a hold; returns its id."""
        if not label or not subject:
            raise CatalogInputError("a hold needs a label and a subject")
        ids = sorted({str(s) for s in snapshot_ids})
        if not all(ids):
            raise CatalogInputError(f"hold {label}/{subject} names an empty snapshot id")
        row = {
            "label": label,
            "subject": subject,
            "created_at": _aware(created_at, "created_at") or datetime.now(UTC),
            "until": _aware(until, "until"),
            "snapshot_ids": ids,
            "summary": dict(summary or {}),
            "released_at": None,
        }
        stmt = sa.insert(holds_table).values(**row).returning(holds_table.c.id)
        # The catalog's own write transaction (retries on a busy database); same package.
        return int(self.catalog._write(lambda conn: conn.execute(stmt).scalar_one()))

    def get(self, hold_id: int) -> HoldInfo | None:
        stmt = sa.select(holds_table).where(holds_table.c.id == hold_id)
        row = self.catalog._read(lambda conn: conn.execute(stmt).mappings().first())
        return _info(row) if row else None

    def list_holds(self, *, subject: str | None = None, label: str | None = None) -> list[HoldInfo]:
        """Every hold, released and expired ones included, oldest first."""
        stmt = sa.select(holds_table).order_by(holds_table.c.id)
        if subject is not None:
            stmt = stmt.where(holds_table.c.subject == subject)
        if label is not None:
            stmt = stmt.where(holds_table.c.label == label)
        rows = self.catalog._read(lambda conn: conn.execute(stmt).mappings().all())
        return [_info(r) for r in rows]

    def active(self, at: datetime | None = None) -> list[HoldInfo]:
        """The holds in force at ``at`` (default: now): not released, not expired."""
        when = _aware(at, "at") or datetime.now(UTC)
        t = holds_table
        stmt = (
            sa.select(t)
            .where(t.c.released_at.is_(None), sa.or_(t.c.until.is_(None), t.c.until > when))
            .order_by(t.c.id)
        )
        rows = self.catalog._read(lambda conn: conn.execute(stmt).mappings().all())
        return [_info(r) for r in rows]

    def held_snapshot_ids(self, at: datetime | None = None) -> set[str]:
        return {s for h in self.active(at) for s in h.snapshot_ids}

    def release(self, hold_id: int, at: datetime | None = None) -> bool:
        """Release a hold; False when there is no such hold or it was released already."""
        when = _aware(at, "at") or datetime.now(UTC)
        stmt = (
            sa.update(holds_table)
            .where(holds_table.c.id == hold_id, holds_table.c.released_at.is_(None))
            .values(released_at=when)
        )
        return bool(self.catalog._write(lambda conn: conn.execute(stmt).rowcount) == 1)

    def find(self, label: str, subject: str, created_at: datetime) -> HoldInfo | None:
        """The hold recorded with exactly these label, subject and creation time (for idempotent imports)."""
        created = _aware(created_at, "created_at")
        t = holds_table
        stmt = (
            sa.select(t)
            .where(t.c.label == label, t.c.subject == subject, t.c.created_at == created)
            .order_by(t.c.id)
        )
        row = self.catalog._read(lambda conn: conn.execute(stmt).mappings().first())
        return _info(row) if row else None
