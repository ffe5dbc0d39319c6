"""Errors the catalog raises. Each message says what went wrong and, where it helps, what to do."""

from __future__ import annotations


class CatalogError(Exception):
    """Base class for every catalog failure."""


class CatalogInputError(CatalogError, ValueError):
    """A caller passed a value the catalog refuses to store (empty id, naive datetime, bad level...)."""


class CatalogStateError(CatalogError):
    """The request contradicts the catalog's state (unknown run, run already finished, ...)."""


class CatalogBusyError(CatalogError):
    """The database stayed locked (or kept deadlocking) past the retries; nothing was written."""


class CatalogSchemaError(CatalogError):
    """The database's schema is not one this dingvault knows (newer release, foreign database...)."""


class ExportFormatError(CatalogError):
    """A catalog export is unreadable: wrong header, unknown format version, corrupt or truncated."""


class RebuildTargetNotEmptyError(CatalogError):
    """rebuild_catalog refuses to load into a database that already holds catalog tables."""
