"""Catalog throughput: how many version records per second the catalog takes, in batches.

Target (issue #4): >= 20,000 version records/s on SQLite, so that the catalog is never what
holds the backup below 5,000 records/s end to end.

Scenarios, on a fresh database each run:
  new        first full run: every record creates an item and a version
  unchanged  rerun of the same records (idempotence path: look up, compare hash, stamp last seen)
  changed    every record has new content (a second version per item)
  deletion   mark_unseen_deleted after a run that saw 90% of the items
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
        f"{label:<26} {n:>9,d} in {elapsed:6.2f} s = {rate:>9,.0f} /s  (cpu {cpu:5.2f} s)"
        + (f"  [{result}]" if result else "")
    )
    return rate


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
        catalog.close()
        if url.startswith("sqlite"):
            size = (Path(tmp) / "catalog.db").stat().st_size
            print(
                f"catalog.db size: {size / 1e6:.1f} MB ({size / (2 * n):.0f} bytes per version incl. items)"
            )
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
