"""Deletion detection on full runs: mark_seen / mark_unseen_deleted / mark_deleted / live_ids."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dingvault.catalog import Catalog, CatalogInputError, VersionRecord


def _seed(catalog: Catalog, run: int) -> None:
    catalog.record_versions(
        [VersionRecord("file", f"s1/{i}", f"h{i}", run_id=run, container="s1") for i in range(6)]
        + [VersionRecord("file", f"s2/{i}", f"h{i}", run_id=run, container="s2") for i in range(4)]
        + [VersionRecord("user", f"u{i}", f"h{i}", run_id=run) for i in range(3)]
    )


def test_full_run_marks_only_unseen_items_of_the_listed_container(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed(catalog, first)
    catalog.finish_run(first, "succeeded")

    second = catalog.start_run("full")
    # s1 listed completely: items 0-3 still there (1 changed, the rest only listed), 4 and 5 gone.
    catalog.record_versions([VersionRecord("file", "s1/1", "h1-new", run_id=second, container="s1")])
    assert catalog.mark_seen("file", ["s1/0", "s1/2", "s1/3", "never-recorded"], second) == 3
    assert sorted(catalog.unseen_ids("file", second, container="s1")) == ["s1/4", "s1/5"]
    assert catalog.mark_unseen_deleted("file", second, container="s1") == 2
    # s2's listing failed in this run: nothing there may be marked.
    assert sorted(catalog.live_ids("file", container="s2")) == [f"s2/{i}" for i in range(4)]
    assert list(catalog.live_ids("file", container="s1")) == ["s1/0", "s1/1", "s1/2", "s1/3"]

    gone = catalog.get_item("file", "s1/4")
    assert gone is not None
    assert gone.deleted_at_source and gone.deleted_at is not None and gone.deleted_run_id == second
    # Deleted at source never means deleted from the backup: the version is still there.
    assert [v.content_hash for v in catalog.item_versions("file", "s1/4")] == ["h4"]
    counts = catalog.counts_per_kind()
    assert (counts["file"].live, counts["file"].deleted, counts["file"].versions) == (8, 2, 11)
    assert (counts["user"].live, counts["user"].deleted) == (3, 0)
    # A second call finds nothing new to mark.
    assert catalog.mark_unseen_deleted("file", second, container="s1") == 0


def test_mark_deleted_by_id_and_reappearance(catalog: Catalog) -> None:
    run = catalog.start_run("incremental")
    _seed(catalog, run)
    assert catalog.mark_deleted("user", ["u0", "u1", "nope"], run) == 2
    assert catalog.mark_deleted("user", ["u0"], run) == 0  # already marked
    assert list(catalog.live_ids("user")) == ["u2"]
    # u0 comes back with the same content (e.g. a restored file): live again, no new version.
    assert catalog.record_version("user", "u0", "h0", run_id=run) == "unchanged"
    # u1 is listed again without re-fetch: live again too.
    assert catalog.mark_seen("user", ["u1"], run) == 1
    assert list(catalog.live_ids("user")) == ["u0", "u1", "u2"]
    item = catalog.get_item("user", "u0")
    assert item is not None and not item.deleted_at_source and item.deleted_at is None


def test_whole_kind_deletion_detection_without_container(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed(catalog, first)
    second = catalog.start_run("full")
    catalog.mark_seen("user", ["u1"], second)
    assert catalog.mark_unseen_deleted("user", second) == 2
    assert list(catalog.live_ids("user")) == ["u1"]
    # Other kinds are untouched.
    assert len(list(catalog.live_ids("file"))) == 10


def test_live_ids_streams_in_pages(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._PAGE", 4)
    catalog.record_versions([VersionRecord("msg", f"m{i:03d}", "h") for i in range(11)])
    catalog.mark_deleted("msg", ["m005"], None)
    ids = list(catalog.live_ids("msg"))
    assert ids == [f"m{i:03d}" for i in range(11) if i != 5]
    assert list(catalog.live_ids("other")) == []


def test_deletion_inputs_are_checked(catalog: Catalog) -> None:
    with pytest.raises(CatalogInputError):
        catalog.mark_unseen_deleted("", 1)
    with pytest.raises(CatalogInputError):
        catalog.mark_unseen_deleted("file", None)  # type: ignore[arg-type]
    with pytest.raises(CatalogInputError):
        catalog.mark_deleted("file", ["x"], -3)


def _seed_containers(catalog: Catalog, run: int) -> None:
    """Three containers of files (c1: 4 items, c2: 3, c3: 2) and two container-less files."""
    sizes = {"c1": 4, "c2": 3, "c3": 2}
    catalog.record_versions(
        [
            VersionRecord("file", f"{c}/{i}", f"h{i}", run_id=run, container=c)
            for c, n in sizes.items()
            for i in range(n)
        ]
        + [VersionRecord("file", f"loose/{i}", f"h{i}", run_id=run) for i in range(2)]
    )


def test_batched_form_marks_what_one_call_per_container_marks(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dingvault.catalog.catalog._IN_CHUNK", 2)  # several IN chunks
    first = catalog.start_run("full")
    _seed_containers(catalog, first)
    second = catalog.start_run("full")
    # c1: one of four seen; c2: every item seen (nothing to mark); c3: none seen; c4 holds nothing.
    catalog.mark_seen("file", ["c1/0", "c2/0", "c2/1", "c2/2"], second)
    marked = catalog.mark_unseen_deleted_in("file", second, ["c3", "c1", "c2", "c4", "c1"])
    assert marked == 3 + 0 + 2
    assert sorted(catalog.live_ids("file")) == ["c1/0", "c2/0", "c2/1", "c2/2", "loose/0", "loose/1"]
    # Items outside the listed containers (and the container-less ones) are never touched.
    assert catalog.mark_unseen_deleted_in("file", second, ["c1", "c2", "c3"]) == 0
    assert catalog.mark_unseen_deleted_in("file", second, []) == 0
    gone = catalog.get_item("file", "c3/1")
    assert gone is not None and gone.deleted_at_source and gone.deleted_run_id == second


def test_batched_form_with_none_covers_the_whole_kind(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed_containers(catalog, first)
    second = catalog.start_run("full")
    catalog.mark_seen("file", ["c1/1", "loose/1"], second)
    # None among the containers: the whole kind was listed, containers or not.
    assert catalog.mark_unseen_deleted_in("file", second, ["c2", None]) == 11 - 2
    assert sorted(catalog.live_ids("file")) == ["c1/1", "loose/1"]


def test_batched_form_keeps_also_seen_by(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed_containers(catalog, first)
    interrupted = catalog.start_run("full")
    catalog.mark_seen("file", ["c1/0", "c1/1", "c2/0"], interrupted)
    resumed = catalog.start_run("full")
    catalog.mark_seen("file", ["c1/2"], resumed)
    marked = catalog.mark_unseen_deleted_in("file", resumed, ["c1", "c2"], also_seen_by=[interrupted])
    assert marked == 1 + 2  # c1/3; c2/1 and c2/2
    assert sorted(catalog.live_ids("file", container="c1")) == ["c1/0", "c1/1", "c1/2"]
    assert list(catalog.live_ids("file", container="c2")) == ["c2/0"]


def test_batched_form_is_one_statement_per_chunk(catalog: Catalog) -> None:
    first = catalog.start_run("full")
    _seed_containers(catalog, first)
    second = catalog.start_run("full")
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    sa.event.listen(catalog.engine, "before_cursor_execute", count)
    try:
        assert catalog.mark_unseen_deleted_in("file", second, [f"c{i}" for i in range(1, 300)]) == 9
    finally:
        sa.event.remove(catalog.engine, "before_cursor_execute", count)
    assert len(updates) == 1


def test_batched_form_inputs_are_checked(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    _seed_containers(catalog, run)
    with pytest.raises(CatalogInputError):
        catalog.mark_unseen_deleted_in("file", run, ["c1", ""])
    with pytest.raises(CatalogInputError):
        catalog.mark_unseen_deleted_in("file", run, ["c1", 3])  # type: ignore[list-item]
    with pytest.raises(CatalogInputError):
        catalog.mark_unseen_deleted_in("file", None, ["c1"])  # type: ignore[arg-type]
    # A refused call marks nothing, not even the valid containers before the bad one.
    assert len(list(catalog.live_ids("file"))) == 11
