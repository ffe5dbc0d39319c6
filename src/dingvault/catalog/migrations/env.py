"""Alembic environment for the catalog.

Only the online mode is supported: ``dingvault.catalog.migrate`` always hands in an open
connection (``config.attributes["connection"]``), so migrations run inside the caller's
transaction -- on both SQLite and PostgreSQL the DDL is transactional, and a failed upgrade
leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

from dingvault.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the catalog migrations run only through dingvault.catalog.migrate (no connection given)"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode recreates tables when a later revision needs it.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
