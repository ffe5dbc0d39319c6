"""Snapshots: recorded once per vault snapshot id, listed newest first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dingvault.catalog import Catalog, CatalogInputError, CatalogStateError


def test_record_is_idempotent_and_listing_pages(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    first = catalog.record_snapshot("snap-a", run, {"approval": 10, "user": 5})
    assert catalog.record_snapshot("snap-a", run, {"approval": 10, "user": 5}) == first
    second = catalog.record_snapshot("snap-b", None, {}, created_at=datetime(2026, 2, 1, tzinfo=UTC))
    third = catalog.record_snapshot("snap-c", run, {"file": 1})
    assert [s.vault_snapshot_id for s in catalog.list_snapshots()] == ["snap-c", "snap-b", "snap-a"]
    assert [s.id for s in catalog.list_snapshots(limit=1, before_id=third)] == [second]
    info = catalog.get_snapshot("snap-a")
    assert info is not None
    assert (info.run_id, info.item_count, info.counts) == (run, 15, {"approval": 10, "user": 5})
    assert catalog.get_snapshot("snap-b").created_at == datetime(2026, 2, 1, tzinfo=UTC)  # type: ignore[union-attr]
    assert catalog.get_snapshot("nope") is None


@pytest.mark.parametrize("counts", [{"user": -1}, {"user": "3"}, ["user"], {"": 1}])
def test_bad_snapshot_counts(catalog: Catalog, counts: object) -> None:
    with pytest.raises(CatalogInputError):
        catalog.record_snapshot("snap", None, counts)  # type: ignore[arg-type]
    assert catalog.list_snapshots() == []


def test_snapshot_of_unknown_run(catalog: Catalog) -> None:
    with pytest.raises(CatalogStateError):
        catalog.record_snapshot("snap", 77, {})
