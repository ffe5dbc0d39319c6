"""The backup engine: runs the collectors, stores what changed, commits cursors after durable batches.

Shape of a run (one asyncio event loop, one storage thread)::

    collector (family A) ─┐   prepare: scope, change detection,     ┌───────────────┐
    collector (family B) ─┼─▶ attachment downloads (async, bounded) ─▶ bounded queue ─▶ writer
    collector (family C) ─┘                                          └───────────────┘   │
                                                                 storage thread: vault puts,
                                                                 durable(), catalog commit

* Families run concurrently; the queue between fetch and store is bounded, so memory stays bounded
  whatever the organisation's size (a fast API waits for a slow disk and vice versa). Besides the
  per-family read-ahead, one budget counts the records of all families from the moment a page is
  taken for preparing until the writer has stored it (``max_items_in_flight``): the number of
  families does not multiply what is held.
* Change detection happens **before** any download: an item whose ``version_key`` equals the
  catalog's current one is only marked "seen"; an attachment whose reference matches one of the
  previous version's is reused, not downloaded again.
* Group commit: blobs are written as batches arrive; every ``commit_items`` records or
  ``commit_seconds`` the vault is made durable and **then** the catalog records the versions, the
  seen marks, the deletions and the cursors of those batches in one go. A killed run therefore
  resumes from the last committed cursor, and re-storing an item that was written but not committed
  yields the same content-addressed blob (no duplicate version).
* Failures: a per-item failure (download failed for good, bad payload) is recorded and the run goes
  on (skip and continue); the cursor of the page it was on is *not* advanced for the rest of the run,
  so the next run tries it again, and its container is not used for deletion detection. A family
  that fails as a whole (monthly quota spent, scope missing) stops; the others continue.
* Membership follows the department tree of this run: when the scope depends on departments, the
  contacts family runs first and teaches the scope the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dingvault.backup.memory import (
    limit_malloc_arenas,
    limit_sqlite_heap,
    map_large_blocks,
    releasing_free_memory,
)
from dingvault.backup.open_files import raise_open_files_limit
from dingvault.backup.payload import (
    StoredAttachment,
    attachment_identity,
    encode_version,
    normalize_version_key,
)
from dingvault.backup.scope import Scope
from dingvault.backup.spool import DISK_BUDGET, SpoolBudget, SpooledDownload, TempFilePool, spool
from dingvault.backup.stats import FamilyFailure, ItemFailure, RunStats
from dingvault.backup.store_api import Commit, CommitResult, KnownVersion, Store, VersionRecord
from dingvault.source.items import AttachmentRef, Batch, Item

T = TypeVar("T")

CONTACTS_FAMILY = "contacts"


class BackupError(Exception):
    """The run could not go on (storage failed); the message says what, the catalog says where it stopped."""


class CollectorLike(Protocol):
    """What the engine needs from a connector collector (``dingvault.source.collectors``)."""

    name: str
    family: str

    def collect(
        self, *, mode: str, cursors: Mapping[tuple[str, str], dict[str, Any]], scope: Any
    ) -> AsyncIterator[Batch]: ...

    def open_attachment(self, ref: AttachmentRef) -> AsyncIterator[bytes]: ...


class Progress(Protocol):
    def family_started(self, family: str) -> None: ...

    def advance(self, family: str, items: int, nbytes: int) -> None: ...

    def family_done(self, family: str, ok: bool) -> None: ...


class _NoProgress:
    def family_started(self, family: str) -> None: ...

    def advance(self, family: str, items: int, nbytes: int) -> None: ...

    def family_done(self, family: str, ok: bool) -> None: ...


@dataclass
class _Prepared:
    family: str
    to_store: list[tuple[Item, list[StoredAttachment], dict[int, SpooledDownload]]] = field(
        default_factory=list
    )
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    complete: list[tuple[str, str]] = field(default_factory=list)
    cursor: tuple[tuple[str, str], dict[str, Any]] | None = None
    failures: list[ItemFailure] = field(default_factory=list)
    failed_containers: set[tuple[str, str | None]] = field(default_factory=set)
    batch: Batch | None = None
    n_items: int = 0
    budget: int = 0  # records counted in the engine's in-flight budget, given back once written
    default_kind: str | None = None
    cursor_key: tuple[str, str] | None = None  # the cursor of the collector page this chunk is from
    collector: str = ""  # the collector's name (the first part of its cursor keys)

    def downloads(self) -> list[SpooledDownload]:
        return [sp for _item, _atts, spools in self.to_store for sp in spools.values()]

    def discard(self) -> None:
        for sp in self.downloads():
            sp.close()
        # The records are no longer needed once stored (their catalog fields are in the commit).
        self.to_store = []


_STOP = object()


class _InFlight:
    """Records between a collector page and the writer, all families together (event loop only).

    A chunk waits until it fits under ``limit``; one always fits when nothing else is in flight,
    so a chunk larger than the limit cannot wait forever. Everything counted is on its way to the
    writer (or dropped and given back), so waiting here never blocks what would free the budget.

    It also keeps what the fetch side held over the run, the peak and the mean (over time) of
    the records in flight, and how long fetching waited here: the run's statistics ("pipeline").
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self.peak = 0
        self._freed = asyncio.Event()
        self.start_clock()

    def start_clock(self) -> None:
        self._since = self._started = time.monotonic()
        self._used_seconds = 0.0  # integral of `used` over time
        self._waiting = 0  # pages waiting for room now
        self._wait_started = 0.0
        self._waited = 0.0  # seconds during which at least one page waited for room

    def waited(self) -> float:
        """Seconds during which fetching waited for records ahead of it to be stored."""
        if self._waiting:
            return self._waited + time.monotonic() - self._wait_started
        return self._waited

    def _tick(self) -> None:
        now = time.monotonic()
        self._used_seconds += self.used * (now - self._since)
        self._since = now

    def mean(self) -> float:
        """Records in flight, averaged over the time since the clock started."""
        self._tick()
        elapsed = self._since - self._started
        return self._used_seconds / elapsed if elapsed > 0 else 0.0

    async def take(self, n: int) -> None:
        if self.used > 0 and self.used + n > self.limit:
            if not self._waiting:
                self._wait_started = time.monotonic()
            self._waiting += 1
            try:
                while self.used > 0 and self.used + n > self.limit:
                    self._freed.clear()
                    await self._freed.wait()
            finally:
                self._waiting -= 1
                if not self._waiting:
                    self._waited += time.monotonic() - self._wait_started
        self._tick()
        self.used += n
        self.peak = max(self.peak, self.used)

    def give_back(self, n: int) -> None:
        if n:
            self._tick()
            self.used -= n
            self._freed.set()


