"""The schema: created from empty by the migrations, identical to schema.py, upgrade-safe."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dingvault.catalog import (
    Catalog,
    CatalogError,
    CatalogInputError,
    CatalogSchemaError,
    default_catalog_url,
)
from dingvault.catalog.migrate import current_revision, head_revision
from dingvault.catalog.schema import EXPORT_ORDER, metadata


def test_open_creates_every_table_at_head(catalog_url: str) -> None:
    engine = sa.create_engine(catalog_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()

    with Catalog.open(catalog_url) as catalog, catalog.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert {t.name for t in EXPORT_ORDER} | {"alembic_version"} == names
        assert current_revision(conn) == head_revision()


def test_migrated_schema_matches_schema_module(catalog: Catalog) -> None:
    # Guards against schema.py and the frozen migration scripts drifting apart.
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_reopen_is_a_no_op_and_keeps_data(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        catalog.record_version("user", "u1", "h1")
    with Catalog.open(catalog_url) as catalog:
        assert catalog.get_item("user", "u1") is not None
        assert len(catalog.item_versions("user", "u1")) == 1


def test_unknown_newer_revision_is_refused(catalog_url: str) -> None:
    Catalog.open(catalog_url).close()
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(CatalogSchemaError, match="9999_future"):
        Catalog.open(catalog_url)


def test_sqlite_settings(tmp_path: Path) -> None:
    url = default_catalog_url(tmp_path)
    assert url == f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog.open(url) as catalog, catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    # The catalog is personal data: owner-only.
    assert stat.S_IMODE(os.stat(tmp_path / "catalog.db").st_mode) == 0o600


@pytest.mark.parametrize(
    "url",
    ["mysql://x@localhost/db", "not a url", "sqlite:////nonexistent-folder-dv/catalog.db"],
)
def test_bad_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(CatalogInputError):
        Catalog.open(url)


@pytest.mark.postgres
def test_unreachable_postgres_is_a_clear_error_without_password() -> None:
    # Port 1 on loopback: nothing listens there. The message must not carry the password.
    with pytest.raises(CatalogError) as info:
        Catalog.open("postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value)


def test_wal_files_are_owner_only_too(tmp_path: Path) -> None:
    with Catalog.open(default_catalog_url(tmp_path)) as catalog:
        catalog.record_version("user", "u1", "h")
        for suffix in ("-wal", "-shm"):
            path = tmp_path / f"catalog.db{suffix}"
            assert path.exists()
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_read_only_catalog_is_a_clear_error(tmp_path: Path) -> None:
    url = default_catalog_url(tmp_path)
    with Catalog.open(url) as catalog:
        catalog.record_version("user", "u1", "h")
    with Catalog.open(f"sqlite:///file:{tmp_path / 'catalog.db'}?mode=ro&uri=true") as read_only:
        assert read_only.get_item("user", "u1") is not None  # reads work
        with pytest.raises(CatalogError, match="nothing was written"):
            read_only.record_version("user", "u2", "h")
