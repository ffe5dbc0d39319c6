"""The engine with a PostgreSQL catalog (the at-scale shape): same results as on SQLite."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import sql

from dingvault.backup.engine import BackupEngine
from dingvault.backup.session import init_home, open_session
from dingvault.backup.vault_store import VaultCatalogStore
from dingvault.home import open_home
from dingvault.source.items import CompleteListing
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

from .fakes import ScriptedCollector, att, make_item

PG = {"host": "127.0.0.1", "port": 5432, "dbname": "test"}


def _pg_user() -> str | None:
    for user in ("postgres", "root"):
        try:
            with psycopg.connect(user=user, connect_timeout=3, **PG):
                return user
        except psycopg.Error:
            continue
    return None


@pytest.fixture
def pg_url():
    user = _pg_user()
    if user is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432/test (users postgres, root)")
    schema = f"dvbackup_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(user=user, autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield f"postgresql+psycopg://{user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(user=user, autocommit=True, **PG) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _collector(n: int, version: str = "1") -> ScriptedCollector:
    pages = [
        [make_item("approval", f"a{p}-{i}", version, attachments=[att(f"f{p}-{i}")]) for i in range(n)]
        for p in range(3)
    ]
    contents = {f"f{p}-{i}": b"%d-%d" % (p, i) for p in range(3) for i in range(n)}
    return ScriptedCollector(
        "approvals", "approvals", pages, contents=contents, complete=[CompleteListing("approval", "c1")]
    )


def _run(home, collector, mode="full"):
    with open_session(home, "pw") as s:
        store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
        try:
            return asyncio.run(BackupEngine(store, [collector]).run(mode))
        finally:
            store.close()


@pytest.mark.postgres
def test_backup_with_a_postgresql_catalog(tmp_path, pg_url):
    home = open_home(tmp_path / "home")
    init_home(home, "pw", kdf=FAST_KDF_FOR_TESTS, catalog_url=pg_url)
    first = _run(home, _collector(10))
    assert first.status == "ok" and first.new["approval"] == 30
    fewer = _collector(10)
    fewer.pages[2] = fewer.pages[2][:5]
    with open_session(home, "pw") as s:
        s.catalog.delete_cursor("approvals", "")
    again = _run(home, fewer)
    assert again.unchanged["approval"] == 25 and again.deleted["approval"] == 5
    assert sum(fewer.downloads.values()) == 0
    with open_session(home, "pw") as s:
        counts = s.catalog.counts_per_kind()["approval"]
        assert (counts.live, counts.deleted, counts.versions) == (25, 5, 30)
        (latest, older) = s.vault.snapshots()[::-1][:2]
        assert latest.records == 25 and older.records == 30