class BackupEngine:
    def __init__(
        self,
        store: Store,
        collectors: Sequence[CollectorLike],
        scope: Scope | None = None,
        *,
        tmp_dir: Path | None = None,
        progress: Progress | None = None,
        api_call_counts: Callable[[], Mapping[str, int]] | None = None,
        api_error_counts: Callable[[], Mapping[str, int]] | None = None,
        level_for: Callable[[Item], str] | None = None,
        queue_size: int = 8,
        download_concurrency: int = 8,
        prefetch: int = 4,
        max_batch_items: int = 500,
        max_items_in_flight: int = 3000,
        max_spool_on_disk: int = DISK_BUDGET,
        commit_items: int = 2000,
        commit_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.collectors = list(collectors)
        self.scope = scope or Scope()
        self.tmp_dir = tmp_dir
        self.progress: Progress = progress or _NoProgress()
        self._api_call_counts = api_call_counts
        self._api_error_counts = api_error_counts
        self._level_for = level_for or (lambda _item: "internal")
        self._queue_size = queue_size
        # Before the run's threads exist: they then share two malloc arenas instead of keeping
        # freed memory in one each (see dingvault.backup.memory for the measurement).
        limit_malloc_arenas()
        # Pack buffers and big download chunks are mapped, so freeing them returns them at once.
        map_large_blocks()
        # SQLite's page caches, all connections together, stay bounded however large the catalog.
        limit_sqlite_heap()
        # Downloads waiting for the writer are open files: more than a default soft limit allows.
        raise_open_files_limit()
        self._download_sem = asyncio.Semaphore(download_concurrency)
        self._commit_items = commit_items
        self._commit_seconds = commit_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dingvault-store")
        # Change-detection reads run beside the writer (SQLite in WAL mode serves readers while
        # it writes), so fetching never waits behind a pack being compressed. One thread: each
        # catalog connection keeps its own page cache, and memory must stay bounded.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dingvault-read")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dingvault-commit")
        self._prefetch = prefetch
        # Downloads waiting for the writer: a few MiB in memory, the rest on disk up to a limit.
        self._temp_files = TempFilePool(tmp_dir)
        self._spool_budget = SpoolBudget(disk_budget=max_spool_on_disk, files=self._temp_files)
        self._max_batch_items = max(1, max_batch_items)
        # Parsed API records are the bulk of what the fetch side holds (a record's dicts take ~10x
        # its JSON); counted across families, not per family, so memory does not grow with how
        # many families run at once. 3,000 is over a second of the writer's work.
        self._in_flight = _InFlight(max_items_in_flight)
        # Seconds the writer waited for work: the rest of the run, the storage side set the pace.
        self._writer_idle = 0.0
        # Of the rest, seconds it waited for the catalog's previous commit to end.
        self._commit_wait = 0.0
        self._cpu_started = time.process_time()
        # Decided on the event loop, read when batches are prepared.
        self._blocked_cursors: set[tuple[str, str]] = set()
        # Collectors with a failed item on a page that carried no cursor: which of their later
        # cursors covers that item is unknown, so none of them advances for the rest of the run.
        self._blocked_collectors: set[str] = set()
        self._failed_containers: set[tuple[str, str | None]] = set()

    # ---- helpers ------------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # ---- the run ------------------------------------------------------------------------------
    async def run(self, mode: str = "incremental") -> RunStats:
        if mode not in ("full", "incremental"):
            raise ValueError(f"mode must be full or incremental, not {mode!r}")
        # What the run frees between its peaks goes back to the system as it goes, not only at the
        # end (see dingvault.backup.memory).
        with releasing_free_memory():
            try:
                return await self._run(mode)
            finally:
                self._temp_files.close()

    async def _run(self, mode: str) -> RunStats:
        stats = RunStats(mode=mode)
        self._in_flight.start_clock()
        self._cpu_started = time.process_time()
        calls_before = dict(self._api_call_counts()) if self._api_call_counts else {}
        errors_before = dict(self._api_error_counts()) if self._api_error_counts else {}
        families = sorted({c.family for c in self.collectors})
        run_id = await self._call(self.store.start_run, mode, families)
        try:
            cursors = await self._call(self.store.load_cursors)
            await self._run_collectors(run_id, mode, cursors, stats)
        except BaseException as exc:
            stats.finished = time.time()
            self._pipeline_stats(stats)
            stats.family_failures.append(FamilyFailure("*", type(exc).__name__, str(exc) or repr(exc)))
            with contextlib.suppress(Exception):
                await self._call(self.store.finish_run, run_id, stats)
            self._executor.shutdown(wait=False)
            self._reader.shutdown(wait=False)
            self._committer.shutdown(wait=False)
            if isinstance(exc, Exception) and not isinstance(exc, BackupError):
                raise BackupError(f"backup run {run_id} stopped: {type(exc).__name__}: {exc}") from exc
            raise
        if self._api_call_counts:
            after = self._api_call_counts()
            for endpoint, n in after.items():
                delta = n - calls_before.get(endpoint, 0)
                if delta:
                    stats.api_calls[endpoint] += delta
        if self._api_error_counts:
            for key, n in self._api_error_counts().items():
                delta = n - errors_before.get(key, 0)
                if key == "(retries)":
                    stats.api_retries = delta
                elif delta:
                    stats.api_errors[key] += delta
        self._pipeline_stats(stats)
        # Every run yields an independent snapshot and a catalog export, even a partial one: what
        # was stored is stored, and the snapshot says exactly what it holds.
        stats.snapshot_id = await self._call(self.store.commit_snapshot, run_id)
        stats.finished = time.time()
        await self._call(self.store.finish_run, run_id, stats)
        # The export is taken after the run is closed, so a catalog rebuilt from it shows this run
        # as finished. A failed export does not undo the backup; it is reported in the stats.
        try:
            stats.catalog_export_id = await self._call(self.store.export_catalog, run_id)
        except Exception as exc:
            stats.family_failures.append(
                FamilyFailure("catalog-export", type(exc).__name__, str(exc), stopped=False)
            )
        self._executor.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._committer.shutdown(wait=True)
        return stats

    def _pipeline_stats(self, stats: RunStats) -> None:
        budget = self._in_flight
        stats.in_flight_limit = budget.limit
        stats.in_flight_peak = budget.peak
        stats.in_flight_mean = budget.mean()
        stats.fetch_wait = budget.waited()
        stats.storage_idle = self._writer_idle
        stats.commit_wait = self._commit_wait
        stats.cpu_seconds = time.process_time() - self._cpu_started

    async def _run_collectors(
        self, run_id: int, mode: str, cursors: Mapping[tuple[str, str], dict[str, Any]], stats: RunStats
    ) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._queue_size)
        writer = asyncio.create_task(self._writer(queue, run_id, stats), name="dingvault-writer")

        async def all_families() -> None:
            first = (
                [c for c in self.collectors if c.family == CONTACTS_FAMILY] if self.scope.needs_tree else []
            )
            rest = [c for c in self.collectors if c not in first]
            for c in first:
                await self._run_family(c, mode, cursors, queue, stats, tree_scope=True)
            await asyncio.gather(*(self._run_family(c, mode, cursors, queue, stats) for c in rest))

        fetch = asyncio.create_task(all_families(), name="dingvault-fetch")
        try:
            done, _ = await asyncio.wait({fetch, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                # The writer only ends early on a storage failure: stop fetching, report it.
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetch
                exc = writer.exception()
                raise BackupError(f"storage failed: {type(exc).__name__}: {exc}") from exc
            fetch.result()
            await queue.put(_STOP)
            await writer
        except BaseException:
            # Cancelled (Ctrl-C, a caller's timeout) or failed: stop both sides and wait for them,
            # so no storage call is left running when the executors shut down. What was committed
            # stays committed; the next run resumes from it.
            for task in (fetch, writer):
                task.cancel()
            for task in (fetch, writer):
                with contextlib.suppress(BaseException):
                    await task
            raise

    async def _run_family(
        self,
        collector: CollectorLike,
        mode: str,
        cursors: Mapping[tuple[str, str], dict[str, Any]],
        queue: asyncio.Queue[Any],
        stats: RunStats,
        *,
        tree_scope: bool = False,
    ) -> None:
        family = collector.family
        # Contacts read to resolve the tree must list departments and users even when those kinds
        # are not themselves in scope; the engine, not the collector, then decides what is stored.
        scope: Any = _TreeScope(self.scope) if tree_scope else self.scope
        self.progress.family_started(family)
        ok = False
        # Pages are prepared (change detection, downloads) concurrently, up to `prefetch` ahead of
        # the one being handed to the writer, but handed over strictly in order: cursors must be
        # committed in the order the collector produced them.
        pending: asyncio.Queue[tuple[asyncio.Task[_Prepared], int, object] | None] = asyncio.Queue(
            maxsize=self._prefetch
        )
        forward_error: list[BaseException] = []
        in_flight = self._in_flight
        # The page forward() waits for: the writer needs it before any later page of this family,
        # so its downloads wait only for room held by pages handed to the writer, never for room
        # held by later pages (which wait for it).
        head: list[object] = [None]

        async def forward() -> None:
            while True:
                entry = await pending.get()
                if entry is None:
                    return
                task, counted, page = entry
                head[0] = page
                self._spool_budget.wake()
                if forward_error:
                    task.cancel()
                    in_flight.give_back(counted)
                    continue
                try:
                    prepared = await task
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a storage read failed: stop this family cleanly
                    in_flight.give_back(counted)
                    forward_error.append(exc)
                    continue
                prepared.budget = counted  # the writer gives it back once stored
                # Its downloads now leave the disk whatever the fetch side does (see reserve_disk).
                self._spool_budget.hand_over(prepared.downloads())
                try:
                    self._settle(prepared, stats)
                    await queue.put(prepared)
                except asyncio.CancelledError:
                    prepared.discard()
                    raise
                except Exception as exc:
                    prepared.discard()
                    forward_error.append(exc)
                    continue
                self.progress.advance(family, prepared.n_items, 0)

        forwarder = asyncio.create_task(forward())
        try:
            async for batch in collector.collect(mode=mode, cursors=cursors, scope=scope):
                cursor_key = batch.cursor.key if batch.cursor is not None else None
                for chunk in _split(batch, self._max_batch_items):
                    counted = len(chunk.items)
                    await in_flight.take(counted)
                    page = object()
                    task = asyncio.create_task(
                        self._prepare(collector, chunk, stats, cursor_key, lambda p=page: head[0] is p)
                    )
                    try:
                        await pending.put((task, counted, page))
                    except BaseException:
                        task.cancel()
                        in_flight.give_back(counted)
                        raise
                if forward_error:
                    break
            await pending.put(None)
            await forwarder
            if forward_error:
                raise forward_error[0]
            ok = True
            stats.families_done.append(f"{family}:{collector.name}")
        except asyncio.CancelledError:
            forwarder.cancel()
            raise
        except Exception as exc:
            # QuotaExhausted, PermissionDenied, a bug in one collector: this family stops, others go on.
            failure = FamilyFailure(family, type(exc).__name__, str(exc) or repr(exc))
            stats.family_failures.append(failure)  # written to the catalog by finish_run
            if not forwarder.done():
                # Pages already read are still stored (in order); nothing after the failure is.
                await pending.put(None)
                await forwarder
        finally:
            self.progress.family_done(family, ok)

    # ---- fetch side: scope, change detection, downloads ---------------------------------------
    def _learn(self, item: Item) -> None:
        if item.kind == "department":
            parent = _first(item.fields, item.raw, ("parent_id", "parentId"))
            self.scope.learn_department(item.source_id, parent)
        elif item.kind == "user":
            depts = _first(item.fields, item.raw, ("dept_id_list", "deptIdList"))
            if depts is None:
                one = _first(item.fields, item.raw, ("dept_id",))
                depts = [one] if one is not None else []
            if isinstance(depts, list | tuple):
                self.scope.learn_user(item.source_id, depts)

    async def _prepare(
        self,
        collector: CollectorLike,
        batch: Batch,
        stats: RunStats,
        cursor_key: tuple[str, str] | None,
        is_next: Callable[[], bool],
    ) -> _Prepared:
        prepared = _Prepared(
            family=collector.family,
            default_kind=_default_kind(collector),
            cursor_key=cursor_key,
            collector=collector.name,
        )
        items: list[Item] = []
        for item in batch.items:
            self._learn(item)
            if not self.scope.includes_kind(item.kind):
                continue
            # Contacts listed whole to learn the tree: keep only the part in scope.
            if item.kind == "department" and not self.scope.includes_dept(item.source_id):
                continue
            if item.kind == "user" and not self.scope.includes_user(item.source_id):
                continue
            items.append(item)
        known: dict[tuple[str, str], KnownVersion] = {}
        by_kind: dict[str, list[str]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item.source_id)
        for kind, ids in by_kind.items():
            loop = asyncio.get_running_loop()
            for sid, kv in (await loop.run_in_executor(self._reader, self.store.known, kind, ids)).items():
                known[(kind, sid)] = kv

        jobs = []
        for item in items:
            kv = known.get(item.key)
            if (
                kv is not None
                and not kv.deleted
                and item.version_key is not None
                and kv.version_key == normalize_version_key(item.version_key)
            ):
                prepared.seen.append((item.kind, item.source_id, item.container))
                stats.unchanged[item.kind] += 1
            else:
                jobs.append(self._fetch_attachments(collector, item, kv, stats, is_next))
        for result in await asyncio.gather(*jobs):
            if isinstance(result, ItemFailure):
                prepared.failures.append(result)
            else:
                prepared.to_store.append(result)

        for failure in prepared.failures:
            stats.add_failure(failure)
            container = next((i.container for i in items if i.key == (failure.kind, failure.source_id)), None)
            prepared.failed_containers.add((failure.kind, container))
        prepared.batch = batch
        prepared.n_items = len(batch.items)
        return prepared

    def _settle(self, prepared: _Prepared, stats: RunStats) -> None:
        """In collector order: what this page's cursor, deletions and completions may commit."""
        batch = prepared.batch
        assert batch is not None
        self._failed_containers |= prepared.failed_containers
        if prepared.failures:
            if prepared.cursor_key is not None:
                # Hold this stream's cursor for the rest of the run: the next run reads the failed
                # page again (unchanged items on it cost no download).
                self._blocked_cursors.add(prepared.cursor_key)
            else:
                # A page without a cursor (collectors that send a container's cursor with its last
                # page only): hold every later cursor of this collector.
                self._blocked_collectors.add(prepared.collector)
        if (
            batch.cursor is not None
            and batch.cursor.key not in self._blocked_cursors
            and batch.cursor.key[0] not in self._blocked_collectors
        ):
            prepared.cursor = (batch.cursor.key, dict(batch.cursor.state))
        if batch.deleted:
            kind = (
                batch.deleted_kind or (batch.items[0].kind if batch.items else None) or prepared.default_kind
            )
            if kind is not None and self.scope.includes_kind(kind):
                prepared.deleted.extend((kind, str(sid)) for sid in batch.deleted)
        for listing in batch.complete or ():
            if not self.scope.includes_kind(listing.kind):
                continue
            if (listing.kind, listing.container) in self._failed_containers:
                continue  # an item of it failed: its absence proves nothing
            prepared.complete.append((listing.kind, listing.container))
        prepared.batch = None

    async def _fetch_attachments(
        self,
        collector: CollectorLike,
        item: Item,
        kv: KnownVersion | None,
        stats: RunStats,
        is_next: Callable[[], bool],
    ) -> tuple[Item, list[StoredAttachment], dict[int, SpooledDownload]] | ItemFailure:
        stored: list[StoredAttachment] = []
        spools: dict[int, SpooledDownload] = {}
        try:
            for idx, ref in enumerate(item.attachments):
                identity = attachment_identity(ref).hex()
                previous = kv.attachments.get(identity) if kv is not None else None
                if previous is not None and previous[0]:
                    stored.append(StoredAttachment(ref, list(previous[0]), previous[1], previous[2]))
                    stats.attachments_reused += 1
                    continue
                if not self.scope.includes_file(ref.name, ref.size):
                    stored.append(StoredAttachment(ref, skipped="excluded by scope"))
                    stats.skipped_content[item.kind] += 1
                    continue
                # A big download waits for room on disk before it takes a download slot, so a
                # download of the page the writer needs next always finds a slot.
                reserved = await self._spool_budget.reserve_disk(ref.size, is_next)
                try:
                    async with self._download_sem:
                        download = await spool(
                            collector.open_attachment(ref),
                            self.tmp_dir,
                            self._spool_budget,
                            expected_size=ref.size,
                            reserved=reserved,
                        )
                except BaseException:
                    self._spool_budget.release_disk(reserved)
                    raise
                spools[idx] = download
                stored.append(StoredAttachment(ref, sha256=download.sha256, size=download.size))
                stats.attachments_downloaded += 1
                stats.bytes_downloaded += download.size
                self.progress.advance(collector.family, 0, download.size)
        except asyncio.CancelledError:
            for sp in spools.values():
                sp.close()
            raise
        except Exception as exc:
            for sp in spools.values():
                sp.close()
            return ItemFailure(item.kind, item.source_id, type(exc).__name__, str(exc) or repr(exc))
        return (item, stored, spools)

    # ---- store side ---------------------------------------------------------------------------
    async def _writer(self, queue: asyncio.Queue[Any], run_id: int, stats: RunStats) -> None:
        pending = Commit()
        last_commit = time.monotonic()
        # One group commit may run (on its own thread) while the next group's blobs are written:
        # the catalog's transaction and the vault's flush overlap with compression and encryption.
        inflight: asyncio.Future[None] | None = None
        try:
            while True:
                try:
                    msg = queue.get_nowait()
                except asyncio.QueueEmpty:
                    idle_since = time.monotonic()
                    try:
                        # Wake up at least every commit interval so a slow family's cursor is not held.
                        msg = await asyncio.wait_for(queue.get(), timeout=max(self._commit_seconds, 0.05))
                    except TimeoutError:
                        msg = None
                    self._writer_idle += time.monotonic() - idle_since
                if msg is _STOP:
                    break
                if msg is not None:
                    try:
                        await self._call(self._write_prepared, msg, pending, stats)
                    finally:
                        msg.discard()
                        self._in_flight.give_back(msg.budget)
                due = time.monotonic() - last_commit >= self._commit_seconds
                if len(pending) >= self._commit_items or (due and _has_work(pending)):
                    if inflight is not None:
                        waiting_since = time.monotonic()
                        await inflight
                        self._commit_wait += time.monotonic() - waiting_since
                    inflight = asyncio.ensure_future(self._commit(run_id, pending, stats))
                    pending = Commit()
                    last_commit = time.monotonic()
            if inflight is not None:
                await inflight
                inflight = None
            if _has_work(pending):
                await self._commit(run_id, pending, stats)
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()
                with contextlib.suppress(BaseException):
                    await inflight

    def _write_prepared(self, prepared: _Prepared, pending: Commit, stats: RunStats) -> None:
        """On the storage thread: put the blobs of one prepared batch; its records wait for the commit."""
        for item, atts, spools in prepared.to_store:
            level = self._level_for(item)
            for idx, att in enumerate(atts):
                sp = spools.get(idx)
                if sp is not None:
                    att.blob_ids = self.store.put_attachment(sp.file, level, sp.size)
                    stats.bytes_stored += sp.size
            payload = encode_version(item, atts)
            content_hash = self.store.put_version(payload, level)
            stats.bytes_stored += len(payload)
            pending.versions.append(
                VersionRecord(
                    kind=item.kind,
                    source_id=item.source_id,
                    container=item.container,
                    content_hash=content_hash,
                    version_key=item.version_key,
                    fields=item.fields,
                    attachments=[
                        {
                            "blob_ids": a.blob_ids,
                            "name": a.ref.name,
                            "safe_name": a.ref.safe_name,
                            "kind": a.ref.kind,
                            "size": a.size if a.size is not None else a.ref.size,
                            "sha256": a.sha256,
                            "identity": attachment_identity(a.ref).hex(),
                            **({"skipped": a.skipped} if a.skipped else {}),
                        }
                        for a in atts
                    ],
                    size=len(payload) + sum(a.size or 0 for a in atts if a.blob_ids),
                    level=level,
                )
            )
        pending.seen.extend(prepared.seen)
        pending.deleted.extend(prepared.deleted)
        pending.complete.extend(prepared.complete)
        pending.failures.extend(prepared.failures)
        if prepared.cursor is not None:
            key, state = prepared.cursor
            pending.cursors[key] = state

    async def _commit(self, run_id: int, pending: Commit, stats: RunStats) -> None:
        loop = asyncio.get_running_loop()
        result: CommitResult = await loop.run_in_executor(
            self._committer, self._durable_then_commit, run_id, pending
        )
        for kind, n in result.new.items():
            stats.new[kind] += n
        for kind, n in result.changed.items():
            stats.changed[kind] += n
        for kind, n in result.deleted.items():
            stats.deleted[kind] += n
        # Versions whose content turned out identical (a rerun after a crash) count as unchanged.
        for kind, n in result.unchanged.items():
            stats.unchanged[kind] += n

    def _durable_then_commit(self, run_id: int, pending: Commit) -> CommitResult:
        self.store.durable()
        return self.store.commit(run_id, pending)


class _TreeScope:
    """The run's scope, except that department and user listings are always wanted."""

    _TREE_KINDS = frozenset({"department", "user"})

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def includes_kind(self, kind: str) -> bool:
        return kind in self._TREE_KINDS or self._scope.includes_kind(kind)

    def includes_dept(self, dept_id: Any) -> bool:
        return True  # the whole tree is needed to resolve subtrees

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scope, name)


def _split(batch: Batch, size: int) -> list[Batch]:
    """A collector page cut into chunks of at most ``size`` items, so the number of items in the
    pipeline stays bounded even when an API answers with very large pages. Only the last chunk
    carries the page's cursor, deletions and completions: they apply once all of it is stored."""
    if len(batch.items) <= size:
        return [batch]
    parts = [batch.items[i : i + size] for i in range(0, len(batch.items), size)]
    chunks = [Batch(items=part) for part in parts[:-1]]
    chunks.append(
        Batch(
            items=parts[-1],
            cursor=batch.cursor,
            deleted=batch.deleted,
            deleted_kind=batch.deleted_kind,
            complete=batch.complete,
        )
    )
    return chunks


def _default_kind(collector: Any) -> str | None:
    kinds = getattr(collector, "kinds", None) or ()
    return kinds[0] if kinds else None


def _has_work(c: Commit) -> bool:
    return bool(c.versions or c.seen or c.deleted or c.complete or c.cursors or c.failures)


def _first(fields: Mapping[str, Any], raw: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in fields:
            return fields[key]
    for key in keys:
        if key in raw:
            return raw[key]
    for value in raw.values():  # raw is keyed by what produced it: look one level down
        if isinstance(value, Mapping):
            for key in keys:
                if key in value:
                    return value[key]
    return None
