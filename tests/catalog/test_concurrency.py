"""Two writers at once (the event listener and the scheduler): no duplicates, no lost updates."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from dingvault.catalog import Catalog, CatalogBusyError, VersionRecord
from dingvault.catalog.schema import versions

N_ITEMS = 200


def _run_together(*workers: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * len(workers)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def wrap(i: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    if errors:
        raise errors[0]
    return results


def _record_all(catalog: Catalog, content: str, reverse: bool) -> list[str]:
    ids = [f"i{n:04d}" for n in range(N_ITEMS)]
    if reverse:
        ids.reverse()
    return catalog.record_versions([VersionRecord("msg", i, f"{i}-{content}") for i in ids], batch_size=20)


def test_concurrent_writers_never_duplicate_versions(catalog_url: str) -> None:
    # Separate Catalog objects = separate engines and pools, as in two processes.
    with Catalog.open(catalog_url) as listener, Catalog.open(catalog_url) as scheduler:
        run = scheduler.start_run("full")
        for content in ("a", "b", "c"):
            outcomes = _run_together(
                lambda c=content: _record_all(listener, c, reverse=False),
                lambda c=content: _record_all(scheduler, c, reverse=True),
                lambda: [scheduler.add_run_stats(run, {"items": {"seen": 1}}) for _ in range(25)],
                lambda: [listener.add_run_stats(run, {"items": {"seen": 1}}) for _ in range(25)],
            )
            tally = Counter(outcomes[0]) + Counter(outcomes[1])  # type: ignore[arg-type]
            # Each item got exactly one new/changed outcome between the two writers.
            assert tally["new" if content == "a" else "changed"] == N_ITEMS
            assert tally["unchanged"] == N_ITEMS

        with scheduler.engine.connect() as conn:
            per_item = conn.execute(
                sa.select(versions.c.item_id, sa.func.count(), sa.func.max(versions.c.seq)).group_by(
                    versions.c.item_id
                )
            ).all()
        assert len(per_item) == N_ITEMS
        assert all(count == 3 and top == 3 for _, count, top in per_item)
        assert scheduler.get_run(run).stats == {"items": {"seen": 150}}  # type: ignore[union-attr]


def test_cursor_writes_from_threads_share_one_catalog(catalog: Catalog) -> None:
    def writer(collector: str) -> None:
        for page in range(30):
            catalog.set_cursor(collector, "c", {"page": page})

    _run_together(*(lambda n=n: writer(f"collector-{n}") for n in range(4)))
    assert {c.collector: c.state["page"] for c in catalog.list_cursors()} == {
        f"collector-{n}": 29 for n in range(4)
    }


def test_sqlite_lock_held_too_long_is_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process holds the write lock and never lets go: the writer gives up with
    # CatalogBusyError (after its retries) instead of hanging.
    monkeypatch.setattr("dingvault.catalog.engine.SQLITE_BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr("dingvault.catalog.catalog._WRITE_RETRIES", 2)
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with Catalog.open(url) as catalog:
        blocker = sa.create_engine(url)
        with blocker.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            with pytest.raises(CatalogBusyError, match="nothing was written"):
                catalog.record_version("user", "u1", "h")
            conn.exec_driver_sql("ROLLBACK")
        blocker.dispose()
        assert catalog.record_version("user", "u1", "h") == "new"


@pytest.mark.postgres
def test_postgres_row_lock_held_too_long_is_a_clear_error(
    new_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dingvault.catalog.engine.PG_LOCK_TIMEOUT_MS", 100)
    monkeypatch.setattr("dingvault.catalog.catalog._WRITE_RETRIES", 2)
    url = new_url("postgresql")
    with Catalog.open(url) as catalog:
        catalog.record_version("user", "u1", "h1")
        stuck = sa.create_engine(url)
        with stuck.connect() as conn:
            # A stuck transaction holds the item's row lock.
            conn.execute(sa.text("SELECT id FROM items WHERE source_id = 'u1' FOR UPDATE"))
            with pytest.raises(CatalogBusyError):
                catalog.record_version("user", "u1", "h2")
            conn.rollback()
        stuck.dispose()
        assert catalog.record_version("user", "u1", "h2") == "changed"
        assert [v.content_hash for v in catalog.item_versions("user", "u1")] == ["h1", "h2"]


def test_opening_does_not_wait_for_a_running_writer(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    Catalog.open(url).close()
    blocker = sa.create_engine(url)
    with blocker.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # a writer mid-transaction
        started = time.monotonic()
        with Catalog.open(url) as catalog:
            assert catalog.get_cursor("x") is None  # and reads work
        assert time.monotonic() - started < 5
        conn.exec_driver_sql("ROLLBACK")
    blocker.dispose()
