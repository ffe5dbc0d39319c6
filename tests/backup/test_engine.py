"""The engine's run loop against an in-memory store and scripted collectors."""

from __future__ import annotations

import asyncio
import time

import pytest

from dingvault.backup.engine import BackupEngine, BackupError
from dingvault.backup.payload import decode_version
from dingvault.backup.scope import Scope
from dingvault.source.errors import QuotaExhausted
from dingvault.source.items import Batch, CompleteListing, CursorUpdate

from .fakes import MemoryStore, ScriptedCollector, att, make_item


def run(engine: BackupEngine, mode: str = "full"):
    return asyncio.run(engine.run(mode))


def approvals(version: str = "1", n: int = 5, **kw) -> ScriptedCollector:
    pages = [
        [make_item("approval", f"a{p}{i}", version, attachments=[att(f"f{p}{i}")]) for i in range(n)]
        for p in range(3)
    ]
    contents = {f"f{p}{i}": f"合同 {p}{i} ".encode() * 20 for p in range(3) for i in range(n)}
    return ScriptedCollector("approvals", "approvals", pages, contents=contents, **kw)


def test_full_run_stores_every_item_and_attachment_bytes():
    store = MemoryStore()
    coll = approvals()
    stats = run(BackupEngine(store, [coll], commit_items=4))
    assert stats.totals()["new"] == 15 and stats.status == "ok"
    assert len(store.snapshots[-1]) == 15
    for (kind, sid), row in store.items.items():
        doc = decode_version(store.blobs[row["hash"]])
        assert doc["kind"] == kind and doc["source_id"] == sid and doc["raw"]["detail"]["id"] == sid
        (blob,) = doc["attachments"][0]["blobs"]
        assert store.blobs[blob] == coll.contents["f" + sid[1:]]
    assert store.cursors[("approvals", "")] == {"page": 3}


def test_unchanged_items_are_not_downloaded_again_and_changes_are_exact():
    store = MemoryStore()
    run(BackupEngine(store, [approvals()]))
    store.cursors.clear()  # a full re-list
    again = approvals()
    stats = run(BackupEngine(store, [again]))
    assert sum(again.downloads.values()) == 0
    assert stats.totals() == {"new": 0, "changed": 0, "unchanged": 15, "deleted": 0, "failed": 0}
    # a new version of every item whose attachment did not change: stored, attachment reused
    store.cursors.clear()
    changed = approvals(version="2")
    stats = run(BackupEngine(store, [changed]))
    assert stats.totals()["changed"] == 15 and sum(changed.downloads.values()) == 0
    assert stats.attachments_reused == 15
    assert len(store.versions) == 30


def test_item_failure_is_recorded_cursor_held_and_no_deletion_inferred():
    store = MemoryStore()
    run(BackupEngine(store, [approvals()]))
    store.cursors.clear()
    flaky = approvals(version="2", fail_refs={"f11"}, complete=[CompleteListing("approval", "c1")])
    flaky.contents = {k: v + b"new" for k, v in flaky.contents.items()}  # new attachment content...
    for page in flaky.pages:  # ...announced with a new size, so they must be downloaded again
        for item in page:
            item.attachments[0].size = 999
    stats = run(BackupEngine(store, [flaky]))
    assert stats.failed["approval"] == 1
    assert [f.source_id for f in stats.item_failures] == ["a11"]
    assert store.errors and store.errors[0].error == "ConnectionError"
    assert stats.status == "partial"
    # the cursor stays after the last fully stored page (page 0): the failed page and every later
    # one of that stream are listed again by the next run
    assert store.cursors[("approvals", "")] == {"page": 1}
    # the failed item is neither lost nor marked deleted; its old version is still current
    assert not store.items[("approval", "a11")]["deleted"]
    assert stats.totals()["deleted"] == 0


def test_full_run_marks_unlisted_items_deleted_never_removes_them():
    store = MemoryStore()
    run(BackupEngine(store, [approvals()]))
    store.cursors.clear()
    fewer = approvals(complete=[CompleteListing("approval", "c1")])
    fewer.pages[1] = fewer.pages[1][:2]  # 3 items gone at the source
    stats = run(BackupEngine(store, [fewer]))
    assert stats.deleted["approval"] == 3
    assert len(store.snapshots[-1]) == 12
    gone = [k for k, r in store.items.items() if r["deleted"]]
    assert sorted(s for _, s in gone) == ["a12", "a13", "a14"]
    assert all(store.items[k]["hash"] in store.blobs for k in gone)  # still in the vault


def test_reported_deletions_are_marked():
    store = MemoryStore()
    run(BackupEngine(store, [approvals()]))
    store.cursors.clear()
    stats = run(
        BackupEngine(
            store,
            [approvals(deleted=["a00", "zz-unknown"])],
        ),
        "incremental",
    )
    assert stats.deleted["approval"] == 1 and store.items[("approval", "a00")]["deleted"]


