"""dingvault's catalog: the relational metadata about everything backed up.

The vault holds the bytes and is the source of truth; the catalog indexes them (items, versions,
runs, cursors, snapshots) so the console, the CLI and the backup engine can answer questions
without decrypting the vault. It can always be rebuilt: from a catalog export stored in the vault
(:func:`rebuild_catalog`).

Databases
---------
SQLite (the embedded default, ``sqlite:///<home>/catalog.db`` -- :func:`default_catalog_url`) in
WAL mode, or PostgreSQL (``postgresql+psycopg://user@host/db``; append
``?options=-csearch_path%3D<schema>`` to use a schema). :meth:`Catalog.open` creates or upgrades
the schema with the Alembic migrations shipped in ``catalog/migrations/``, in one transaction.

Usage (the backup engine's view)::

    from dingvault.catalog import Catalog, VersionRecord

    catalog = Catalog.open(url)
    run_id = catalog.start_run("full", families=["approvals"])
    state = catalog.get_cursor("approvals", template_code)       # None on the first run
    ... fetch a page ...
    outcomes = catalog.record_versions(
        [VersionRecord("approval", pid, blob_id, version_key=modified, fields={"title": t, ...},
                       attachments=[file_blob_id], run_id=run_id, container=template_code)
         for ... in page])                                       # "new" | "changed" | "unchanged"
    catalog.add_run_stats(run_id, {"items": {"new": outcomes.count("new"), ...},
                                   "api_calls": {"/topapi/processinstance/get": n}})
    catalog.set_cursor("approvals", template_code, {"cursor": next_cursor}, run_id)  # after every page
    ...
    catalog.mark_unseen_deleted("approval", run_id, container=template_code)  # full runs, listing complete
    catalog.record_snapshot(vault_snapshot_id, run_id, {"approval": n})
    catalog.finish_run(run_id, "succeeded")
    export_catalog(catalog, stream)                              # then stored into the vault

API summary
-----------
Items and versions
    ``record_version(kind, source_id, content_hash, version_key, fields, attachments, level, run_id)``
    and the batch form ``record_versions([VersionRecord, ...])`` -> outcomes. Idempotent: repeating
    the latest content (same ``content_hash`` = vault blob id of the canonical payload) never adds
    a version. ``latest_version_keys(kind, ids)`` lets a run skip unchanged downloads;
    ``get_item``, ``item_versions``, ``iter_latest_versions`` read back.
Group commit (the backup engine's)
    ``write_group(WriteGroup)`` applies one commit's versions, seen and deleted marks, deletion
    detection, cursors and run errors in **one** transaction (retried whole), so a cursor can
    never be ahead of what it covers; ``latest_states(kind, ids)`` answers change detection and
    ``iter_latest_blobs()`` streams what a snapshot's manifest needs (keyset-paged, few columns).
Deletion detection (full runs)
    Every record/``mark_seen`` stamps the item with the run id; ``mark_unseen_deleted(kind, run_id,
    container)`` then marks the rest deleted in one SQL statement (memory-flat);
    ``mark_unseen_deleted_in(kind, run_id, containers)`` does many containers of a kind at once
    (``container IN (...)``, chunked); or iterate
    ``unseen_ids`` / ``live_ids`` and call ``mark_deleted(kind, ids, run_id)`` yourself. A listing
    resumed from a cursor after a crash was partly done by the interrupted run: pass its id as
    ``also_seen_by=[...]``, or what only it saw is marked deleted.
Cursors
    ``get_cursor(collector, container_key)``, ``set_cursor(collector, container_key, state, run_id)``
    (committed on return), ``delete_cursor``, ``list_cursors``.
Runs
    ``start_run(kind, families)``, ``add_run_stats(run_id, delta)``, ``finish_run(run_id, status)``,
    ``record_run_error(s)``, ``run_errors``, ``get_run``, ``list_runs``, ``last_successful_run(kind,
    family)``, ``last_successful_runs()``, ``mark_interrupted_runs(kinds=..., started_before=...)``
    (at process start; pass the run kinds this process owns so another writer's live run stays open).
Holds
    ``CatalogHolds(catalog)``: ``add(label, subject, until, snapshot_ids, summary)``, ``active(at)``,
    ``held_snapshot_ids(at)``, ``release(hold_id)``, ``list_holds``, ``get``. Snapshots a hold names
    are kept by the vault's prune (the service offers them as its ``HoldProvider``); holds are part
    of the catalog export, so a catalog rebuilt from the vault keeps them.
Snapshots and status
    ``record_snapshot(vault_snapshot_id, run_id, counts)``, ``list_snapshots``, ``get_snapshot``,
    ``counts_per_kind()``.
Export and rebuild
    ``export_catalog(catalog, out_stream)`` / ``rebuild_catalog(url, in_stream)``: zstd-compressed
    JSON lines, one section per table, with a header naming the format and schema revision and a
    trailer with row counts and a digest (see ``catalog/export.py``). Rebuild is all or nothing,
    into an empty database, and accepts exports from older schema revisions (loaded as that
    revision, then migrated). ``read_export_header`` checks an export without loading it.

Concurrency
-----------
The service's event listener and scheduler (and, at scale, several workers) write at once. Every
write is one transaction: a single call's (a batch of at most ``batch_size`` records, one cursor,
one stats update), or a backup group commit (about 2,000 records with their marks and cursors). On SQLite the writers take turns: each write transaction begins with ``BEGIN IMMEDIATE``
and waits up to 30 s for the single write lock (readers are never blocked, thanks to WAL). On
PostgreSQL the item rows a batch touches are locked in a fixed order (``SELECT ... FOR UPDATE``)
and ``(item, seq)`` is unique, so two writers never both add "the next version" of an item.
Lock timeouts, deadlocks and serialisation failures are retried with backoff, then raise
CatalogBusyError (nothing written). A Catalog object is safe to share between threads.

Timestamps are aware UTC datetimes everywhere; naive ones are refused.
"""

