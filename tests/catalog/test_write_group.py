"""WriteGroup: a backup's group commit applied as one catalog transaction, retried as a whole."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from dingvault.catalog import Catalog, CatalogInputError, CatalogStateError, RunErrorRecord, VersionRecord


def _seed(catalog: Catalog, run: int) -> None:
    catalog.record_versions(
        [VersionRecord("file", f"s1/{i}", f"h{i}", run_id=run, container="s1") for i in range(4)]
        + [VersionRecord("file", f"s2/{i}", f"h{i}", run_id=run, container="s2") for i in range(3)]
        + [VersionRecord("user", f"u{i}", f"h{i}", run_id=run) for i in range(3)]
    )


def _group_of_a_full_run(catalog: Catalog, run: int) -> Any:
    group = catalog.group()
    group.record_versions(
        [
            VersionRecord("file", "s1/0", "h0", run_id=run, container="s1"),  # unchanged
            VersionRecord("file", "s1/1", "h1-new", run_id=run, container="s1"),  # changed
            VersionRecord("file", "s1/9", "h9", run_id=run, container="s1"),  # new
        ]
    )
    group.mark_seen("file", ["s2/0", "s2/1", "s2/2"], run)
    group.mark_deleted("user", ["u2"], run)
    group.mark_unseen_deleted("file", run, ["s1", "s2"])  # s1/2 and s1/3 are gone
    group.set_cursor("files", "", {"page": 7}, run)
    group.record_run_errors(run, [RunErrorRecord("Timeout", "page 3 failed", kind="file")])
    return group


def test_group_applies_everything_and_reports_per_kind(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed(catalog, first)
    second = catalog.start_run("full")
    result = catalog.write_group(_group_of_a_full_run(catalog, second))
    assert result.outcomes == ["unchanged", "changed", "new"]
    assert result.seen == 3
    assert result.deleted == {"user": 1, "file": 2}
    assert sorted(catalog.live_ids("file")) == ["s1/0", "s1/1", "s1/9", "s2/0", "s2/1", "s2/2"]
    assert list(catalog.live_ids("user")) == ["u0", "u1"]
    assert catalog.get_cursor("files") == {"page": 7}
    assert [e.message for e in catalog.run_errors(second)] == ["page 3 failed"]
    assert [v.content_hash for v in catalog.item_versions("file", "s1/1")] == ["h1", "h1-new"]


def test_a_failing_group_writes_nothing_not_even_its_cursor(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed(catalog, first)
    second = catalog.start_run("full")
    group = _group_of_a_full_run(catalog, second)
    group.record_run_errors(10_000, [RunErrorRecord("X", "for a run that does not exist")])
    with pytest.raises(CatalogStateError):
        catalog.write_group(group)
    assert catalog.get_cursor("files") is None
    assert catalog.get_item("file", "s1/9") is None
    assert [v.content_hash for v in catalog.item_versions("file", "s1/1")] == ["h1"]
    assert sorted(catalog.live_ids("file")) == [f"s1/{i}" for i in range(4)] + [f"s2/{i}" for i in range(3)]
    assert catalog.run_errors(second) == []


def test_a_busy_catalog_retries_the_whole_group(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    first = catalog.start_run("full")
    _seed(catalog, first)
    second = catalog.start_run("full")
    real = catalog._set_cursor
    attempts: list[int] = []

    def busy_once(conn: sa.Connection, values: dict[str, Any]) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            # After the versions and marks of this attempt were written: they must roll back.
            raise sa.exc.OperationalError("UPDATE cursors", {}, Exception("database is locked"))
        real(conn, values)

    monkeypatch.setattr(catalog, "_set_cursor", busy_once)
    result = catalog.write_group(_group_of_a_full_run(catalog, second))
    assert len(attempts) == 2
    # The retry saw the catalog as it was before the group: the same outcomes, one version each.
    assert result.outcomes == ["unchanged", "changed", "new"]
    assert result.deleted == {"user": 1, "file": 2}
    assert [v.seq for v in catalog.item_versions("file", "s1/9")] == [1]
    assert [v.seq for v in catalog.item_versions("file", "s1/1")] == [1, 2]
    assert len(catalog.run_errors(second)) == 1
    assert catalog.get_cursor("files") == {"page": 7}


def test_bad_input_is_refused_when_added_and_the_group_stays_usable(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    group = catalog.group()
    group.add_version(VersionRecord("file", "a", "h", run_id=run))
    with pytest.raises(CatalogInputError):
        group.add_version(VersionRecord("file", "x" * 600, "h", run_id=run))
    with pytest.raises(CatalogInputError):
        group.set_cursor("files", "", {"bad": object()}, run)
    with pytest.raises(CatalogInputError):
        group.mark_unseen_deleted("file", run, [""])
    group.add_version(VersionRecord("file", "b", "h", run_id=run))
    assert catalog.write_group(group).outcomes == ["new", "new"]
    assert catalog.get_cursor("files") is None


def test_the_same_item_twice_in_a_group(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._GROUP_BATCH", 2)  # across statement batches too
    run = catalog.start_run("full")
    group = catalog.group()
    group.record_versions(
        [
            VersionRecord("file", "a", "h1", run_id=run),
            VersionRecord("file", "b", "h1", run_id=run),
            VersionRecord("file", "a", "h2", run_id=run),
        ]
    )
    group.mark_seen("file", ["b"], run)
    group.add_version(VersionRecord("file", "a", "h2", run_id=run))  # after a mark: a new batch
    assert catalog.write_group(group).outcomes == ["new", "new", "changed", "unchanged"]
    assert [v.content_hash for v in catalog.item_versions("file", "a")] == ["h1", "h2"]


def test_an_empty_group_touches_nothing(catalog: Catalog) -> None:
    group = catalog.group()
    group.mark_unseen_deleted("file", 1, [])
    group.record_run_errors(1, [])
    assert not group
    result = catalog.write_group(group)
    assert (result.outcomes, result.seen, result.deleted) == ([], 0, {})
