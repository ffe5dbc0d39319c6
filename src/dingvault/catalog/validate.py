"""Input checks and normalisation for values entering the catalog.

Every check raises CatalogInputError naming the offending field, before any write starts, so a
bad record never leaves half a batch behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from dingvault.catalog.errors import CatalogInputError
from dingvault.catalog.schema import LEVELS

LEVELS_SET = frozenset(LEVELS)

MAX_KIND = 64
MAX_SOURCE_ID = 512
MAX_CONTAINER = 512
MAX_HASH = 128
MAX_VERSION_KEY = 256
MAX_SHORT = 128
MAX_MESSAGE = 8000

# fields key -> versions column
FIELD_COLUMNS = {
    "title": "title",
    "owner_userid": "owner_userid",
    "department": "department",
    "created_at": "source_created_at",
    "modified_at": "source_modified_at",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def text(name: str, value: Any, max_len: int, *, optional: bool = False) -> str | None:
    if value is None:
        if optional:
            return None
        raise CatalogInputError(f"{name} is required")
    if not isinstance(value, str):
        raise CatalogInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise CatalogInputError(f"{name} must not be empty")
    if len(value) > max_len:
        raise CatalogInputError(f"{name} is {len(value)} characters long; the limit is {max_len}")
    if "\x00" in value:
        # PostgreSQL refuses NUL in text; refuse it on SQLite too so both behave the same.
        raise CatalogInputError(f"{name} contains a NUL character")
    return value


def required_text(name: str, value: Any, max_len: int) -> str:
    result = text(name, value, max_len)
    assert result is not None
    return result


def aware_time(name: str, value: Any, *, optional: bool = True) -> datetime | None:
    """An aware UTC datetime from a datetime, an ISO 8601 string with offset, or epoch milliseconds."""
    if value is None:
        if optional:
            return None
        raise CatalogInputError(f"{name} is required")
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # the common case, checked cheaply
    if isinstance(value, bool):
        raise CatalogInputError(f"{name} must be a time, got a bool")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise CatalogInputError(f"{name}={value!r} is not a valid epoch-milliseconds time") from exc
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise CatalogInputError(f"{name}={value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise CatalogInputError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CatalogInputError(f"{name}={value.isoformat()} has no timezone; pass an aware time")
    return value.astimezone(UTC)


def level(value: Any) -> str:
    if value not in LEVELS:
        raise CatalogInputError(f"level must be one of {', '.join(LEVELS)}; got {value!r}")
    return str(value)


def non_negative_int(name: str, value: Any, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CatalogInputError(f"{name} must be a non-negative integer; got {value!r}")
    return value


def run_id(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CatalogInputError(f"run_id must be a positive integer or None; got {value!r}")
    return value


def version_key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CatalogInputError(f"version_key must be a string or an integer; got {type(value).__name__}")
    return text("version_key", str(value), MAX_VERSION_KEY)


def json_value(name: str, value: Any) -> Any:
    """Check that ``value`` serialises to JSON (the error otherwise surfaces deep in the driver)."""
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise CatalogInputError(f"{name} is not JSON-serialisable: {exc}") from None
    return value


def attachments(value: Any) -> list[dict[str, Any]]:
    if value is None or (not value and type(value) in (tuple, list)):
        return []  # the common case, without the slow ABC isinstance checks below
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise CatalogInputError("attachments must be a sequence of blob ids or mappings with 'blob_id'")
    result: list[dict[str, Any]] = []
    for i, ref in enumerate(value):
        if isinstance(ref, str):
            result.append({"blob_id": required_text(f"attachments[{i}]", ref, MAX_HASH)})
        elif isinstance(ref, Mapping):
            required_text(f"attachments[{i}].blob_id", ref.get("blob_id"), MAX_HASH)
            result.append(dict(ref))
        else:
            raise CatalogInputError(
                f"attachments[{i}] must be a blob id or a mapping, got {type(ref).__name__}"
            )
    if result and any(not isinstance(ref, str) for ref in value):
        json_value("attachments", result)
    return result


def plain(value: Any, max_len: int) -> bool:
    """True for a string :func:`text` would accept as is: the cheap test the hot paths make first
    (anything else goes through :func:`text`, which says what is wrong)."""
    return type(value) is str and 0 < len(value) <= max_len and "\x00" not in value


_MAX_TITLE = 100_000


def version_fields(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map the ``fields`` of a VersionRecord onto version columns; unknown keys go to ``extra``."""
    row: dict[str, Any] = {
        "title": None,
        "owner_userid": None,
        "department": None,
        "source_created_at": None,
        "source_modified_at": None,
        "extra": None,
    }
    if not fields:
        return row
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise CatalogInputError(f"fields must be a mapping, got {type(fields).__name__}")
    extra: dict[str, Any] = {}
    for key, value in fields.items():
        column = FIELD_COLUMNS.get(key)
        if column is None:
            if not isinstance(key, str):
                raise CatalogInputError(f"fields keys must be strings, got {key!r}")
            extra[key] = value
        elif value is None:
            continue
        elif column == "title":
            value = value if type(value) is str else str(value)
            row[column] = value if plain(value, _MAX_TITLE) else text("fields['title']", value, _MAX_TITLE)
        elif column in ("source_created_at", "source_modified_at"):
            fast = type(value) is datetime and value.tzinfo is UTC
            row[column] = value if fast else aware_time(f"fields[{key!r}]", value)
        else:
            # Department ids arrive as ints from the legacy API and as strings from v1.0.
            if type(value) is not str:
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise CatalogInputError(f"fields[{key!r}] must be a string or an integer; got {value!r}")
                value = str(value)
            row[column] = value if plain(value, MAX_SHORT) else text(f"fields[{key!r}]", value, MAX_SHORT)
    if extra:
        row["extra"] = json_value("fields (extra keys)", extra)
    return row


def message(value: Any) -> str:
    if not isinstance(value, str):
        value = str(value)
    value = value.replace("\x00", "\\x00")
    if len(value) > MAX_MESSAGE:
        value = value[: MAX_MESSAGE - 20] + " ...[truncated]"
    return value or "(no message)"
