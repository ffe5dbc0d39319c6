"""Holds in the catalog: added, in force until they expire or are released, kept by export/rebuild."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dingvault.catalog import (
    Catalog,
    CatalogHolds,
    CatalogInputError,
    export_catalog,
    rebuild_catalog,
)
from dingvault.catalog.migrate import current_revision, upgrade

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def test_a_hold_is_in_force_until_it_expires(catalog: Catalog) -> None:
    holds = CatalogHolds(catalog)
    a = holds.add(
        "offboarding", "user/u1", T0 + timedelta(days=30), ["snapB", "snapA", "snapA"], {"userid": "u1"}
    )
    b = holds.add("offboarding", "user/u2", T0 + timedelta(days=60), ["snapC"], {"userid": "u2", "n": [1, 2]})
    assert a != b
    got = holds.get(a)
    assert got is not None
    assert (got.label, got.subject, got.snapshot_ids) == ("offboarding", "user/u1", ("snapA", "snapB"))
    assert got.until == T0 + timedelta(days=30) and got.released_at is None
    assert holds.get(b).summary == {"userid": "u2", "n": [1, 2]}  # type: ignore[union-attr]
    assert holds.held_snapshot_ids(T0) == {"snapA", "snapB", "snapC"}
    later = T0 + timedelta(days=45)
    assert [h.id for h in holds.active(later)] == [b]
    assert holds.held_snapshot_ids(later) == {"snapC"}
    assert holds.held_snapshot_ids(T0 + timedelta(days=61)) == set()
    # Expired holds are still listed: the record of what was held stays.
    assert [h.subject for h in holds.list_holds()] == ["user/u1", "user/u2"]
    assert [h.id for h in holds.list_holds(subject="user/u2")] == [b]


def test_release_ends_a_hold_once_and_keeps_its_record(catalog: Catalog) -> None:
    holds = CatalogHolds(catalog)
    forever = holds.add("legal", "case/7", None, ["snapL"])  # no end: held until released
    timed = holds.add("offboarding", "user/u1", T0 + timedelta(days=1), ["snapO"])
    assert holds.held_snapshot_ids(T0 + timedelta(days=3650)) == {"snapL"}
    assert holds.release(forever, at=T0) is True
    assert holds.release(forever, at=T0 + timedelta(hours=1)) is False  # already released
    assert holds.release(9999) is False
    released = holds.get(forever)
    assert released is not None and released.released_at == T0
    assert not released.active_at(T0) and released.active_at(T0 - timedelta(seconds=1))
    assert [h.id for h in holds.active(T0)] == [timed]
    assert len(holds.list_holds()) == 2


def test_bad_holds_are_refused(catalog: Catalog) -> None:
    holds = CatalogHolds(catalog)
    with pytest.raises(CatalogInputError):
        holds.add("offboarding", "user/u1", datetime(2027, 1, 1), ["s"])  # naive: ambiguous
    with pytest.raises(CatalogInputError, match="empty snapshot id"):
        holds.add("offboarding", "user/u1", None, ["s", ""])
    with pytest.raises(CatalogInputError):
        holds.add("", "user/u1", None, ["s"])
    assert holds.list_holds() == []


def test_find_matches_the_exact_creation_time(catalog: Catalog) -> None:
    holds = CatalogHolds(catalog)
    created = datetime.fromtimestamp(1_764_380_000.123456, UTC)
    hid = holds.add("offboarding", "user/u1", None, ["s"], created_at=created)
    found = holds.find("offboarding", "user/u1", created)
    assert found is not None and found.id == hid and found.created_at == created
    assert holds.find("offboarding", "user/u1", created + timedelta(microseconds=1)) is None
    assert holds.find("offboarding", "user/u2", created) is None


def test_holds_survive_export_and_rebuild(
    catalog: Catalog, dialect: str, new_url: Callable[[str], str]
) -> None:
    holds = CatalogHolds(catalog)
    kept = holds.add(
        "offboarding", "user/u1", T0 + timedelta(days=365), ["snapA"], {"userid": "u1", "名": "陳"}
    )
    gone = holds.add("offboarding", "user/u2", T0 + timedelta(days=365), ["snapB"])
    holds.release(gone, at=T0)
    buf = io.BytesIO()
    trailer = export_catalog(catalog, buf)
    assert trailer["rows"]["holds"] == 2
    target = new_url(dialect)
    rebuild_catalog(target, io.BytesIO(buf.getvalue()))
    with Catalog.open(target) as rebuilt:
        again = CatalogHolds(rebuilt)
        assert again.list_holds() == holds.list_holds()
        assert [h.id for h in again.active(T0 + timedelta(days=1))] == [kept]
        # The id sequence continues after the loaded rows: a new hold never reuses an id.
        assert again.add("offboarding", "user/u3", None, ["snapC"]) > gone


def test_the_holds_migration_upgrades_a_0001_catalog_in_place(catalog_url: str) -> None:
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        upgrade(conn, "0001")
        assert "holds" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    with Catalog.open(catalog_url) as catalog, catalog.engine.connect() as conn:
        assert current_revision(conn) == "0002"
        assert "holds" in sa.inspect(conn).get_table_names()
        assert CatalogHolds(catalog).add("offboarding", "user/u1", None, ["s"]) >= 1
