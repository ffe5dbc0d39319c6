"""Fixtures: every catalog test runs on SQLite and on PostgreSQL.

PostgreSQL is 127.0.0.1:5432, trust auth, database ``test`` (user ``postgres``, else ``root``).
Each test gets a throwaway schema, dropped afterwards; the PostgreSQL parametrisation skips with
the reason when the server is unreachable.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dingvault.catalog import Catalog

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")

DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@functools.cache
def postgres_user() -> tuple[str | None, str]:
    """(a user that can connect, "") or (None, why not)."""
    reasons = []
    for user in PG_USERS:
        try:
            with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, connect_timeout=3):
                return user, ""
        except psycopg.Error as exc:
            reasons.append(f"{user}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}")
    return None, f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}/{PG_DB} ({'; '.join(reasons)})"


class PgSchemas:
    """Creates throwaway schemas and drops them all at teardown."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=self.user, autocommit=True)

    def new_url(self) -> str:
        name = f"dvcat_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        self.created.append(name)
        return f"postgresql+psycopg://{self.user}@{PG_HOST}:{PG_PORT}/{PG_DB}?options=-csearch_path%3D{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        with self._admin() as conn:
            # A connection leaked by a failing test must not hang the teardown.
            conn.execute("SET lock_timeout = '10s'")
            for name in self.created:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def new_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """new_url("sqlite" | "postgresql") -> the URL of a fresh, empty database."""
    schemas: PgSchemas | None = None
    counter = 0

    def make(dialect: str) -> str:
        nonlocal schemas, counter
        if dialect == "sqlite":
            counter += 1
            return f"sqlite:///{tmp_path / f'catalog-{counter}.db'}"
        user, reason = postgres_user()
        if user is None:
            pytest.skip(reason)
        if schemas is None:
            schemas = PgSchemas(user)
        return schemas.new_url()

    yield make
    if schemas is not None:
        schemas.drop_all()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def catalog_url(dialect: str, new_url: Callable[[str], str]) -> str:
    return new_url(dialect)


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()
