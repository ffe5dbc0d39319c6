"""Recreate the catalog from the vault alone (the vault is the source of truth).

After every run the engine stores a catalog export in the vault (tag ``catalog``). Rebuilding
loads the newest one (or a chosen one) into an empty database. An existing SQLite catalog is
moved aside, never deleted, when the caller says ``replace=True``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from dingvault.backup.vault_store import CATALOG_EXPORT_TAG
from dingvault.catalog import rebuild_catalog
from dingvault.vault import CatalogExport, Vault, VaultError


class RebuildError(Exception):
    pass


def choose_export(vault: Vault, export_id: str | None = None) -> CatalogExport:
    if export_id:
        return vault.load_catalog_export(export_id)
    exports = vault.list_catalog_exports(tag=CATALOG_EXPORT_TAG)
    if not exports:
        raise RebuildError("the vault holds no catalog export yet (one is written after every backup run)")
    return exports[-1]


def _sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def move_aside(url: str) -> Path | None:
    """Move an existing SQLite catalog (and its WAL files) to ``<name>.replaced-<time>``."""
    path = _sqlite_path(url)
    if path is None or not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.replaced-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    return target


def rebuild_from_vault(
    vault: Vault, catalog_url: str, *, export_id: str | None = None, replace: bool = False
) -> dict[str, Any]:
    try:
        export = choose_export(vault, export_id)
    except VaultError as exc:
        raise RebuildError(str(exc)) from exc
    moved = move_aside(catalog_url) if replace else None
    with vault.open_catalog_export(export.export_id) as stream:
        counts = rebuild_catalog(catalog_url, stream)
    return {
        "export_id": export.export_id,
        "time": export.time,
        "rows": counts,
        "moved_aside": str(moved) if moved else None,
    }
