"""Targeted reads of the files family: the dentry a ``storage_dentry_*`` event names (§5, §7.5).

The event's data is ``{spaceId, dentryId, eventScope, eventScopeId, extension, unionId, type}``.
The file is read with ``POST /v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/query?unionId=``
(listed in the reference's API index; request and answer ``{"dentry": {...}}`` as the official
SDK's GetDentry models have them - uncertain), plus its version list when it has more than one
version, as the files collector reads them, and as the same person the collector reads the
space as (taken from the space's stored version). ``dentryNotExist`` or a ``DELETED`` status
marks the file deleted at source.

Only plain files of drive and group spaces are read this way. The rest falls back to the files
incremental: folders (a move or deletion changes every file below, which one event does not
name), online documents and knowledge-base spaces (their nodes and document blocks are items of
their own), spaces the vault does not know yet, and anything the operator may not read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from dingvault.service.fetch_common import FallBack, VaultLookup, owner_known, read_all, within_limit
from dingvault.source.collectors import storage as st
from dingvault.source.collectors.file_items import (
    ONLINE_DOC_DRIVERS,
    ONLINE_DOC_EXTENSIONS,
    Space,
    as_int,
    file_item,
)
from dingvault.source.errors import DingTalkError, NotFound
from dingvault.source.items import Batch, Item

DENTRY_INFO = "/v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/query"
# Space origins whose files are items of their own only (knowledge-base spaces also have nodes).
TARGETED_ORIGINS = ("drive", "group")


@dataclass(frozen=True)
class DentryRef:
    space_id: str
    dentry_id: str
    type: str  # FILE | FOLDER, as the event says

    @property
    def source_id(self) -> str:
        return f"{self.space_id}/{self.dentry_id}"


async def fetch_dentries(client: Any, refs: list[DentryRef], scope: Any, lookup: VaultLookup) -> list[Batch]:
    within_limit(len(refs), "files")
    for ref in refs:
        if ref.type != "FILE":
            raise FallBack(f"{ref.source_id} is a {ref.type or 'dentry of unknown type'}")

    async def read(ref: DentryRef) -> Item | None:
        space = await asyncio.to_thread(_stored_space, lookup, ref.space_id)
        item = await _file(client, space, ref, scope)
        return None if item is None else await asyncio.to_thread(owner_known, item, lookup)

    found = await read_all(read, refs)
    items = [i for i in found if i is not None]
    gone = [r.source_id for r, i in zip(refs, found, strict=True) if i is None]
    batches = [Batch(items=items)] if items else []
    if gone:
        batches.append(Batch(deleted=gone, deleted_kind="file"))
    return batches


def _stored_space(lookup: VaultLookup, space_id: str) -> Space:
    found = lookup.latest("drive_space", space_id)
    if found is None:
        raise FallBack(f"space {space_id} is not in the vault yet")
    doc, container = found
    raw = doc.get("raw") or {}
    origin, operator = raw.get("origin"), (doc.get("fields") or {}).get("operator")
    if origin not in TARGETED_ORIGINS or not operator:
        raise FallBack(f"space {space_id} ({origin}) is read with its family")
    return Space(
        space_id, str(origin), str(operator), dict(raw.get("space") or {}), container=container or "org"
    )


async def _file(client: Any, space: Space, ref: DentryRef, scope: Any) -> Item | None:
    try:
        body = await client.api(
            "POST",
            DENTRY_INFO,
            path={"spaceId": space.space_id, "dentryId": ref.dentry_id},
            params={"unionId": space.operator},
            json={"option": {}},
        )
    except NotFound as exc:
        if exc.code == "dentryNotExist":
            return None
        raise FallBack(f"{ref.source_id}: {exc.message}") from exc
    except DingTalkError as exc:
        if exc.retryable:
            raise  # a transient failure: the event is retried, not replaced by a family run
        raise FallBack(f"{ref.source_id}: {exc.message}") from exc
    dentry = body.get("dentry")
    if not isinstance(dentry, dict) or str(dentry.get("id")) != ref.dentry_id:
        # The answer's shape is the SDK's, not the reference's (uncertain): let the listing decide.
        raise FallBack(f"dentry query of {ref.source_id}: no matching dentry in the answer")
    if dentry.get("status") in ("DELETED", "EXPIRED"):
        return None
    if dentry.get("type") != "FILE":
        raise FallBack(f"{ref.source_id} is a {dentry.get('type')}")
    if (
        dentry.get("storageDriver") in ONLINE_DOC_DRIVERS
        or str(dentry.get("extension") or "").lower() in ONLINE_DOC_EXTENSIONS
    ):
        raise FallBack(f"{ref.source_id} is an online document")
    versions = None
    if (as_int(dentry.get("version")) or 1) > 1:
        versions = await st.versions(client, space.space_id, ref.dentry_id, space.operator)
    return file_item(space, dentry, versions, scope)
