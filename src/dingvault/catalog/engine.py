"""Database engines for the catalog: SQLite (embedded default) and PostgreSQL.

SQLite settings and why:

- ``journal_mode=WAL``: readers (console, status) never block the writer and vice versa.
- ``synchronous=NORMAL``: with WAL a power cut can lose the last commits but never corrupts the
  database; the vault is the source of truth and the catalog can be rebuilt from it.
- ``foreign_keys=ON``: SQLite ignores foreign keys unless told.
- a busy timeout: writers (the scheduler's runs and the event listener) queue for the single
  write lock instead of failing at once.
- write transactions start with ``BEGIN IMMEDIATE``: they take the write lock up front, so the busy
  timeout applies. A deferred transaction that reads first and writes later can fail with
  "database is locked" at the upgrade without waiting at all -- the classic SQLite trap.

pysqlite's own transaction handling is switched off (it never issues BEGIN before DDL), and
SQLAlchemy's ``begin`` event issues the BEGIN itself (the recipe from SQLAlchemy's SQLite docs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from dingvault.catalog.errors import CatalogInputError

SQLITE_BUSY_TIMEOUT_S = 30.0
# Page cache per connection (KiB). The default 2 MiB makes inserts into the large, randomly keyed
# indexes (content hashes) re-read pages all the time; 16 MiB keeps their upper levels in memory
# (a few MiB even for millions of rows). A backup keeps 3-4 connections busy (change detection,
# commits, the run's own calls), and each cache fills up to this size as the catalog grows: at
# 64 MiB SQLite held 85 MB at the large company's peak, at 16 MiB 51-66 MB, for the same records
# per CPU-second (bench/backup.py --memory-report). A backup run also caps all connections together
# (dingvault.backup.memory.limit_sqlite_heap), so a busy connection may use its whole cache while
# the total stays bounded.
SQLITE_CACHE_KIB = 16384
# PostgreSQL: never wait forever -- for a server that does not answer, or for a row lock held by a
# stuck transaction (the write is then retried, and finally reported as CatalogBusyError).
PG_CONNECT_TIMEOUT_S = 10
PG_LOCK_TIMEOUT_MS = 30_000
# Execution option marking a connection whose transactions write (see module docstring).
WRITE_OPTION = "dingvault_catalog_write"


def default_catalog_url(home: str | os.PathLike[str]) -> str:
    """``sqlite:///<home>/catalog.db``: the embedded default."""
    return f"sqlite:///{Path(home) / 'catalog.db'}"


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_catalog_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An Engine configured for the catalog; supports ``sqlite`` and ``postgresql`` URLs."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise CatalogInputError(f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    common: dict[str, Any] = {
        "echo": echo,
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
    }
    if backend == "sqlite":
        return _sqlite_engine(parsed, common)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            # psycopg 3 is the driver dingvault ships (and the one the engine setup below expects);
            # a bare "postgresql://" means it too.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _postgresql_engine(parsed, common)
    raise CatalogInputError(
        f"unsupported catalog database {backend!r} in {safe_url(parsed)}: use sqlite:/// or postgresql+psycopg://"
    )


def _postgresql_engine(url: URL, common: dict[str, Any]) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **common)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SET outside any transaction, so it holds for the session (the URL's own options stay).
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute(f"SET lock_timeout = {int(PG_LOCK_TIMEOUT_MS)}")
            # psycopg prepares statements it runs often; PostgreSQL may then reuse a generic plan
            # made while the tables were small, and the batch lookups ("source_id IN (<1000 ids>)")
            # became sequential scans, 30x slower. Custom plans keep them index scans.
            dbapi_connection.execute("SET plan_cache_mode = force_custom_plan")
        finally:
            dbapi_connection.autocommit = autocommit

    return engine


def _sqlite_engine(url: URL, common: dict[str, Any]) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        if not path.parent.is_dir():
            raise CatalogInputError(f"catalog folder {path.parent} does not exist")
        if not path.exists():
            # The catalog is personal data: create it readable by the owner only.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **common)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see module docstring)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine
