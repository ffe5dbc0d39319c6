"""Catalog export and rebuild: the catalog as one streamable, self-checking object.

After each run the backup engine writes an export into the vault (an opaque tagged object, via the
vault's ``put_catalog_export``); :func:`rebuild_catalog` recreates a catalog from it on SQLite or
PostgreSQL, e.g. after the catalog disk is lost or when moving from SQLite to PostgreSQL.

Format (version 1)
------------------
A zstd stream (frame checksums on) of UTF-8 JSON lines::

    {"format": "dingvault-catalog-export", "format_version": 1, "schema_revision": "0001",
     "created_at": "...", "source_dialect": "sqlite", "tables": ["runs", ...]}      header
    {"table": "runs", "columns": ["id", "kind", ...]}                                 section start
    [1, "full", ...]                                                                  one row per line
    {"end_table": "runs", "rows": 12}                                                 section end
    ...                                                                               every table, in order
    {"end": true, "rows": {"runs": 12, ...}, "sha256": "<hex>"}                       trailer

Rows are JSON arrays in the section's column order; timestamps are RFC 3339 UTC strings, JSON
columns are nested JSON. ``sha256`` covers every byte (newlines included) before the trailer
line. A reader trusts nothing until the trailer checks out: a missing trailer means a truncated
export, a digest mismatch a corrupt one.

The export is a consistent snapshot: it reads every table in one transaction (SQLite WAL
snapshot; PostgreSQL REPEATABLE READ), while writers carry on, and streams rows (memory flat).
On SQLite a reader holds back WAL checkpoints while it reads, so the WAL file grows by whatever
is written during an export and shrinks at the next checkpoint after it.

Rebuild loads the whole export in one transaction into an *empty* database: the migrations
create the schema at the export's revision, the rows load into it, and the migrations then bring
it to the current revision (so exports stay rebuildable across dingvault upgrades). Any failure -- bad header, truncation, digest mismatch, constraint violation --
rolls everything back, so no half-loaded catalog is ever left looking valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import URL

from dingvault.catalog.catalog import Catalog
from dingvault.catalog.engine import WRITE_OPTION, create_catalog_engine, safe_url
from dingvault.catalog.errors import CatalogError, ExportFormatError, RebuildTargetNotEmptyError
from dingvault.catalog.migrate import current_revision, head_revision, known_revisions, upgrade
from dingvault.catalog.schema import EXPORT_ORDER
from dingvault.catalog.types import UTCDateTime

FORMAT_NAME = "dingvault-catalog-export"
FORMAT_VERSION = 1
MEDIA_TYPE = "application/vnd.dingvault.catalog-export+jsonl+zstd"
_ZSTD_LEVEL = 3  # fast; catalog text compresses well at any level
_READ_CHUNK = 1 << 20
_MAX_LINE = 64 << 20  # a longer "line" means the input is not an export
_INSERT_BATCH = 2000
_YIELD_PER = 2000
_LINES_PER_WRITE = 500


def export_catalog(catalog: Catalog, out_stream: IO[bytes]) -> dict[str, Any]:
    """Write a consistent export of ``catalog`` to ``out_stream`` (left open); returns its trailer.

    The returned dict has ``rows`` (table -> count), ``sha256`` and ``schema_revision``: worth
    putting into the vault object's tag.
    """
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    with compressor.stream_writer(out_stream, closefd=False) as writer:
        # Lines are hashed and compressed in runs of a few hundred: per-line calls were a
        # noticeable share of an export. The digest covers the same bytes either way. The run is
        # gathered in one buffer (each line's own object would cost orjson's 4 KiB result buffer).
        pending = bytearray()
        lines = 0

        def flush() -> None:
            nonlocal lines
            digest.update(pending)
            writer.write(pending)
            pending.clear()
            lines = 0

        def emit(obj: Any) -> None:
            nonlocal lines
            pending.extend(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
            lines += 1
            if lines >= _LINES_PER_WRITE:
                flush()

        with catalog.engine.connect() as conn:
            if catalog.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                header = {
                    "format": FORMAT_NAME,
                    "format_version": FORMAT_VERSION,
                    "schema_revision": current_revision(conn),
                    "created_at": datetime.now(UTC).isoformat(),
                    "source_dialect": catalog.dialect,
                    "tables": [str(t.name) for t in EXPORT_ORDER],
                }
                emit(header)
                for table in EXPORT_ORDER:
                    columns = [str(c.name) for c in table.columns]
                    emit({"table": str(table.name), "columns": columns})
                    stmt, times = _export_select(table, catalog.dialect)
                    result = conn.execution_options(yield_per=_YIELD_PER).execute(stmt)
                    n = 0
                    if times:
                        as_text = _SqliteTimeText()
                        for row in result:
                            values = list(row)
                            for i in times:
                                values[i] = as_text(values[i])
                            emit(values)
                            n += 1
                    else:
                        for row in result:
                            emit(list(row))
                            n += 1
                    emit({"end_table": str(table.name), "rows": n})
                    counts[str(table.name)] = n
        flush()
        trailer = {"end": True, "rows": counts, "sha256": digest.hexdigest()}
        writer.write(orjson.dumps(trailer) + b"\n")
    return {**trailer, "schema_revision": header["schema_revision"]}


def _export_select(table: sa.Table, dialect: str) -> tuple[sa.Select[Any], list[int]]:
    """The export query of ``table``, and the positions of timestamps it returns as SQLite's text.

    On SQLite the timestamps are read as the stored text and rewritten as RFC 3339 by
    :class:`_SqliteTimeText`: parsing each into a datetime only for orjson to print it again was
    most of an export's time. PostgreSQL returns datetimes, which orjson prints directly.
    """
    if dialect != "sqlite":
        return sa.select(*table.columns).order_by(*table.primary_key.columns), []
    times = [i for i, c in enumerate(table.columns) if isinstance(c.type, UTCDateTime)]
    columns = [
        sa.type_coerce(c, sa.String()).label(c.name) if i in times else c for i, c in enumerate(table.columns)
    ]
    return sa.select(*columns).order_by(*table.primary_key.columns), times


class _SqliteTimeText:
    """SQLite's stored UTC text ("YYYY-MM-DD HH:MM:SS.ffffff") -> the exact text orjson prints for
    the same aware UTC datetime, so an export is byte for byte the same from either database.

    Memoised: the rows of one batch share their capture and seen times.
    """

    __slots__ = ("_memo",)
    _MEMO_MAX = 4096

    def __init__(self) -> None:
        self._memo: dict[str, str] = {}

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return self._memo[value]
        except KeyError:
            pass
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            fraction = "" if value[20:] == "000000" else value[19:]
            text = f"{value[:10]}T{value[11:19]}{fraction}+00:00"
        else:  # not the format the catalog writes: let the parser and orjson decide
            text = orjson.loads(orjson.dumps(datetime.fromisoformat(value).replace(tzinfo=UTC)))
        if len(self._memo) >= self._MEMO_MAX:
            self._memo.clear()
        self._memo[value] = text
        return text


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The decompressed lines of an export (without newlines); ExportFormatError on bad input."""
    reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)
    pending = b""
    try:
        while True:
            chunk = reader.read(_READ_CHUNK)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if len(pending) > _MAX_LINE:
                raise ExportFormatError("not a catalog export: a line longer than 64 MiB")
            yield from complete
    except zstandard.ZstdError as exc:
        raise ExportFormatError(
            f"the catalog export is not a valid zstd stream (corrupt or truncated): {exc}"
        ) from None
    if pending:
        raise ExportFormatError("the catalog export is truncated (its last line is incomplete)")