def test_quota_stops_one_family_the_others_finish():
    store = MemoryStore()
    quota = QuotaExhausted("monthly quota spent", code="90020", endpoint="/topapi/report/list")
    reports = ScriptedCollector("reports", "reports", [[make_item("report", "r1", "1")]], raise_after=quota)
    stats = run(BackupEngine(store, [approvals(), reports]))
    assert stats.totals()["new"] == 16
    (failure,) = stats.family_failures
    assert failure.family == "reports" and failure.error == "QuotaExhausted" and "90020" in failure.message
    assert stats.status == "partial"
    assert store.runs[1] is stats


def test_storage_failure_stops_the_run_with_a_clear_error_and_commits_nothing_unsafe():
    store = MemoryStore()
    store.fail_put_after = 7
    with pytest.raises(BackupError, match="No space left"):
        run(BackupEngine(store, [approvals()], commit_items=2))
    assert store.runs[1] is not None and store.runs[1].family_failures
    for row in store.items.values():  # everything committed is durable (asserted in commit too)
        assert row["hash"] in store.blobs


def test_rerun_after_a_crash_resumes_from_the_cursor_without_duplicates():
    store = MemoryStore()
    store.fail_put_after = 14  # dies during the 2nd page (items and attachments are 2 puts each)
    with pytest.raises(BackupError):
        run(BackupEngine(store, [approvals()], commit_items=1, commit_seconds=0.0))
    committed = store.cursors.get(("approvals", ""), {}).get("page", 0)
    assert committed >= 1
    store.fail_put_after = None
    coll = approvals()
    stats = run(BackupEngine(store, [coll]), "incremental")
    assert not coll.downloads.keys() & {f"f0{i}" for i in range(5)}, (
        "pages before the cursor are not fetched again"
    )
    assert len(store.snapshots[-1]) == 15
    assert len(store.versions) == len({(k, s) for k, s, _ in store.versions}) == 15
    assert stats.status == "ok"


def test_scope_follows_the_tree_of_this_run_and_kinds_filter():
    store = MemoryStore()
    contacts = ScriptedCollector(
        "contacts",
        "contacts",
        [
            [
                make_item("department", "10", "1"),
                make_item("department", "11", "1"),
                make_item("department", "20", "1"),
            ]
        ],
    )
    contacts.pages[0][1].fields["parent_id"] = "10"
    contacts.pages[0][2].fields["parent_id"] = "1"
    for uid, dept in (("u1", "11"), ("u2", "20")):
        user = make_item("user", uid, "1")
        user.raw["detail"]["dept_id_list"] = [int(dept)]
        contacts.pages[0].append(user)

    class TodoCollector(ScriptedCollector):
        async def collect(self, *, mode, cursors, scope):
            # a collector asks the scope while listing: the tree must already be known
            self.included = sorted(u for u in ("u1", "u2") if scope.includes_user(u))
            async for b in super().collect(mode=mode, cursors=cursors, scope=scope):
                yield b

    todos = TodoCollector("todo", "todo", [[make_item("todo", "t1", "1")]])
    scope = Scope.from_config({"departments": [{"id": 10, "subtree": True}], "kinds": ["user", "todo"]})
    stats = run(BackupEngine(store, [todos, contacts], scope))
    assert todos.included == ["u1"]
    assert {k for k, _ in store.items} == {"user", "todo"}  # departments learned but not stored
    assert stats.new["user"] == 1 and ("user", "u1") in store.items  # u2 is outside the subtree


