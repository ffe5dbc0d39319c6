"""Online documents (§5.5): first-level blocks of an alidocs document, the `doc.edit` mutation
and the `doc` truth.

`docKey` is the document's dentryUuid (= wiki nodeId). Only ALIDOC nodes have blocks; other
files answer 400 `operationNotSupported` (uncertain wording), and ALIDOC nodes in turn refuse the
storage `downloadInfos` endpoint. The SDK-only export jobs are not emulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.api.storage import operator, publish_storage_event
from dingtalk_emulator.envelope import ApiError, Call, api_endpoint, api_int
from dingtalk_emulator.files import corpus, sensitive
from dingtalk_emulator.files.blocks import blocks_of, canonical_sha256
from dingtalk_emulator.files.storage_model import Dentry
from dingtalk_emulator.files.world import FilesWorld, world
from dingtalk_emulator.state import EmulatorState, MutationError

DOC_SCOPE = "Storage.File.Read"


@api_endpoint(DOC_SCOPE)
async def doc_blocks(call: Call) -> dict[str, Any]:
    unionid = operator(call, "operatorId")
    w = world(call.state)
    key = call.path_params["docKey"]
    hit = w.find_uuid(key)
    if hit is None or hit[1] is None or hit[1].status != "NORMAL":
        raise ApiError(404, "docNotExist", f"document {key} does not exist")
    space, d = hit
    if not w.storage.can_read(space, unionid):
        raise ApiError(403, "permissionDenied", "no permission to read this document")
    if d.driver != "ALIDOC":
        raise ApiError(400, "operationNotSupported", "only online documents have blocks")
    blocks = blocks_of(d)
    start = api_int(call.params, "startIndex", 0)
    end = api_int(call.params, "endIndex", len(blocks) - 1)
    if start < 0 or end < start - 1:
        raise ApiError(400, "invalidParameter", "startIndex/endIndex is invalid")
    kind = call.params.get("blockType")
    data = [b for b in blocks if start <= b["index"] <= end and (not kind or b["blockType"] == kind)]
    return {"success": True, "result": {"data": data}}


def _docs(w: FilesWorld) -> Iterator[Dentry]:
    for ws in list(w.workspaces.values()):
        for d in w.storage.all_dentries(w.storage.spaces[ws.space_id]):
            if d.driver == "ALIDOC":
                yield d


def m_doc_edit(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    if params.get("dentryUuid"):
        hit = w.find_uuid(str(params["dentryUuid"]))
        if hit is None or hit[1] is None or hit[1].driver != "ALIDOC":
            raise MutationError(f"unknown document {params['dentryUuid']}")
        d = hit[1]
    else:
        # Random pick among documents of non-empty team knowledge bases (cheap: no personal spaces).
        pool = [
            d
            for ws in w.workspaces.values()
            if ws.type == "TEAM"
            for d in w.storage.all_dentries(w.storage.spaces[ws.space_id])
            if d.driver == "ALIDOC" and d.status == "NORMAL"
        ]
        if not pool:
            raise MutationError("no online document to edit")
        d = pool[int(params.get("rand", 0)) % len(pool)]
    if d.status != "NORMAL":
        raise MutationError("document is deleted")
    space = w.storage.spaces[d.space_id]
    d.doc_version += 1
    now = max(state.now_ms(), d.current.modified_ms + 1)
    actor = str(params.get("unionId") or d.creator)
    d.current.modified_ms = now
    d.current.modifier = actor
    w.storage.touch(space, now)
    w.uuid_index[d.uuid] = (space.space_id, d.dentry_id)
    pushed = publish_storage_event(state, w, "storage_dentry_update", d, actor)
    return {
        "dentryUuid": d.uuid,
        "docVersion": d.doc_version,
        "blockCount": len(blocks_of(d)),
        "event": pushed,
    }


def truth_docs(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for d in _docs(w):
        blocks = blocks_of(d)
        item = {
            "id": d.uuid,
            "name": d.name,
            "block_count": len(blocks),
            "sha256": canonical_sha256(blocks),
            "docVersion": d.doc_version,
            "spaceId": d.space_id,
            "dentryId": d.dentry_id,
        }
        if d.status != "NORMAL":
            item["deleted"] = True
        yield item


def sensitive_docs(state: EmulatorState) -> Iterator[dict[str, Any]]:
    """Planted values in online documents; paragraph i is block i + 1 (block 0 is the title)."""
    w = world(state)
    for d in _docs(w):
        if d.status == "NORMAL":
            planted = corpus.compose(d.content_key, d.kind, d.lang, d.doc_version).planted
            yield from sensitive.truth_entries(
                "doc", d.uuid, planted, lambda loc: f"blocks[{int(loc[1:]) + 1}]"
            )


def register(state: EmulatorState) -> None:
    state.mutations["doc.edit"] = m_doc_edit
    state.truth["doc"] = truth_docs
    state.org.sensitive_sources.append(sensitive_docs)


def routes(state: EmulatorState) -> list[Route]:
    return [Route("/v1.0/doc/suites/documents/{docKey}/blocks", doc_blocks, methods=["GET"])]
