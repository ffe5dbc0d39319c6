"""Schema migrations, run programmatically (no alembic.ini, no command line needed).

``Catalog.open`` calls :func:`upgrade_to_head` in one transaction, so an interrupted upgrade leaves
the previous schema intact (DDL is transactional on both SQLite and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from dingvault.catalog.errors import CatalogSchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent upgrades of one PostgreSQL database by several processes.
_PG_MIGRATION_LOCK = 0x64766361  # "dvca"


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this dingvault ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the catalog ships at least one migration"
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection, target: str = "head") -> None:
    """Migrate the database on ``connection`` (inside its transaction) to ``target``."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    current = current_revision(connection)
    if current is not None and current not in known_revisions():
        raise CatalogSchemaError(
            f"the catalog is at schema revision {current!r}, which this dingvault does not know "
            "(written by a newer release?); upgrade dingvault, or rebuild the catalog from the vault"
        )
    try:
        command.upgrade(_config(connection), target)
    except CommandError as exc:
        raise CatalogSchemaError(f"catalog migration to {target!r} failed: {exc}") from exc
