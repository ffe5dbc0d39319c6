"""Deletion detection on full runs: mark_seen / mark_unseen_deleted / mark_deleted / live_ids."""

from __future__ import annotations

import pytest

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
