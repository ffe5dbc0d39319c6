"""The backup engine's view of the catalog, end to end: two full runs and a crash in between."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable

from dingvault.catalog import Catalog, VersionRecord, export_catalog, rebuild_catalog

PAGES = {  # the source: one approval template, three pages of instances
    0: [("PI-1", "a1"), ("PI-2", "a2")],
    1: [("PI-3", "a3"), ("PI-4", "a4")],
    2: [("PI-5", "a5")],
}


def backup_pages(
    catalog: Catalog, run: int, pages: dict[int, list[tuple[str, str]]], *, die_after: int | None = None
) -> None:
    state = catalog.get_cursor("approvals", "PROC-1") or {"page": 0}
    for page in range(state["page"], len(pages)):
        outcomes = catalog.record_versions(
            [VersionRecord("approval", pid, h, run_id=run, container="PROC-1") for pid, h in pages[page]]
        )
        catalog.add_run_stats(
            run, {"items": dict(Counter(outcomes)), "api_calls": {"/topapi/processinstance/get": 1}}
        )
        if die_after == page:
            return  # killed after recording the page, before saving the cursor
        catalog.set_cursor("approvals", "PROC-1", {"page": page + 1}, run)
    catalog.set_cursor("approvals", "PROC-1", {"page": 0}, run)  # listing complete: next run starts over


def test_two_full_runs_with_a_crash(catalog_url: str, new_url: Callable[[str], str]) -> None:
    with Catalog.open(catalog_url) as catalog:
        first = catalog.start_run("full", ["approvals"])
        backup_pages(catalog, first, PAGES, die_after=1)

    with Catalog.open(catalog_url) as catalog:  # the process restarts
        assert catalog.mark_interrupted_runs() == [first]
        resumed = catalog.start_run("full", ["approvals"])
        assert catalog.get_cursor("approvals", "PROC-1") == {"page": 1}
        backup_pages(catalog, resumed, PAGES)  # page 1 is replayed: no duplicates
        assert catalog.get_run(resumed).stats["items"] == {"unchanged": 2, "new": 1}  # type: ignore[union-attr]
        # The listing was completed by two runs: page 0 was seen only by the first one.
        assert sorted(catalog.unseen_ids("approval", resumed)) == ["PI-1", "PI-2"]
        assert catalog.mark_unseen_deleted("approval", resumed, "PROC-1", also_seen_by=[first]) == 0
        catalog.finish_run(resumed, "succeeded")
        assert catalog.counts_per_kind()["approval"].versions == 5

        # At the source PI-2 changes and PI-4 is deleted; the second full run sees the rest.
        pages = {0: [("PI-1", "a1"), ("PI-2", "a2-edited")], 1: [("PI-3", "a3")], 2: [("PI-5", "a5")]}
        second = catalog.start_run("full", ["approvals"])
        backup_pages(catalog, second, pages)
        assert catalog.mark_unseen_deleted("approval", second, container="PROC-1") == 1
        catalog.record_snapshot("snap-2", second, {"approval": len(list(catalog.live_ids("approval")))})
        info = catalog.finish_run(second, "succeeded")

        assert info.stats["items"] == {"unchanged": 3, "changed": 1}
        assert list(catalog.live_ids("approval")) == ["PI-1", "PI-2", "PI-3", "PI-5"]
        assert [v.content_hash for v in catalog.item_versions("approval", "PI-2")] == ["a2", "a2-edited"]
        assert catalog.get_item("approval", "PI-4").deleted_at_source  # type: ignore[union-attr]
        assert catalog.last_successful_run("full", "approvals").id == second  # type: ignore[union-attr]
        assert catalog.get_snapshot("snap-2").counts == {"approval": 4}  # type: ignore[union-attr]

        # After the run the engine stores an export in the vault; the catalog can come back from it.
        buf = io.BytesIO()
        export_catalog(catalog, buf)
        counts = catalog.counts_per_kind()
    target = new_url("sqlite")
    rebuild_catalog(target, io.BytesIO(buf.getvalue()))
    with Catalog.open(target) as rebuilt:
        assert rebuilt.counts_per_kind() == counts
        assert rebuilt.get_cursor("approvals", "PROC-1") == {"page": 0}