def test_a_cancelled_run_stops_cleanly_and_the_next_one_resumes():
    store = MemoryStore()

    class Slow(ScriptedCollector):
        async def collect(self, *, mode, cursors, scope):
            async for b in super().collect(mode=mode, cursors=cursors, scope=scope):
                yield b
                await asyncio.sleep(0.2)

    async def cancel_midway():
        task = asyncio.ensure_future(
            BackupEngine(
                store,
                [Slow("approvals", "approvals", approvals().pages, contents=approvals().contents)],
                commit_seconds=0.05,
            ).run("full")
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert store.runs[1] is not None  # the run was closed, not left open
    stats = run(BackupEngine(store, [approvals()]), "incremental")
    assert stats.status == "ok" and len(store.snapshots[-1]) == 15
    assert len(store.versions) == 15


def test_big_pages_are_cut_and_a_failure_in_any_chunk_holds_the_page_cursor():
    store = MemoryStore()
    pages = [
        [make_item("approval", f"a{p}-{i}", "1", attachments=[att(f"f{p}-{i}")]) for i in range(50)]
        for p in range(2)
    ]
    contents = {f"f{p}-{i}": b"x%d" % i for p in range(2) for i in range(50)}
    coll = ScriptedCollector("approvals", "approvals", pages, contents=contents, fail_refs={"f1-3"})
    stats = run(BackupEngine(store, [coll], max_batch_items=7))
    assert stats.new["approval"] == 99 and stats.failed["approval"] == 1
    # page 0 fully stored → its cursor committed; page 1 had a failure in its first chunk → held
    assert store.cursors[("approvals", "")] == {"page": 1}


def test_a_failure_on_a_page_without_cursor_holds_the_cursor_that_follows():
    """Collectors may send a container's cursor with its last page only: a failed item on an
    earlier page must keep that cursor from advancing past it."""
    store = MemoryStore()
    pages = [
        [make_item("file", f"d{p}-{i}", "1", attachments=[att(f"c{p}-{i}")]) for i in range(4)]
        for p in range(3)
    ]
    contents = {f"c{p}-{i}": b"content %d" % i for p in range(3) for i in range(4)}

    class LastPageCursor(ScriptedCollector):
        async def collect(self, *, mode, cursors, scope):
            for n, page in enumerate(self.pages):
                last = n == len(self.pages) - 1
                cursor = CursorUpdate(self.name, "space-1", {"until": 100}) if last else None
                yield Batch(items=page, cursor=cursor)

    ok = LastPageCursor("files", "files", pages, contents=contents)
    run(BackupEngine(store, [ok]))
    assert store.cursors[("files", "space-1")] == {"until": 100}

    store2 = MemoryStore()
    flaky = LastPageCursor("files", "files", pages, contents=contents, fail_refs={"c0-2"})
    stats = run(BackupEngine(store2, [flaky]))
    assert stats.failed["file"] == 1 and stats.new["file"] == 11
    assert ("files", "space-1") not in store2.cursors


def _family(name: str, pages: int, per_page: int) -> ScriptedCollector:
    items = [[make_item("approval", f"{name}-{p}-{i}", "1") for i in range(per_page)] for p in range(pages)]
    return ScriptedCollector(name, name, items)


def test_records_in_flight_are_bounded_across_families():
    # Four families whose pages are ready at once: without a shared budget each would prepare
    # up to `prefetch` + 2 pages ahead, 4 x 6 x 5 = 120 records held before the writer.
    store = MemoryStore()
    engine = BackupEngine(store, [_family(f"fam{k}", 10, 5) for k in range(4)], max_items_in_flight=12)
    stats = run(engine)
    assert stats.totals()["new"] == 200 and stats.status == "ok"
    assert 5 <= engine._in_flight.peak <= 12
    assert engine._in_flight.used == 0  # everything taken was given back


def test_a_page_larger_than_the_budget_still_goes_through():
    store = MemoryStore()
    engine = BackupEngine(store, [_family("big", 3, 5), _family("other", 3, 5)], max_items_in_flight=3)
    stats = run(engine)
    assert stats.totals()["new"] == 30 and engine._in_flight.used == 0


class _FailingReads(MemoryStore):
    """Change detection fails for one family's records (a catalog read error)."""

    def known(self, kind, source_ids):
        if any(s.startswith("bad-") for s in source_ids):
            raise OSError("disk I/O error")
        return super().known(kind, source_ids)


def _full_run_within(engine: BackupEngine, seconds: float):
    """A full run that fails the test, rather than hanging, if it stalls."""

    async def bounded():
        return await asyncio.wait_for(engine.run("full"), seconds)

    return asyncio.run(bounded())


def test_a_family_stopped_by_a_failed_read_gives_its_budget_back():
    store = _FailingReads()
    engine = BackupEngine(store, [_family("bad", 6, 5), _family("good", 6, 5)], max_items_in_flight=10)

    # A budget never given back would leave "good" waiting for ever.
    stats = _full_run_within(engine, 60)
    assert stats.totals()["new"] == 30
    (failure,) = stats.family_failures
    assert failure.family == "bad" and "disk I/O error" in failure.message
    assert engine._in_flight.used == 0


class _SlowWriterStore(MemoryStore):
    """Stores each attachment slowly, so downloads pile up waiting for the writer."""

    def put_attachment(self, stream, level, size=None):
        time.sleep(0.03)
        return super().put_attachment(stream, level, size)


class _BigChunks(ScriptedCollector):
    chunk_size = 64 << 10


_BIG = 300 << 10  # over the in-memory limit per file: spooled to disk


def _big_files(name: str, pages: int, per_page: int, fail_refs=()) -> _BigChunks:
    contents = {}
    items = []
    for p in range(pages):
        page = []
        for i in range(per_page):
            ident = f"{name}-{p}-{i}"
            contents[ident] = ident.encode() * (_BIG // len(ident)) + b"x" * (_BIG % len(ident))
            page.append(make_item("file", ident, "1", attachments=[att(ident, "a.docx", size=_BIG)]))
        items.append(page)
    return _BigChunks(name, name, items, contents=contents, fail_refs=fail_refs)


def _disk_peak(limit: int) -> tuple[int, int]:
    store = _SlowWriterStore()
    engine = BackupEngine(store, [_big_files("files", 8, 3)], max_spool_on_disk=limit)
    stats = _full_run_within(engine, 60)
    assert stats.totals()["new"] == 24 and stats.status == "ok"
    assert stats.attachments_downloaded == 24
    assert engine._spool_budget.on_disk == 0  # every download on disk was closed and counted off
    return engine._spool_budget.peak_on_disk, len(store.blobs)


def test_downloads_waiting_on_disk_stay_within_their_budget():
    page = 3 * _BIG
    # Unbounded, the pages prepared ahead of a slow writer all wait on disk at once.
    unbounded, blobs = _disk_peak(1 << 40)
    assert unbounded > 3 * page
    # With a budget of one page, at most that plus the page the writer needs next (which never
    # waits, or the run could stall behind room held by later pages).
    bounded, blobs_bounded = _disk_peak(page)
    assert bounded <= 2 * page
    assert blobs_bounded == blobs  # the same content stored


def test_a_page_larger_than_the_disk_budget_still_goes_through():
    # Two families, each page three times the budget, one download failing for good: nothing waits
    # for ever, and a failed download gives its room back.
    store = _SlowWriterStore()
    families = [_big_files("a", 3, 3, fail_refs={"a-1-1"}), _big_files("b", 3, 3)]
    engine = BackupEngine(store, families, max_spool_on_disk=_BIG)
    stats = _full_run_within(engine, 60)
    assert stats.totals()["new"] == 17 and stats.failed["file"] == 1
    assert engine._spool_budget.on_disk == 0


class _SlowStore(MemoryStore):
    """Every version takes a while to store: the storage side sets the pace."""

    def put_version(self, payload, level):
        time.sleep(0.002)
        return super().put_version(payload, level)


class _SlowPages(ScriptedCollector):
    """Pages come slowly (an API at its rate limit): the storage side waits for them."""

    async def collect(self, **kw):
        async for batch in super().collect(**kw):
            await asyncio.sleep(0.05)
            yield batch


def test_a_storage_bound_run_says_so_and_how_many_records_it_held():
    engine = BackupEngine(
        _SlowStore(), [_family(f"fam{k}", 10, 20) for k in range(3)], max_items_in_flight=60
    )
    stats = run(engine)
    assert stats.totals()["new"] == 600
    pipeline = stats.to_dict()["pipeline"]
    assert pipeline["storage_idle_share"] < 0.1 and pipeline["fetch_wait_share"] >= 0.5, pipeline
    assert pipeline["in_flight_limit"] == 60 and 40 <= pipeline["in_flight_peak"] <= 60
    assert 20 <= pipeline["in_flight_mean"] <= 60


def test_a_run_paced_by_the_api_shows_an_idle_storage_side():
    pages = [[make_item("approval", f"s-{p}-{i}", "1") for i in range(5)] for p in range(10)]
    engine = BackupEngine(MemoryStore(), [_SlowPages("slow", "slow", pages)], max_items_in_flight=60)
    stats = run(engine)
    assert stats.totals()["new"] == 50
    pipeline = stats.to_dict()["pipeline"]
    assert pipeline["storage_idle_share"] >= 0.5 and pipeline["fetch_wait_seconds"] == 0, pipeline
    # Waiting for pages is not work: the processor was mostly idle (DingTalk's answers set the pace).
    assert pipeline["cpu_seconds"] > 0 and pipeline["cpu_cores"] < 0.5, pipeline
    assert pipeline["storage_idle_seconds"] >= 0.25  # most of the ten 50-ms waits for a page
    assert pipeline["in_flight_peak"] <= 10 and pipeline["in_flight_mean"] < 5


class _SlowCommits(MemoryStore):
    """Each catalog commit takes a while (a remote PostgreSQL, a slow disk's fsync)."""

    def commit(self, run_id, commit):
        time.sleep(0.05)
        return super().commit(run_id, commit)


def test_time_spent_waiting_for_catalog_commits_is_reported():
    engine = BackupEngine(_SlowCommits(), [_family("fam", 20, 10)], commit_items=10, commit_seconds=0)
    stats = run(engine)
    assert stats.totals()["new"] == 200
    pipeline = stats.to_dict()["pipeline"]
    # About 20 commits of 50 ms each, one at a time: the writer waits for most of them.
    assert pipeline["commit_wait_seconds"] >= 0.4, pipeline
    assert pipeline["commit_wait_share"] >= 0.4 and pipeline["storage_idle_share"] < 0.1
