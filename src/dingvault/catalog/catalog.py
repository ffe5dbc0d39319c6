"""The Catalog: dingvault's relational metadata, on SQLite (embedded) or PostgreSQL.

See the package docstring (``dingvault.catalog``) for the API overview and the concurrency rules.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine

from dingvault.catalog import validate as v
from dingvault.catalog.bulk_write import BulkWriter
from dingvault.catalog.engine import WRITE_OPTION, create_catalog_engine, safe_url
from dingvault.catalog.errors import CatalogBusyError, CatalogError, CatalogInputError, CatalogStateError
from dingvault.catalog.migrate import current_revision, head_revision, upgrade
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
from dingvault.catalog.redact import redact_secrets
from dingvault.catalog.schema import (
    RUN_KINDS,
    RUN_STATUSES,
    cursors,
    items,
    run_errors,
    run_families,
    runs,
    snapshots,
    versions,
)

T = TypeVar("T")

DEFAULT_BATCH = 1000
_IN_CHUNK = 1000  # ids per IN (...) list: far below SQLite's 32766 bound-parameter limit
_GROUP_BATCH = 5000  # versions per statement set inside one WriteGroup transaction
_PAGE = 5000  # rows per page for the streaming readers
_WRITE_RETRIES = 5
FINAL_STATUSES = tuple(s for s in RUN_STATUSES if s != "running")


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _batched(values: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock timeout
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text


def _merge_counters(into: dict[str, Any], delta: Mapping[str, Any], path: str = "stats") -> None:
    """Add ``delta``'s numbers into ``into``, recursing into nested mappings."""
    for key, value in delta.items():
        if not isinstance(key, str):
            raise CatalogInputError(f"{path} keys must be strings, got {key!r}")
        where = f"{path}.{key}"
        if isinstance(value, Mapping):
            current = into.get(key)
            if current is None:
                current = into[key] = {}
            elif not isinstance(current, dict):
                raise CatalogInputError(f"{where} is a number in the run's stats, not a mapping")
            _merge_counters(current, value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            current = into.get(key, 0)
            if isinstance(current, dict):
                raise CatalogInputError(f"{where} is a mapping in the run's stats, not a number")
            into[key] = current + value
        else:
            raise CatalogInputError(f"{where} must be a number or a mapping of numbers; got {value!r}")


class Catalog:
    """A connection to one catalog database. Thread-safe: every call takes its own connection.

    Open with :meth:`Catalog.open`, which migrates the schema to the newest revision.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._bulk = BulkWriter(self._dialect)
        self._states_sql_cache: dict[int, str] = {}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str | URL, *, migrate: bool = True, echo: bool = False) -> Catalog:
        """Open the catalog at ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

        With ``migrate`` (the default) the schema is created or upgraded to the newest revision,
        in one transaction.
        """
        engine = create_catalog_engine(url, echo=echo)
        catalog = cls(engine)
        if migrate:
            try:
                # Usually already at head: check with a plain read so that opening never queues
                # behind a running writer; take the write lock only to actually migrate.
                if catalog._read(current_revision) != head_revision():
                    catalog._write(upgrade)
            except CatalogError:
                engine.dispose()
                raise
            except sa.exc.SQLAlchemyError as exc:
                engine.dispose()
                raise CatalogError(f"cannot open the catalog at {safe_url(url)}: {exc}") from exc
        return catalog

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._dialect

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one short write transaction, retrying lock timeouts and deadlocks.

        ``fn`` must be safe to repeat: a retried attempt starts from a rolled-back transaction.
        """
        delay = 0.05
        for attempt in range(1, _WRITE_RETRIES + 1):
            try:
                with self._engine.connect() as conn:
                    conn = conn.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        return fn(conn)
            except sa.exc.DBAPIError as exc:
                if not _is_retryable(exc):
                    if isinstance(exc, sa.exc.IntegrityError):
                        raise CatalogStateError(f"the catalog refused the write: {exc.orig}") from exc
                    # Disk full, read-only file, lost server...: nothing was committed.
                    raise CatalogError(
                        f"catalog write failed at {safe_url(self._engine.url)}: {exc.orig}; nothing was written"
                    ) from exc
                if attempt == _WRITE_RETRIES:
                    raise CatalogBusyError(
                        f"the catalog stayed locked after {attempt} attempts ({exc.orig}); nothing was written"
                    ) from exc
                time.sleep(delay * (1 + random.random()))
                delay *= 2
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            raise CatalogError(f"catalog read failed at {safe_url(self._engine.url)}: {exc.orig}") from exc

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that supports ON CONFLICT on either dialect."""
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # ------------------------------------------------------------------ items and versions

    def record_version(
        self,
        kind: str,
        source_id: str,
        content_hash: str,
        version_key: str | int | None = None,
        fields: Mapping[str, Any] | None = None,
        attachments: Sequence[str | Mapping[str, Any]] = (),
        level: str = "internal",
        run_id: int | None = None,
        *,
        size: int | None = None,
        container: str | None = None,
        captured_at: datetime | None = None,
    ) -> Outcome:
        """Record one observed state of an item; returns ``"new"``, ``"changed"`` or ``"unchanged"``.

        Idempotent: recording the content the item's latest version already has (same
        ``content_hash``) adds no version, whatever the other arguments -- so a rerun after a crash
        never duplicates. For throughput use :meth:`record_versions`.
        """
        record = VersionRecord(
            kind,
            source_id,
            content_hash,
            version_key,
            fields,
            attachments,
            level,
            run_id,
            size,
            container,
            captured_at,
        )
        return self.record_versions([record])[0]

    def record_versions(
        self, records: Iterable[VersionRecord], *, batch_size: int = DEFAULT_BATCH
    ) -> list[Outcome]:
        """Record many versions; one outcome per record, in order.

        Each batch of ``batch_size`` records is one transaction (all or nothing). Batches are
        validated before they are written, so a bad record raises CatalogInputError and leaves its
        batch unwritten (earlier batches stay committed; rerunning them is harmless).

        An item that changed back to an earlier content gets a new version (history is kept as
        it happened); only a repeat of the *latest* content is "unchanged". Seeing an item again
        clears its deleted-at-source mark.
        """
        if batch_size < 1:
            raise CatalogInputError("batch_size must be at least 1")
        outcomes: list[Outcome] = []
        for batch in _batched(records, batch_size):
            # One capture time per batch for records without their own: the batch is one
            # transaction anyway, and shared values are converted once (see bulk_write).
            now = v.utcnow()
            prepared = [self._prepare(record, now) for record in batch]
            outcomes.extend(self._write(lambda conn, p=prepared: self._record_batch(conn, p)))
        return outcomes

    def group(self) -> WriteGroup:
        """An empty :class:`WriteGroup`: collect writes into it, then apply it with :meth:`write_group`."""
        return WriteGroup()

    def write_group(self, group: WriteGroup) -> GroupResult:
        """Apply every write collected in ``group`` in ONE transaction, in the order they were added.

        All or nothing: a lock timeout or deadlock retries the whole group (see :meth:`_write`),
        and any other failure leaves nothing of it written. A cursor added to the group is
        therefore never committed ahead of the versions it covers.
        """
        if not group:
            return GroupResult()
        return self._write(lambda conn: group.apply(self, conn))

    @staticmethod
    def _prepare(record: VersionRecord, now: datetime) -> dict[str, Any]:
        """A checked record as the rows a batch writes. Hot: plain values take a fast path of
        inline tests (:func:`validate.plain`); anything else goes through the full checks."""
        if type(record) is not VersionRecord and not isinstance(record, VersionRecord):
            raise CatalogInputError(f"expected a VersionRecord, got {type(record).__name__}")
        kind, source_id, content_hash = record.kind, record.source_id, record.content_hash
        container, version_key, run_id = record.container, record.version_key, record.run_id
        size, level, attachments = record.size, record.level, record.attachments
        if not v.plain(kind, v.MAX_KIND):
            kind = v.required_text("kind", kind, v.MAX_KIND)
        if not v.plain(source_id, v.MAX_SOURCE_ID):
            source_id = v.required_text("source_id", source_id, v.MAX_SOURCE_ID)
        if container is not None and not v.plain(container, v.MAX_CONTAINER):
            container = v.text("container", container, v.MAX_CONTAINER, optional=True)
        row = v.version_fields(record.fields)
        if not v.plain(content_hash, v.MAX_HASH):
            content_hash = v.required_text("content_hash", content_hash, v.MAX_HASH)
        if version_key is not None and not v.plain(version_key, v.MAX_VERSION_KEY):
            version_key = v.version_key(version_key)
        if not (size is None or (type(size) is int and size >= 0)):
            size = v.non_negative_int("size", size)
        if not (run_id is None or (type(run_id) is int and run_id > 0)):
            run_id = v.run_id(run_id)
        row["content_hash"] = content_hash
        row["version_key"] = version_key
        row["captured_at"] = (
            now if record.captured_at is None else v.aware_time("captured_at", record.captured_at)
        )
        row["size"] = size
        row["level"] = level if type(level) is str and level in v.LEVELS_SET else v.level(level)
        row["attachments"] = v.attachments(attachments)
        row["run_id"] = run_id
        return {"kind": kind, "source_id": source_id, "container": container, "version": row}

    def _load_item_states(
        self, conn: sa.Connection, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Any]]:
        """(kind, source_id) -> [item_id, latest content hash, version_count]; locks rows on PostgreSQL."""
        by_kind: dict[str, list[str]] = {}
        for kind, source_id in keys:
            by_kind.setdefault(kind, []).append(source_id)
        states: dict[tuple[str, str], list[Any]] = {}
        for kind, source_ids in by_kind.items():
            for chunk in _chunks(sorted(source_ids), _IN_CHUNK):
                where = (items.c.kind == kind, items.c.source_id.in_(chunk))
                if self._dialect == "postgresql":
                    # Lock the item rows first, in a fixed order (concurrent writers of the same items
                    # queue instead of deadlocking), and only then read their latest versions in a new
                    # statement: under READ COMMITTED that read sees what the writer we waited for
                    # committed. Locking inside the join would re-check only the item row and pair it
                    # with a stale version row, so a concurrent duplicate would look "changed".
                    conn.execute(
                        sa.select(items.c.id).where(*where).order_by(items.c.source_id).with_for_update()
                    )
                # A plain driver statement: rendering a 1000-id IN list and building row objects
                # through SQLAlchemy cost more than the lookup itself.
                rows = conn.exec_driver_sql(self._states_sql(len(chunk)), (kind, *chunk)).fetchall()
                for item_id, source_id, content_hash, count in rows:
                    states[(kind, source_id)] = [item_id, content_hash, count]
        return states

    def _states_sql(self, n: int) -> str:
        sql = self._states_sql_cache.get(n)
        if sql is None:
            p = "%s" if self._dialect == "postgresql" else "?"
            sql = self._states_sql_cache[n] = (
                "SELECT i.id, i.source_id, v.content_hash, i.version_count "
                "FROM items AS i LEFT OUTER JOIN versions AS v ON v.id = i.latest_version_id "
                f"WHERE i.kind = {p} AND i.source_id IN ({', '.join([p] * n)})"
            )
        return sql

    def _reserve_ids(self, conn: sa.Connection, table: sa.Table, n: int) -> list[int]:
        """``n`` fresh primary keys for ``table``, so rows can be inserted with plain executemany.

        Why not INSERT ... RETURNING: SQLite cannot promise the order of RETURNING rows, so
        SQLAlchemy falls back to one INSERT per row -- a quarter of the batch time. On SQLite the
        write transaction holds the database's only write lock, so MAX(id) + 1... is safe; on
        PostgreSQL the ids come from the table's sequence, which is safe under concurrency.
        """
        if n == 0:
            return []
        if self._dialect == "postgresql":
            stmt = sa.text(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)"
            )
            return [int(i) for i in conn.execute(stmt, {"n": n}).scalars()]
        top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
        return list(range(top + 1, top + 1 + n))

    def _record_batch(self, conn: sa.Connection, prepared: list[dict[str, Any]]) -> list[Outcome]:
        keys = {(p["kind"], p["source_id"]) for p in prepared}
        states = self._load_item_states(conn, keys)
        missing = keys - states.keys()
        # Items created by this batch; on SQLite they are inserted once, complete, after the loop.
        fresh: dict[int, dict[str, Any]] = {}
        if missing:
            first: dict[tuple[str, str], dict[str, Any]] = {}
            for p in prepared:
                key = (p["kind"], p["source_id"])
                if key in missing and key not in first:
                    seen = p["version"]["captured_at"]
                    first[key] = {
                        "kind": key[0],
                        "source_id": key[1],
                        "container": p["container"],
                        "latest_version_id": None,
                        "version_count": 0,
                        "deleted_at_source": False,
                        "deleted_at": None,
                        "deleted_run_id": None,
                        "first_seen_at": seen,
                        "last_seen_at": seen,
                        "last_seen_run_id": p["version"]["run_id"],
                    }
            if self._dialect == "sqlite":
                # We hold the only write lock and just looked: nobody else can create these items.
                for (key, row), item_id in zip(
                    first.items(), self._reserve_ids(conn, items, len(first)), strict=True
                ):
                    row["id"] = item_id
                    fresh[item_id] = row
                    states[key] = [item_id, None, 0]
            else:
                # ON CONFLICT DO NOTHING: another writer may have created the item since we looked.
                self._bulk.insert_items(conn, list(first.values()))
                states.update(self._load_item_states(conn, missing))

        outcomes: list[Outcome] = []
        new_rows: list[dict[str, Any]] = []
        touched: dict[int, dict[str, Any]] = {}
        for p in prepared:
            state = states[(p["kind"], p["source_id"])]
            item_id, latest_hash, count = state
            row = p["version"]
            touch = touched.setdefault(item_id, {"b_id": item_id, "b_container": None, "b_run": None})
            if latest_hash == row["content_hash"]:
                outcomes.append(UNCHANGED)
            else:
                outcomes.append(NEW if count == 0 else CHANGED)
                count += 1
                state[1], state[2] = row["content_hash"], count
                version = {**row, "item_id": item_id, "seq": count}
                new_rows.append(version)
                touch["version"] = version
            touch["b_seen"] = row["captured_at"]
            if p["container"] is not None:
                touch["b_container"] = p["container"]
            if row["run_id"] is not None:
                touch["b_run"] = row["run_id"]

        for version, version_id in zip(
            new_rows, self._reserve_ids(conn, versions, len(new_rows)), strict=True
        ):
            version["id"] = version_id
        if fresh:
            for item_id, row in fresh.items():
                touch = touched.pop(item_id)
                row["last_seen_at"] = touch["b_seen"]
                row["last_seen_run_id"] = touch["b_run"]
                row["container"] = touch["b_container"] or row["container"]
                if "version" in touch:
                    row["latest_version_id"] = touch["version"]["id"]
                    row["version_count"] = touch["version"]["seq"]
            self._bulk.insert_items(conn, list(fresh.values()))
        if new_rows:
            self._bulk.insert_versions(conn, new_rows)

        changed_params = []
        seen_params = []
        for touch in touched.values():
            version = touch.pop("version", None)
            if version is not None:
                touch["b_latest"], touch["b_count"] = version["id"], version["seq"]
                changed_params.append(touch)
            else:
                seen_params.append(touch)
        self._bulk.update_items(conn, changed_params, seen_params)
        return outcomes

    def _record_group(self, conn: sa.Connection, prepared: list[dict[str, Any]]) -> list[Outcome]:
        """Record a group's versions inside its transaction, in batches of bounded size."""
        outcomes: list[Outcome] = []
        for batch in _chunks(prepared, _GROUP_BATCH):
            outcomes.extend(self._record_batch(conn, list(batch)))
        return outcomes

    def latest_version_keys(self, kind: str, source_ids: Iterable[str]) -> dict[str, str | None]:
        """source_id -> version key of its latest version, for the ids the catalog knows.

        Lets a full run skip re-downloading items whose API version marker has not moved.
        """
        kind = v.required_text("kind", kind, v.MAX_KIND)
        ids = sorted(set(source_ids))
        joined = items.join(versions, versions.c.id == items.c.latest_version_id)

        def query(conn: sa.Connection) -> dict[str, str | None]:
            result: dict[str, str | None] = {}
            for chunk in _chunks(ids, _IN_CHUNK):
                stmt = (
                    sa.select(items.c.source_id, versions.c.version_key)
                    .select_from(joined)
                    .where(items.c.kind == kind, items.c.source_id.in_(chunk))
                )
                result.update({sid: key for sid, key in conn.execute(stmt)})
            return result

        return self._read(query)

    def latest_states(
        self, kind: str, source_ids: Iterable[str]
    ) -> Iterator[tuple[str, bool, str | None, str, list[dict[str, Any]]]]:
        """(source_id, deleted at source, version key, content hash, attachments) of the latest
        version of each known item among ``source_ids``: what change detection compares against.

        One plain statement per chunk of ids, one short read each; the attachments JSON is decoded
        only where there are attachments.
        """
        kind = v.required_text("kind", kind, v.MAX_KIND)
        ids = sorted(set(source_ids))
        pg = self._dialect == "postgresql"
        p = "%s" if pg else "?"
        attachments = "v.attachments::text" if pg else "v.attachments"
        for chunk in _chunks(ids, _IN_CHUNK):
            sql = (
                f"SELECT i.source_id, i.deleted_at_source, v.version_key, v.content_hash, {attachments} "
                "FROM items AS i JOIN versions AS v ON v.id = i.latest_version_id "
                f"WHERE i.kind = {p} AND i.source_id IN ({', '.join([p] * len(chunk))})"
            )
            rows = self._read(lambda conn, q=sql, c=chunk: conn.exec_driver_sql(q, (kind, *c)).fetchall())
            for source_id, deleted, version_key, content_hash, raw in rows:
                refs = orjson.loads(raw) if raw and raw != "[]" else []
                yield source_id, bool(deleted), version_key, content_hash, refs

    def mark_seen(self, kind: str, source_ids: Iterable[str], run_id: int | None) -> int:
        """Note that known items were listed at the source (content not re-fetched).

        Clears their deleted mark; returns how many known items matched (unknown ids are ignored:
        they need :meth:`record_versions`).
        """
        kind = v.required_text("kind", kind, v.MAX_KIND)
        run = v.run_id(run_id)
        total = 0
        for chunk in _batched(source_ids, _IN_CHUNK):
            total += self._write(lambda conn, c=chunk: self._mark_seen(conn, kind, c, run))
        return total

    def _mark_seen(self, conn: sa.Connection, kind: str, source_ids: Sequence[str], run: int | None) -> int:
        total = 0
        now = v.utcnow()
        for chunk in _chunks(source_ids, _IN_CHUNK):
            stmt = (
                items.update()
                .where(items.c.kind == kind, items.c.source_id.in_(chunk))
                .values(
                    last_seen_at=now,
                    last_seen_run_id=sa.func.coalesce(
                        sa.literal(run, items.c.id.type), items.c.last_seen_run_id
                    ),
                    deleted_at_source=False,
                    deleted_at=None,
                    deleted_run_id=None,
                )
            )
            total += conn.execute(stmt).rowcount
        return total

    def mark_deleted(
        self, kind: str, source_ids: Iterable[str], run_id: int | None, *, at: datetime | None = None
    ) -> int:
        """Mark items as deleted at the source; returns how many live items were newly marked.

        Their versions stay (deleted at source never means deleted from the backup).
        """
        kind = v.required_text("kind", kind, v.MAX_KIND)
        run = v.run_id(run_id)
        when = v.aware_time("at", at) or v.utcnow()
        total = 0
        for chunk in _batched(source_ids, _IN_CHUNK):
            total += self._write(lambda conn, c=chunk: self._mark_deleted(conn, kind, c, run, when))
        return total

    def _mark_deleted(
        self, conn: sa.Connection, kind: str, source_ids: Sequence[str], run: int | None, when: datetime
    ) -> int:
        total = 0
        for chunk in _chunks(source_ids, _IN_CHUNK):
            stmt = (
                items.update()
                .where(
                    items.c.kind == kind,
                    items.c.source_id.in_(chunk),
                    items.c.deleted_at_source == sa.false(),
                )
                .values(deleted_at_source=True, deleted_at=when, deleted_run_id=run)
            )
            total += conn.execute(stmt).rowcount
        return total

    @staticmethod
    def _unseen_args(kind: str, run_id: Any, also_seen_by: Iterable[int]) -> tuple[str, int, list[int]]:
        """Checked (kind, run, sorted runs that count as having seen an item) for deletion detection."""
        kind = v.required_text("kind", kind, v.MAX_KIND)
        run = v.run_id(run_id)
        if run is None:
            raise CatalogInputError("run_id is required")
        seen_by = {run, *(v.run_id(r) for r in also_seen_by)} - {None}
        return kind, run, sorted(seen_by)  # type: ignore[type-var]

    @staticmethod
    def _unseen_base(kind: str, seen_by: list[int]) -> list[sa.ColumnElement[bool]]:
        return [
            items.c.kind == kind,
            items.c.deleted_at_source == sa.false(),
            sa.or_(items.c.last_seen_run_id.is_(None), items.c.last_seen_run_id.not_in(seen_by)),
        ]

    def _unseen_filter(
        self, kind: str, run_id: Any, container: str | None, also_seen_by: Iterable[int]
    ) -> list[sa.ColumnElement[bool]]:
        kind, _run, seen_by = self._unseen_args(kind, run_id, also_seen_by)
        container = v.text("container", container, v.MAX_CONTAINER, optional=True)
        conditions = self._unseen_base(kind, seen_by)
        if container is not None:
            conditions.append(items.c.container == container)
        return conditions

    def unseen_ids(
        self, kind: str, run_id: int, container: str | None = None, *, also_seen_by: Iterable[int] = ()
    ) -> Iterator[str]:
        """Live items of ``kind`` (in ``container``) that run ``run_id`` did not see; streamed.

        After a *complete* listing in a full run, these are the items deleted at the source.
        ``also_seen_by``: see :meth:`mark_unseen_deleted`.
        """
        return self._keyset_ids(self._unseen_filter(kind, run_id, container, also_seen_by))

    def mark_unseen_deleted(
        self, kind: str, run_id: int, container: str | None = None, *, also_seen_by: Iterable[int] = ()
    ) -> int:
        """Mark every live item of ``kind`` (in ``container``) that run ``run_id`` did not see as deleted.

        The set difference happens in SQL, so memory stays flat whatever the organisation's size.
        Call it only after the listing of that kind/container completed without error: a partial
        listing would otherwise "delete" what it did not reach.

        A listing resumed from a cursor was done partly by the interrupted run(s): pass their ids
        as ``also_seen_by`` (e.g. remember the run that started the listing in the cursor state),
        or the items only they saw would be marked deleted.
        """
        return self.mark_unseen_deleted_in(kind, run_id, [container], also_seen_by=also_seen_by)

    def mark_unseen_deleted_in(
        self,
        kind: str,
        run_id: int,
        containers: Iterable[str | None],
        *,
        also_seen_by: Iterable[int] = (),
    ) -> int:
        """:meth:`mark_unseen_deleted` for many completely listed containers of one kind at once.

        Same result as one call per container, in a few statements (``container IN (...)``); a
        ``None`` among ``containers`` means the whole kind was listed. Returns the items marked.
        """
        kind, run, seen_by = self._unseen_args(kind, run_id, also_seen_by)
        listed = self._listed_containers(containers)
        if listed == []:
            return 0
        when = v.utcnow()
        return self._write(lambda conn: self._mark_unseen_deleted(conn, kind, run, seen_by, listed, when))

    @staticmethod
    def _listed_containers(containers: Iterable[str | None]) -> list[str] | None:
        """The checked, sorted, distinct containers; None when one of them is None (the whole kind)."""
        listed: set[str] = set()
        for container in containers:
            checked = v.text("container", container, v.MAX_CONTAINER, optional=True)
            if checked is None:
                return None
            listed.add(checked)
        return sorted(listed)

    def _mark_unseen_deleted(
        self,
        conn: sa.Connection,
        kind: str,
        run: int,
        seen_by: list[int],
        containers: list[str] | None,
        when: datetime,
    ) -> int:
        base = self._unseen_base(kind, seen_by)
        values = {"deleted_at_source": True, "deleted_at": when, "deleted_run_id": run}
        if containers is None:
            return conn.execute(items.update().where(*base).values(values)).rowcount
        total = 0
        for chunk in _chunks(containers, _IN_CHUNK):
            stmt = items.update().where(*base, items.c.container.in_(chunk)).values(values)
            total += conn.execute(stmt).rowcount
        return total

    def live_ids(self, kind: str, container: str | None = None) -> Iterator[str]:
        """source_ids of the live (not deleted at source) items of ``kind``, sorted, streamed page by page.

        Each page is its own short read, so a long iteration never pins the database.
        """
        kind = v.required_text("kind", kind, v.MAX_KIND)
        container = v.text("container", container, v.MAX_CONTAINER, optional=True)
        conditions: list[sa.ColumnElement[bool]] = [
            items.c.kind == kind,
            items.c.deleted_at_source == sa.false(),
        ]
        if container is not None:
            conditions.append(items.c.container == container)
        return self._keyset_ids(conditions)

    def _keyset_ids(self, conditions: list[sa.ColumnElement[bool]]) -> Iterator[str]:
        after: str | None = None
        while True:
            stmt = sa.select(items.c.source_id).where(*conditions)
            if after is not None:
                stmt = stmt.where(items.c.source_id > after)
            stmt = stmt.order_by(items.c.source_id).limit(_PAGE)
            page = self._read(lambda conn, s=stmt: conn.execute(s).scalars().all())
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1]

    def get_item(self, kind: str, source_id: str) -> ItemInfo | None:
        stmt = sa.select(items).where(items.c.kind == kind, items.c.source_id == source_id)
        row = self._read(lambda conn: conn.execute(stmt).mappings().first())
        return ItemInfo(**row) if row else None

    def item_versions(self, kind: str, source_id: str) -> list[VersionInfo]:
        """Every version of one item, oldest first."""
        stmt = (
            self._version_select()
            .where(items.c.kind == kind, items.c.source_id == source_id)
            .order_by(versions.c.seq)
        )
        return self._read(lambda conn: [VersionInfo(**row) for row in conn.execute(stmt).mappings()])

    def iter_latest_versions(
        self, kind: str | None = None, *, include_deleted: bool = False
    ) -> Iterator[VersionInfo]:
        """The latest version of every item (of ``kind``), streamed page by page in item order."""
        after = 0
        while True:
            stmt = (
                self._version_select(latest_only=True)
                .add_columns(items.c.id.label("_item_id"))
                .where(items.c.id > after)
                .order_by(items.c.id)
                .limit(_PAGE)
            )
            if kind is not None:
                stmt = stmt.where(items.c.kind == kind)
            if not include_deleted:
                stmt = stmt.where(items.c.deleted_at_source == sa.false())
            page = self._read(lambda conn, s=stmt: conn.execute(s).mappings().all())
            for row in page:
                fields = dict(row)
                del fields["_item_id"]
                yield VersionInfo(**fields)
            if len(page) < _PAGE:
                return
            after = page[-1]["_item_id"]

    def iter_latest_blobs(self) -> Iterator[tuple[str, str, int, str, list[dict[str, Any]]]]:
        """(kind, source_id, seq, content_hash, attachments) of every live item's latest version.

        What a run's snapshot manifest needs and nothing more, in item order, streamed page by page
        (one keyset-paged query each, each its own short read): no row objects, no time parsing,
        and the attachments JSON is decoded only where there are attachments.
        """
        p = "%s" if self._dialect == "postgresql" else "?"
        attachments = "v.attachments::text" if self._dialect == "postgresql" else "v.attachments"
        sql = (
            f"SELECT i.id, i.kind, i.source_id, v.seq, v.content_hash, {attachments} "
            "FROM items AS i JOIN versions AS v ON v.id = i.latest_version_id "
            f"WHERE i.deleted_at_source = {p} AND i.id > {p} ORDER BY i.id LIMIT {p}"
        )
        after = 0
        while True:
            page = self._read(lambda conn, a=after: conn.exec_driver_sql(sql, (False, a, _PAGE)).fetchall())
            for _id, kind, source_id, seq, content_hash, raw in page:
                # No attachments is "[]" on both databases (orjson text; jsonb's text form).
                refs = orjson.loads(raw) if raw and raw != "[]" else []
                yield kind, source_id, seq, content_hash, refs
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    @staticmethod
    def _version_select(*, latest_only: bool = False) -> sa.Select[Any]:
        on = versions.c.id == items.c.latest_version_id if latest_only else versions.c.item_id == items.c.id
        return sa.select(
            versions.c.id,
            items.c.kind,
            items.c.source_id,
            *(c for c in versions.c if c.name not in ("id", "item_id")),
        ).select_from(items.join(versions, on))

    # ------------------------------------------------------------------ cursors

    def get_cursor(self, collector: str, container_key: str = "") -> dict[str, Any] | None:
        """The saved sync state of a collector for one container, or None if it never saved one."""
        stmt = sa.select(cursors.c.state).where(
            cursors.c.collector == collector, cursors.c.container_key == container_key
        )
        return self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())

    def set_cursor(
        self, collector: str, container_key: str, state: Mapping[str, Any], run_id: int | None = None
    ) -> None:
        """Save (replace) a collector's sync state for one container; committed when this returns.

        Call it after every page, once that page's versions are recorded, so a killed run resumes
        at the next page.
        """
        values = self._cursor_values(collector, container_key, state, run_id)
        self._write(lambda conn: self._set_cursor(conn, values))

    @staticmethod
    def _cursor_values(
        collector: str, container_key: str, state: Mapping[str, Any], run_id: int | None
    ) -> dict[str, Any]:
        collector = v.required_text("collector", collector, v.MAX_SHORT)
        if not isinstance(container_key, str) or len(container_key) > v.MAX_CONTAINER:
            raise CatalogInputError(f"container_key must be a string of at most {v.MAX_CONTAINER} characters")
        if not isinstance(state, Mapping):
            raise CatalogInputError(f"cursor state must be a mapping, got {type(state).__name__}")
        return {
            "collector": collector,
            "container_key": container_key,
            "state": v.json_value("cursor state", dict(state)),
            "updated_at": v.utcnow(),
            "run_id": v.run_id(run_id),
        }

    def _set_cursor(self, conn: sa.Connection, values: dict[str, Any]) -> None:
        stmt = self._insert(cursors).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[cursors.c.collector, cursors.c.container_key],
            set_={
                "state": stmt.excluded.state,
                "updated_at": stmt.excluded.updated_at,
                "run_id": stmt.excluded.run_id,
            },
        )
        conn.execute(stmt)

    def delete_cursor(self, collector: str, container_key: str = "") -> bool:
        """Forget a cursor (the next run of that collector starts from scratch); True if one existed."""
        stmt = cursors.delete().where(
            cursors.c.collector == collector, cursors.c.container_key == container_key
        )
        return bool(self._write(lambda conn: conn.execute(stmt).rowcount))

    def list_cursors(self, collector: str | None = None) -> list[CursorInfo]:
        stmt = sa.select(cursors).order_by(cursors.c.collector, cursors.c.container_key)
        if collector is not None:
            stmt = stmt.where(cursors.c.collector == collector)
        return self._read(lambda conn: [CursorInfo(**row) for row in conn.execute(stmt).mappings()])

    # ------------------------------------------------------------------ runs

    def start_run(
        self, kind: str, families: Iterable[str] = (), *, started_at: datetime | None = None
    ) -> int:
        """Open a run (``full``, ``incremental`` or ``event``) over data ``families``; returns its id."""
        if kind not in RUN_KINDS:
            raise CatalogInputError(f"run kind must be one of {', '.join(RUN_KINDS)}; got {kind!r}")
        family_list = sorted({v.required_text("family", f, 64) for f in families})
        values = {
            "kind": kind,
            "status": "running",
            "started_at": v.aware_time("started_at", started_at) or v.utcnow(),
            "stats": {},
        }

        def insert(conn: sa.Connection) -> int:
            run_id = conn.execute(sa.insert(runs).values(values).returning(runs.c.id)).scalar_one()
            if family_list:
                conn.execute(sa.insert(run_families), [{"run_id": run_id, "family": f} for f in family_list])
            return int(run_id)

        return self._write(insert)

    def add_run_stats(self, run_id: int, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Add counters to a running run's stats JSON; returns the new totals.

        ``delta`` is a nested mapping of numbers, merged by addition, e.g.
        ``{"items": {"new": 3, "changed": 1}, "api_calls": {"/topapi/processinstance/get": 4},
        "bytes": 1024}``. The catalog does not count for the engine: record_versions returns the
        outcomes, and the engine adds them here (per page, to keep transactions few).
        """
        if not isinstance(delta, Mapping):
            raise CatalogInputError(f"stats delta must be a mapping, got {type(delta).__name__}")
        _merge_counters({}, delta)  # validate before taking the write lock

        def update(conn: sa.Connection) -> dict[str, Any]:
            run = self._lock_run(conn, run_id)
            if run["status"] != "running":
                raise CatalogStateError(f"run {run_id} is {run['status']}; its stats are final")
            stats = dict(run["stats"] or {})
            _merge_counters(stats, delta)
            conn.execute(runs.update().where(runs.c.id == run_id).values(stats=stats))
            return stats

        return self._write(update)

    def _lock_run(self, conn: sa.Connection, run_id: int) -> sa.RowMapping:
        stmt = sa.select(runs.c.status, runs.c.stats).where(runs.c.id == run_id)
        if self._dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise CatalogStateError(f"no run {run_id} in the catalog")
        return row

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        error: str | None = None,
        stats: Mapping[str, Any] | None = None,
        finished_at: datetime | None = None,
    ) -> RunInfo:
        """Close a run as ``succeeded``, ``partial`` (finished with item errors), ``failed`` or ``interrupted``."""
        if status not in FINAL_STATUSES:
            raise CatalogInputError(
                f"final run status must be one of {', '.join(FINAL_STATUSES)}; got {status!r}"
            )
        if stats is not None:
            _merge_counters({}, stats)
        when = v.aware_time("finished_at", finished_at) or v.utcnow()
        message = redact_secrets(v.message(error)) if error is not None else None

        def update(conn: sa.Connection) -> None:
            run = self._lock_run(conn, run_id)
            if run["status"] != "running":
                raise CatalogStateError(f"run {run_id} is already {run['status']}")
            merged = dict(run["stats"] or {})
            if stats:
                _merge_counters(merged, stats)
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=when, error=message, stats=merged)
            )

        self._write(update)
        info = self.get_run(run_id)
        assert info is not None
        return info

    def mark_interrupted_runs(
        self, *, started_before: datetime | None = None, kinds: Iterable[str] | None = None
    ) -> list[int]:
        """Close runs left ``running`` by a crash as ``interrupted``; returns their ids.

        Call at process start, before starting runs. Another live writer's run must not be caught:
        in the service the scheduler and the event listener share the catalog, so each passes the
        run ``kinds`` it owns (the scheduler ``["full", "incremental"]``, the listener
        ``["event"]``); with several workers, also pass ``started_before`` (e.g. this process's
        start time) so runs that live workers started later stay open.
        """
        before = v.aware_time("started_before", started_before)
        stmt = runs.update().where(runs.c.status == "running")
        if before is not None:
            stmt = stmt.where(runs.c.started_at < before)
        if kinds is not None:
            kind_list = list(kinds)
            for kind in kind_list:
                if kind not in RUN_KINDS:
                    raise CatalogInputError(f"run kind must be one of {', '.join(RUN_KINDS)}; got {kind!r}")
            stmt = stmt.where(runs.c.kind.in_(kind_list))
        stmt = stmt.values(
            status="interrupted", finished_at=v.utcnow(), error="the process stopped during the run"
        )
        return self._write(lambda conn: [int(r) for r in conn.execute(stmt.returning(runs.c.id)).scalars()])

    def get_run(self, run_id: int) -> RunInfo | None:
        found = self._runs(sa.select(runs).where(runs.c.id == run_id))
        return found[0] if found else None

    def list_runs(
        self, *, limit: int = 50, kind: str | None = None, status: str | None = None
    ) -> list[RunInfo]:
        """Runs, newest first."""
        stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if kind is not None:
            stmt = stmt.where(runs.c.kind == kind)
        if status is not None:
            stmt = stmt.where(runs.c.status == status)
        return self._runs(stmt)

    def last_successful_run(
        self, kind: str | None = None, family: str | None = None, *, statuses: Sequence[str] = ("succeeded",)
    ) -> RunInfo | None:
        """The most recently finished run with one of ``statuses``, of run ``kind``, covering ``family``."""
        stmt = sa.select(runs).where(runs.c.status.in_(list(statuses)))
        if kind is not None:
            stmt = stmt.where(runs.c.kind == kind)
        if family is not None:
            stmt = stmt.where(
                runs.c.id.in_(sa.select(run_families.c.run_id).where(run_families.c.family == family))
            )
        found = self._runs(stmt.order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(1))
        return found[0] if found else None

    def last_successful_runs(self) -> dict[tuple[str, str], RunInfo]:
        """(run kind, family) -> the latest succeeded run, for the status page."""
        latest = (
            sa.select(runs.c.kind, run_families.c.family, sa.func.max(runs.c.id).label("run_id"))
            .select_from(runs.join(run_families, run_families.c.run_id == runs.c.id))
            .where(runs.c.status == "succeeded")
            .group_by(runs.c.kind, run_families.c.family)
        )
        pairs = self._read(lambda conn: conn.execute(latest).all())
        by_id = {r.id: r for r in self._runs(sa.select(runs).where(runs.c.id.in_({p.run_id for p in pairs})))}
        return {(p.kind, p.family): by_id[p.run_id] for p in pairs}

    def _runs(self, stmt: sa.Select[Any]) -> list[RunInfo]:
        def query(conn: sa.Connection) -> list[RunInfo]:
            rows = conn.execute(stmt).mappings().all()
            if not rows:
                return []
            families: dict[int, list[str]] = {}
            fam_stmt = (
                sa.select(run_families.c.run_id, run_families.c.family)
                .where(run_families.c.run_id.in_([r["id"] for r in rows]))
                .order_by(run_families.c.family)
            )
            for run_id, family in conn.execute(fam_stmt):
                families.setdefault(run_id, []).append(family)
            return [RunInfo(**{**row, "families": tuple(families.get(row["id"], ()))}) for row in rows]

        return self._read(query)

    def record_run_error(
        self,
        run_id: int,
        error_class: str,
        message: str,
        *,
        kind: str | None = None,
        source_id: str | None = None,
    ) -> None:
        """Keep one failure against a run (credentials in the message are redacted)."""
        self.record_run_errors(run_id, [RunErrorRecord(error_class, message, kind, source_id)])

    def record_run_errors(self, run_id: int, errors: Iterable[RunErrorRecord]) -> int:
        rows = self._run_error_rows(run_id, errors)
        if rows:
            self._write(lambda conn: conn.execute(sa.insert(run_errors), rows))
        return len(rows)

    @staticmethod
    def _run_error_rows(run_id: int, errors: Iterable[RunErrorRecord]) -> list[dict[str, Any]]:
        run = v.run_id(run_id)
        now = v.utcnow()
        return [
            {
                "run_id": run,
                "kind": v.text("kind", e.kind, v.MAX_KIND, optional=True),
                "source_id": v.text("source_id", e.source_id, v.MAX_SOURCE_ID, optional=True),
                "error_class": v.required_text("error_class", e.error_class, v.MAX_SHORT),
                "message": redact_secrets(v.message(e.message)),
                "occurred_at": now,
            }
            for e in errors
        ]

    def run_errors(self, run_id: int, *, limit: int = 1000, after_id: int = 0) -> list[RunErrorInfo]:
        """A run's errors in the order they happened; page with ``after_id``."""
        stmt = (
            sa.select(run_errors)
            .where(run_errors.c.run_id == run_id, run_errors.c.id > after_id)
            .order_by(run_errors.c.id)
            .limit(limit)
        )
        return self._read(lambda conn: [RunErrorInfo(**row) for row in conn.execute(stmt).mappings()])

    # ------------------------------------------------------------------ snapshots

    def record_snapshot(
        self,
        vault_snapshot_id: str,
        run_id: int | None,
        counts: Mapping[str, int],
        *,
        created_at: datetime | None = None,
    ) -> int:
        """Note a vault snapshot (``counts``: kind -> items in it); idempotent on the snapshot id."""
        snapshot_id = v.required_text("vault_snapshot_id", vault_snapshot_id, v.MAX_HASH)
        if not isinstance(counts, Mapping):
            raise CatalogInputError("counts must be a mapping of kind -> number of items")
        clean = {
            v.required_text("counts kind", k, v.MAX_KIND): v.non_negative_int(
                f"counts[{k!r}]", n, optional=False
            )
            for k, n in counts.items()
        }
        values = {
            "vault_snapshot_id": snapshot_id,
            "run_id": v.run_id(run_id),
            "created_at": v.aware_time("created_at", created_at) or v.utcnow(),
            "item_count": sum(n for n in clean.values() if n is not None),
            "counts": clean,
        }

        def insert(conn: sa.Connection) -> int:
            conn.execute(self._insert(snapshots).values(values).on_conflict_do_nothing())
            found = conn.execute(
                sa.select(snapshots.c.id).where(snapshots.c.vault_snapshot_id == snapshot_id)
            ).scalar_one()
            return int(found)

        return self._write(insert)

    def list_snapshots(self, *, limit: int = 100, before_id: int | None = None) -> list[SnapshotInfo]:
        """Snapshots, newest first; page with ``before_id``."""
        stmt = sa.select(snapshots).order_by(snapshots.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(snapshots.c.id < before_id)
        return self._read(lambda conn: [SnapshotInfo(**row) for row in conn.execute(stmt).mappings()])

    def get_snapshot(self, vault_snapshot_id: str) -> SnapshotInfo | None:
        stmt = sa.select(snapshots).where(snapshots.c.vault_snapshot_id == vault_snapshot_id)
        row = self._read(lambda conn: conn.execute(stmt).mappings().first())
        return SnapshotInfo(**row) if row else None

    # ------------------------------------------------------------------ status

    def counts_per_kind(self) -> dict[str, KindCounts]:
        """kind -> live items, items deleted at source, and versions kept."""
        item_stmt = sa.select(items.c.kind, items.c.deleted_at_source, sa.func.count()).group_by(
            items.c.kind, items.c.deleted_at_source
        )
        version_stmt = (
            sa.select(items.c.kind, sa.func.count(versions.c.id))
            .select_from(items.join(versions, versions.c.item_id == items.c.id))
            .group_by(items.c.kind)
        )

        def query(conn: sa.Connection) -> dict[str, KindCounts]:
            acc: dict[str, dict[str, int]] = {}
            for kind, deleted, n in conn.execute(item_stmt):
                acc.setdefault(kind, {"live": 0, "deleted": 0, "versions": 0})[
                    "deleted" if deleted else "live"
                ] = n
            for kind, n in conn.execute(version_stmt):
                acc.setdefault(kind, {"live": 0, "deleted": 0, "versions": 0})["versions"] = n
            return {kind: KindCounts(kind, **c) for kind, c in sorted(acc.items())}

        return self._read(query)


_Op = Callable[[Catalog, sa.Connection, GroupResult], None]


class WriteGroup:
    """Catalog writes collected now and applied later, all in ONE transaction, by
    :meth:`Catalog.write_group` -- e.g. the backup's group commit: versions, seen and deleted
    marks, deletion detection for completely listed containers, cursors and run errors.

    Every method checks its input at once (CatalogInputError, nothing collected), so a group that
    was built can only fail on the database side, and then as a whole. Applying a group changes
    nothing in it, so a retried transaction applies exactly the same writes.
    """

    def __init__(self) -> None:
        self._ops: list[_Op] = []
        self._versions: list[dict[str, Any]] | None = None  # the open run of add_version calls
        self._now = v.utcnow()

    def __bool__(self) -> bool:
        return bool(self._ops)

    def add_version(self, record: VersionRecord) -> None:
        """Record one version (see :meth:`Catalog.record_versions`); consecutive calls share statements."""
        prepared = Catalog._prepare(record, self._now)
        if self._versions is None:
            self._versions = batch = [prepared]
            self._ops.append(lambda cat, conn, res: res.outcomes.extend(cat._record_group(conn, batch)))
        else:
            self._versions.append(prepared)

    def record_versions(self, records: Iterable[VersionRecord]) -> None:
        for record in records:
            self.add_version(record)

    def _add(self, op: _Op) -> None:
        self._versions = None
        self._ops.append(op)

    def mark_seen(self, kind: str, source_ids: Iterable[str], run_id: int | None) -> None:
        kind = v.required_text("kind", kind, v.MAX_KIND)
        run = v.run_id(run_id)
        ids = list(source_ids)

        def op(cat: Catalog, conn: sa.Connection, res: GroupResult) -> None:
            res.seen += cat._mark_seen(conn, kind, ids, run)

        self._add(op)

    def mark_deleted(
        self, kind: str, source_ids: Iterable[str], run_id: int | None, *, at: datetime | None = None
    ) -> None:
        kind = v.required_text("kind", kind, v.MAX_KIND)
        run = v.run_id(run_id)
        when = v.aware_time("at", at) or v.utcnow()
        ids = list(source_ids)

        def op(cat: Catalog, conn: sa.Connection, res: GroupResult) -> None:
            n = cat._mark_deleted(conn, kind, ids, run, when)
            res.deleted[kind] = res.deleted.get(kind, 0) + n

        self._add(op)

    def mark_unseen_deleted(
        self,
        kind: str,
        run_id: int,
        containers: Iterable[str | None] = (None,),
        *,
        also_seen_by: Iterable[int] = (),
    ) -> None:
        """:meth:`Catalog.mark_unseen_deleted_in`: every container of ``kind`` whose listing completed."""
        kind, run, seen_by = Catalog._unseen_args(kind, run_id, also_seen_by)
        listed = Catalog._listed_containers(containers)
        if listed == []:
            return

        def op(cat: Catalog, conn: sa.Connection, res: GroupResult) -> None:
            n = cat._mark_unseen_deleted(conn, kind, run, seen_by, listed, v.utcnow())
            res.deleted[kind] = res.deleted.get(kind, 0) + n

        self._add(op)

    def set_cursor(
        self, collector: str, container_key: str, state: Mapping[str, Any], run_id: int | None = None
    ) -> None:
        values = Catalog._cursor_values(collector, container_key, state, run_id)
        self._add(lambda cat, conn, res: cat._set_cursor(conn, values))

    def record_run_errors(self, run_id: int, errors: Iterable[RunErrorRecord]) -> None:
        rows = Catalog._run_error_rows(run_id, errors)
        if not rows:
            return

        def op(cat: Catalog, conn: sa.Connection, res: GroupResult) -> None:
            conn.execute(sa.insert(run_errors), rows)

        self._add(op)

    def apply(self, catalog: Catalog, conn: sa.Connection) -> GroupResult:
        """Run the collected writes on ``conn`` (inside the caller's transaction)."""
        result = GroupResult()
        for op in self._ops:
            op(catalog, conn, result)
        return result
