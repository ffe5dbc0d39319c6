"""What targeted fetches share: the fall-back signal, and look-ups in what the vault already holds.

A targeted fetch reads the one record an event names and must store exactly the item the family's
collector would store. Some of what a collector knows comes from reading the whole directory
(who a unionId is, as whom a space is read); a targeted fetch takes it from the latest versions
in the vault instead - no API call - and falls back to the family's incremental when the vault
does not know it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from dingvault.backup.payload import decode_version
from dingvault.source.collectors.base import bounded_map

T = TypeVar("T")
R = TypeVar("R")

# Records of one family read directly in one run, at most: beyond that a burst (a bulk import,
# a mass move) costs fewer calls as the family's incremental, whose cost does not grow with it.
MAX_RECORDS = 100
CONCURRENCY = 8


class FallBack(Exception):
    """The record cannot be read directly (or not identified): run the family's incremental instead."""


def within_limit(count: int, what: str) -> None:
    if count > MAX_RECORDS:
        raise FallBack(f"{count} {what} changed at once: the family run reads them for fewer calls")


async def read_all(func: Callable[[T], Awaitable[R]], values: Iterable[T]) -> list[R]:
    """``func`` over ``values``, a few at a time, results in order; the first failure is raised."""
    out: list[R] = []
    async for _value, result in bounded_map(func, values, CONCURRENCY):
        if isinstance(result, BaseException):
            raise result
        out.append(result)
    return out


class VaultLookup:
    """Read-only look-ups in the latest stored versions (catalog + vault).

    The unionId -> userid map is built once (decoding every stored user) and kept until
    ``forget_people()`` - the coordinator calls it after any run that stored or deleted users.
    """

    def __init__(self, catalog: Any, vault: Any) -> None:
        self.catalog = catalog
        self.vault = vault
        self._people: dict[str, str] | None = None
        self._lock = threading.Lock()

    def forget_people(self) -> None:
        self._people = None

    def latest(self, kind: str, source_id: str) -> tuple[dict[str, Any], str | None] | None:
        """The latest stored version document of a live item and its container, or None."""
        info = self.catalog.get_item(kind, source_id)
        if info is None or info.deleted_at_source or info.latest_version_id is None:
            return None
        latest = [v for v in self.catalog.item_versions(kind, source_id) if v.id == info.latest_version_id]
        if not latest:
            return None
        return decode_version(self.vault.get_blob(bytes.fromhex(latest[0].content_hash))), info.container

    def userid_for_unionid(self, unionid: str) -> str | None:
        """The userid of an active user (as the collectors' directory maps it), from stored users."""
        with self._lock:  # targeted fetches of several families may ask at once (threads)
            if self._people is None:
                people: dict[str, str] = {}
                for v in self.catalog.iter_latest_versions("user"):
                    doc = decode_version(self.vault.get_blob(bytes.fromhex(v.content_hash)))
                    union = (doc.get("fields") or {}).get("unionid")
                    if union:
                        people[str(union)] = v.source_id
                self._people = people
            return self._people.get(unionid)


def owner_known(item: Any, lookup: VaultLookup) -> Any:
    """``owner_by_unionid`` with the vault's users as directory; a unionId it cannot map falls back.

    The collector maps owners against the live directory; a creator unknown to the vault (joined
    since the last capture of users, or not of this organisation) might be known there, so the
    family run decides rather than storing an owner-less version.
    """
    union = item.fields.get("owner")
    if union:
        userid = lookup.userid_for_unionid(str(union))
        if userid is None:
            raise FallBack(f"owner {union} of {item.kind}/{item.source_id} is not a stored user")
        item.fields["owner_unionid"] = union
        item.fields["owner"] = userid
    return item


def ids_of(value: Any) -> list[str]:
    """Ids from an event field that may be a list, a single value or a JSON-ish string (lenient)."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]
