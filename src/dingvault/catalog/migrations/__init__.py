"""Alembic migration scripts for the catalog, run programmatically by ``dingvault.catalog.migrate``."""