from dingvault.catalog.catalog import DEFAULT_BATCH, Catalog, WriteGroup
from dingvault.catalog.engine import create_catalog_engine, default_catalog_url
from dingvault.catalog.errors import (
    CatalogBusyError,
    CatalogError,
    CatalogInputError,
    CatalogSchemaError,
    CatalogStateError,
    ExportFormatError,
    RebuildTargetNotEmptyError,
)
from dingvault.catalog.export import (
    FORMAT_VERSION,
    MEDIA_TYPE,
    export_catalog,
    read_export_header,
    rebuild_catalog,
)
from dingvault.catalog.holds import CatalogHolds, HoldInfo
from dingvault.catalog.records import (
    CHANGED,
    NEW,
    UNCHANGED,
    CursorInfo,
    GroupResult,
    ItemInfo,
    KindCounts,
    Outcome,
    RunErrorInfo,
    RunErrorRecord,
    RunInfo,
    SnapshotInfo,
    VersionInfo,
    VersionRecord,
)
from dingvault.catalog.schema import LEVELS, RUN_KINDS, RUN_STATUSES

__all__ = [
    "CHANGED",
    "DEFAULT_BATCH",
    "FORMAT_VERSION",
    "MEDIA_TYPE",
    "LEVELS",
    "NEW",
    "RUN_KINDS",
    "RUN_STATUSES",
    "UNCHANGED",
    "Catalog",
    "CatalogBusyError",
    "CatalogError",
    "CatalogHolds",
    "CatalogInputError",
    "CatalogSchemaError",
    "CatalogStateError",
    "CursorInfo",
    "ExportFormatError",
    "GroupResult",
    "HoldInfo",
    "ItemInfo",
    "KindCounts",
    "Outcome",
    "RebuildTargetNotEmptyError",
    "RunErrorInfo",
    "RunErrorRecord",
    "RunInfo",
    "SnapshotInfo",
    "VersionInfo",
    "VersionRecord",
    "WriteGroup",
    "create_catalog_engine",
    "default_catalog_url",
    "export_catalog",
    "read_export_header",
    "rebuild_catalog",
]
