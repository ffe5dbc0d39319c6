"""Catalog throughput: how many version records per second the catalog takes, in batches.

Target (issue #4): >= 20,000 version records/s on SQLite, so that the catalog is never what
holds the backup below 5,000 records/s end to end.

Scenarios, on a fresh database each run:
  new        first full run: every record creates an item and a version
  unchanged  rerun of the same records (idempotence path: look up, compare hash, stamp last seen)
  changed    every record has new content (a second version per item)
  deletion   mark_unseen_deleted after a run that saw 90% of the items; then deletion detection for
             many small containers (calendars, todo lists): one call per container against one
             batched call (mark_unseen_deleted_in)
  group      a backup's group commit as one WriteGroup transaction (2,000 versions, seen marks,
             deletion detection for 200 containers, a cursor) against the same writes one by one
  snapshot   what a run's snapshot manifest reads: iter_latest_blobs (against iter_latest_versions)
  export     export_catalog to a zstd stream (bytes written) and rebuild_catalog into a new database

Usage:
  .venv/bin/python bench/catalog.py [--records 200000] [--batch 1000] [--url sqlite:///...|postgresql+psycopg://...]

Without --url a temporary SQLite catalog is used (WAL, synchronous=NORMAL: the shipped settings).
For PostgreSQL pass an empty database or schema (e.g. ...?options=-csearch_path%3Dbench); the
script creates its tables and leaves them (drop the schema afterwards).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dingvault.catalog import Catalog, VersionRecord, export_catalog, rebuild_catalog


def records(n: int, run_id: int, content: str, start: int = 0) -> Iterator[VersionRecord]:
    # Fields shaped like a normalised approval: a title in Chinese, an owner, a department, times.
    created = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(start, start + n):
        yield VersionRecord(
            kind="approval",
            source_id=f"proc-inst-{i:09d}-4f7a9c2e",
            content_hash=f"{content}{i:060d}",
            version_key=str(1_767_225_600_000 + i),
            fields={
                "title": f"請假申請 #{i}",
                "owner_userid": f"user{i % 500:04d}",
                "department": i % 40,
                "created_at": created,
                "modified_at": created,
            },
            attachments=[f"att{i:061d}"] if i % 10 == 0 else (),
            run_id=run_id,
            size=1500,
            container=f"PROC-{i % 20:02d}",
        )


def timed(label: str, n: int, fn) -> float:
    # Wall time is what counts; the process's CPU time is printed too because the bench machine
    # is shared, and CPU time says how much of the wall time was this process working.
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = n / elapsed if elapsed else float("inf")
    print(
        f"{label:<42} {n:>9,d} in {elapsed:6.2f} s = {rate:>9,.0f} /s  (cpu {cpu:5.2f} s)"
        + (f"  [{result}]" if result else "")
    )
    return rate


def small_containers(n: int, run_id: int, per: int, prefix: str) -> Iterator[VersionRecord]:
    """``n`` events in containers of ``per`` items each (one calendar per user, say)."""
    for i in range(n):
        yield VersionRecord(
            kind="calendar_event",
            source_id=f"{prefix}-ev-{i:09d}",
            content_hash=f"c{i:063d}",
            run_id=run_id,
            size=400,
            container=f"{prefix}-cal-{i // per:06d}",
        )


def containers_scenario(catalog: Catalog, n: int) -> None:
    """Deletion detection after complete listings of many small containers: per call vs batched."""
    per, m = 5, max(n // 10, 1000)
    for prefix, batched in (("one", False), ("many", True)):
        first = catalog.start_run("full")
        catalog.record_versions(small_containers(m, first, per, prefix))
        second = catalog.start_run("full")
        listed = [r.source_id for r in small_containers(m, second, per, prefix)]
        catalog.mark_seen("calendar_event", listed[: m * 9 // 10], second)
        names = [f"{prefix}-cal-{c:06d}" for c in range(m // per)]
        label = "deleted, batched" if batched else "deleted, one per container"
        timed(
            f"{label} ({len(names):,} containers)",
            len(names),
            lambda r=second, c=names, b=batched: _delete_unseen(catalog, r, c, b),
        )


def _delete_unseen(catalog: Catalog, run: int, containers: list[str], batched: bool) -> int:
    if batched:
        return catalog.mark_unseen_deleted_in("calendar_event", run, containers)
    return sum(catalog.mark_unseen_deleted("calendar_event", run, c) for c in containers)


def group_scenario(catalog: Catalog, n: int) -> None:
    """The writes of a backup's commits, each in one transaction against one by one."""
    size = 2000
    rounds = max(n // size // 2, 1)
    for grouped in (False, True):
        run = catalog.start_run("full")
        start = (20 if grouped else 10) * n  # fresh items for each form
        label = "commit, " + ("one transaction" if grouped else "one by one")
        timed(
            label, rounds * size, lambda r=run, s=start, g=grouped: _commits(catalog, r, s, size, rounds, g)
        )


def _commits(catalog: Catalog, run: int, start: int, size: int, rounds: int, grouped: bool) -> int:
    # Each commit: its versions, 100 items only listed, 200 completely listed containers (of an
    # otherwise unused kind, so the other scenarios' items stay), and the collector's cursor.
    for r in range(rounds):
        recs = list(records(size, run, "g", start + r * size))
        seen = [x.source_id for x in recs[:100]]
        names = [f"G-{r}-{c}" for c in range(200)]
        if grouped:
            group = catalog.group()
            group.record_versions(recs)
            group.mark_seen("approval", seen, run)
            group.mark_unseen_deleted("approval_g", run, names)
            group.set_cursor("bench", "", {"page": r}, run)
            catalog.write_group(group)
        else:
            catalog.record_versions(recs)
            catalog.mark_seen("approval", seen, run)
            for c in names:
                catalog.mark_unseen_deleted("approval_g", run, c)
            catalog.set_cursor("bench", "", {"page": r}, run)
    return rounds * size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--url", help="catalog database URL (default: a temporary SQLite file)")
    parser.add_argument("--rebuild-url", help="empty database for the rebuild (default: temporary SQLite)")
    args = parser.parse_args()
    n, batch = args.records, args.batch

    with tempfile.TemporaryDirectory(prefix="dv-bench-catalog-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'catalog.db'}"
        print(f"catalog: {url.split('?')[0]}  records: {n:,}  batch: {batch}  load: {os.getloadavg()}")
        catalog = Catalog.open(url)

        run1 = catalog.start_run("full")
        timed(
            "record new",
            n,
            lambda: catalog.record_versions(records(n, run1, "a"), batch_size=batch).count("new"),
        )
        run2 = catalog.start_run("full")
        timed(
            "record unchanged (rerun)",
            n,
            lambda: catalog.record_versions(records(n, run2, "a"), batch_size=batch).count("unchanged"),
        )
        run3 = catalog.start_run("full")
        timed(
            "record changed",
            n,
            lambda: catalog.record_versions(records(n, run3, "b"), batch_size=batch).count("changed"),
        )
        run4 = catalog.start_run("full")
        seen = n * 9 // 10
        timed(
            "mark_seen",
            seen,
            lambda: catalog.mark_seen("approval", (r.source_id for r in records(seen, run4, "b")), run4),
        )
        timed(
            "mark_unseen_deleted",
            n,
            lambda: sum(
                catalog.mark_unseen_deleted("approval", run4, container=f"PROC-{c:02d}") for c in range(20)
            ),
        )
        timed("live_ids (stream)", n - (n - seen), lambda: sum(1 for _ in catalog.live_ids("approval")))

        buf = io.BytesIO()
        rows = 0

        def do_export() -> str:
            nonlocal rows
            trailer = export_catalog(catalog, buf)
            rows = sum(trailer["rows"].values())
            return f"{len(buf.getvalue()) / 1e6:.1f} MB zstd, {rows:,} rows"

        timed("export (items+versions)", 3 * n, do_export)
        target = args.rebuild_url or f"sqlite:///{Path(tmp) / 'rebuilt.db'}"
        buf.seek(0)
        timed("rebuild (rows)", rows, lambda: f"{sum(rebuild_catalog(target, buf).values()):,} rows")
        live = sum(1 for _ in catalog.iter_latest_blobs())
        timed("latest versions (objects)", live, lambda: sum(1 for _ in catalog.iter_latest_versions()))
        timed("latest blobs (manifest)", live, lambda: sum(1 for _ in catalog.iter_latest_blobs()))
        # These add items of other kinds: after the export, so its figures stay comparable.
        containers_scenario(catalog, n)
        group_scenario(catalog, n)
        catalog.close()
        if url.startswith("sqlite"):
            size = (Path(tmp) / "catalog.db").stat().st_size
            print(
                f"catalog.db size: {size / 1e6:.1f} MB ({size / (2 * n):.0f} bytes per version incl. items)"
            )
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