class _ExportReader:
    """Walks an export's lines, keeping the running digest the trailer is checked against."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines = _lines(stream)
        self._digest = hashlib.sha256()

    def next_obj(self, what: str) -> Any:
        try:
            line = next(self._lines)
        except StopIteration:
            raise ExportFormatError(
                f"the catalog export is truncated: it ends where {what} was expected"
            ) from None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ExportFormatError(f"the catalog export is corrupt: {what} is not valid JSON") from None
        self.last_line = line
        return obj

    def consume(self) -> None:
        """Count the last line into the digest (every line before the trailer)."""
        self._digest.update(self.last_line + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def assert_exhausted(self) -> None:
        for line in self._lines:
            if line.strip():
                raise ExportFormatError("the catalog export has data after its trailer")


def read_export_header(stream: IO[bytes]) -> dict[str, Any]:
    """Read and check just the header of an export (format, version, schema revision)."""
    reader = _ExportReader(stream)
    return _check_header(reader.next_obj("the header"))


def _check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ExportFormatError("not a dingvault catalog export (its header does not name the format)")
    if header.get("format_version") != FORMAT_VERSION:
        raise ExportFormatError(
            f"catalog export format version {header.get('format_version')!r} is not supported "
            f"(this dingvault reads version {FORMAT_VERSION})"
        )
    revision = header.get("schema_revision")
    if revision not in known_revisions():
        raise ExportFormatError(
            f"catalog export has schema revision {revision!r}, which this dingvault does not know "
            "(written by a newer release?)"
        )
    tables = header.get("tables")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, str) for t in tables):
        raise ExportFormatError("catalog export header lists no tables")
    expected = [str(t.name) for t in EXPORT_ORDER]
    if revision == head_revision() and tables != expected:
        raise ExportFormatError(f"catalog export lists tables {tables!r}; expected {expected!r}")
    return header


# Tests set this to load a current export through the path older exports take.
_FORCE_REFLECTION = False


def _tables_for(conn: sa.Connection, header: dict[str, Any]) -> list[sa.Table]:
    """The tables to load the export's rows into, as the export's schema revision shaped them.

    A current export loads into schema.py's tables. An export from an older revision loads into
    the tables that revision's migrations created (read back from the database), and the
    migrations then carry the data forward to the current schema, exactly as they upgrade a live
    catalog -- so an old export in the vault stays rebuildable after dingvault upgrades.
    """
    if header["schema_revision"] == head_revision() and not _FORCE_REFLECTION:
        return list(EXPORT_ORDER)
    existing = set(sa.inspect(conn).get_table_names())
    reflected = sa.MetaData()
    tables = []
    for name in header["tables"]:
        if name not in existing:
            raise ExportFormatError(
                f"catalog export has a table {name!r} that schema revision {header['schema_revision']!r} lacks"
            )
        tables.append(sa.Table(name, reflected, autoload_with=conn))
    return tables


def rebuild_catalog(url: str | URL, export_stream: IO[bytes]) -> dict[str, int]:
    """Create the catalog at ``url`` (an empty database) from an export; returns table -> rows loaded.

    All or nothing: on any error the database is left as empty as it was found.
    """
    engine = create_catalog_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                existing = set(sa.inspect(conn).get_table_names())
                ours = {t.name for t in EXPORT_ORDER} | {"alembic_version"}
                if existing & ours:
                    raise RebuildTargetNotEmptyError(
                        f"{safe_url(url)} already holds catalog tables ({', '.join(sorted(existing & ours))}); "
                        "rebuild into an empty database"
                    )
                try:
                    counts = _load(conn, export_stream)
                except CatalogError:
                    raise
                except sa.exc.SQLAlchemyError as exc:
                    raise ExportFormatError(
                        f"the catalog export's rows do not fit the catalog: {exc}"
                    ) from exc
            return counts
    finally:
        engine.dispose()


def _load(conn: sa.Connection, stream: IO[bytes]) -> dict[str, int]:
    reader = _ExportReader(stream)
    header = _check_header(reader.next_obj("the header"))
    reader.consume()
    upgrade(conn, header["schema_revision"])
    counts: dict[str, int] = {}
    for table in _tables_for(conn, header):
        start = reader.next_obj(f"the start of table {table.name}")
        columns = [str(c.name) for c in table.columns]
        if not isinstance(start, dict) or start.get("table") != table.name:
            raise ExportFormatError(
                f"the catalog export is corrupt: expected the start of table {table.name}"
            )
        if start.get("columns") != columns:
            raise ExportFormatError(f"the catalog export's columns for {table.name} do not match the schema")
        reader.consume()
        time_columns = [
            i for i, c in enumerate(table.columns) if isinstance(c.type, UTCDateTime | sa.DateTime)
        ]
        batch: list[dict[str, Any]] = []
        n = 0
        while True:
            obj = reader.next_obj(f"a row of {table.name}")
            if isinstance(obj, dict):
                if obj.get("end_table") != table.name or obj.get("rows") != n:
                    raise ExportFormatError(f"the catalog export is corrupt at the end of table {table.name}")
                reader.consume()
                break
            if not isinstance(obj, list) or len(obj) != len(columns):
                raise ExportFormatError(
                    f"the catalog export is corrupt: a row of {table.name} has the wrong shape"
                )
            reader.consume()
            for i in time_columns:
                if obj[i] is not None:
                    obj[i] = _parse_time(obj[i], table.name)
            batch.append(dict(zip(columns, obj, strict=True)))
            n += 1
            if len(batch) >= _INSERT_BATCH:
                conn.execute(sa.insert(table), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(table), batch)
        counts[str(table.name)] = n
    trailer = reader.next_obj("the trailer")
    if not isinstance(trailer, dict) or trailer.get("end") is not True:
        raise ExportFormatError("the catalog export is corrupt: no trailer after the last table")
    if trailer.get("rows") != counts:
        raise ExportFormatError("the catalog export's trailer row counts do not match its contents")
    if trailer.get("sha256") != reader.hexdigest():
        raise ExportFormatError("the catalog export's digest does not match its contents (corrupt)")
    reader.assert_exhausted()
    upgrade(conn, "head")
    if conn.dialect.name == "postgresql":
        _reset_sequences(conn)
    return counts


def _parse_time(value: Any, table: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ExportFormatError(
            f"the catalog export is corrupt: bad timestamp {value!r} in {table}"
        ) from None
    if parsed.tzinfo is None:
        raise ExportFormatError(f"the catalog export is corrupt: timestamp {value!r} in {table} has no zone")
    return parsed.astimezone(UTC)


def _reset_sequences(conn: sa.Connection) -> None:
    """Rows were loaded with their ids: move each id sequence past the largest one."""
    for table in EXPORT_ORDER:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement is True:
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX({pk[0].name}), 1), "
                    f"MAX({pk[0].name}) IS NOT NULL) FROM {table.name}"
                ),
                {"t": table.name, "c": pk[0].name},
            )
