"""Items of the files family: spaces, knowledge bases, files, nodes and online documents.

How a DingTalk storage/wiki/doc record becomes an `Item` (ids per the ground-truth contract,
verbatim `raw`, normalised `fields`, version keys without derived fields, attachments).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from dingvault.source.collectors.base import as_list, content_hash, iso_from_ms, normalise_iso, stable_hash
from dingvault.source.items import AttachmentRef, Item, ScopeFilter

# Fields that change whenever content inside changes: left out of version keys (see stable_hash).
SPACE_DERIVED = ("usedQuota", "modifyTime", "modifiedTime")
WORKSPACE_DERIVED = ("modifiedTime", "modifierId", "permissionRole")
# A folder's modified time moves when its children change, a file's with its content — which bumps
# `version` (and size) anyway; thumbnails are re-signed URLs. None of these is a change of the entry.
DENTRY_DERIVED = ("modifiedTime", "modifierId", "thumbnail")
# A node's size, counters and times follow its content (captured as the file or document itself).
NODE_DERIVED = (
    "modifiedTime",
    "modifiedTimestamp",
    "modifierId",
    "size",
    "statisticalInfo",
    "hasChildren",
    "permissionRole",
)
DOCS_CONTAINER = "docs"
# Online documents have no file content to download (§5.4 operationNotSupported, inferred).
ONLINE_DOC_DRIVERS = frozenset({"ALIDOC"})
ONLINE_DOC_EXTENSIONS = frozenset({"adoc", "axls", "amind", "adraw", "able", "appt"})


@dataclass
class Space:
    space_id: str
    origin: str  # drive | group | wiki
    operator: str  # unionId to read it as
    raw: dict[str, Any] = field(default_factory=dict)
    # How it was found, which is also what a completeness claim covers: "org", "personal:<userid>",
    # "groups", "wiki" (a space whose source was not fully read is never taken for deleted).
    container: str = "org"


@dataclass
class Workspace:
    workspace_id: str
    operator: str
    raw: dict[str, Any]
    container: str = "team"  # "team", or "personal:<userid>" for a user's "my documents"
    first_node: str | None = None  # a node found in it (to find its storage space)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def node_marker(node: dict[str, Any]) -> str:
    return str(node.get("modifiedTimestamp") or node.get("modifiedTime") or content_hash(node))


def is_online_doc(node: dict[str, Any]) -> bool:
    return (
        node.get("category") == "ALIDOC" or str(node.get("extension") or "").lower() in ONLINE_DOC_EXTENSIONS
    )


def canonical_blocks_sha256(blocks: Any) -> str:
    """sha256 of the blocks as canonical JSON (sorted keys, no spaces, UTF-8)."""
    return hashlib.sha256(orjson.dumps(blocks, option=orjson.OPT_SORT_KEYS)).hexdigest()


def space_version(raw: dict[str, Any]) -> str:
    """Usage and last-modified times follow from the files inside (versioned themselves)."""
    key = {k: v for k, v in raw.items() if k not in SPACE_DERIVED}
    if isinstance(key.get("workspace"), dict):
        key["workspace"] = {k: v for k, v in key["workspace"].items() if k not in WORKSPACE_DERIVED}
    return content_hash(key)


def space_item(space: Space) -> Item:
    raw = dict(space.raw)
    name = raw.get("spaceName") or (raw.get("workspace") or {}).get("name")
    return Item(
        kind="drive_space",
        source_id=space.space_id,
        raw={"space": raw, "origin": space.origin},
        fields={
            "name": name,
            "title": name,
            "origin": space.origin,
            "space_type": raw.get("spaceType")
            or (
                "personal"
                if space.origin == "wiki" and (raw.get("workspace") or {}).get("type") == "PERSONAL"
                else "org"
            ),
            "created": normalise_iso(raw.get("createTime")),
            "modified": normalise_iso(raw.get("modifyTime") or raw.get("modifiedTime")),
            "operator": space.operator,
        },
        version_key=space_version(raw),
        container=space.container,
    )


def workspace_item(workspace: Workspace) -> Item:
    raw = workspace.raw
    return Item(
        kind="wiki_workspace",
        source_id=workspace.workspace_id,
        raw={"workspace": raw},
        fields={
            "name": raw.get("name"),
            "title": raw.get("name"),
            "type": raw.get("type"),
            "owner": raw.get("creatorId"),
            "created": normalise_iso(raw.get("createTime")),
            "modified": normalise_iso(raw.get("modifiedTime")),
        },
        version_key=stable_hash(raw, WORKSPACE_DERIVED),
        container=workspace.container,
    )


def file_item(
    space: Space, dentry: dict[str, Any], versions: list[dict[str, Any]] | None, scope: ScopeFilter
) -> Item:
    dentry_id = str(dentry["id"])
    name = str(dentry.get("name") or dentry_id)
    size = as_int(dentry.get("size"))
    version = as_int(dentry.get("version"))
    raw: dict[str, Any] = {"dentry": dentry}
    if versions is not None:
        raw["versions"] = versions
    attachments: list[AttachmentRef] = []
    is_doc = (
        dentry.get("storageDriver") in ONLINE_DOC_DRIVERS
        or str(dentry.get("extension") or "").lower() in ONLINE_DOC_EXTENSIONS
    )
    if dentry.get("type") == "FILE" and not is_doc and scope.includes_file(name, size):
        base = {"spaceId": space.space_id, "dentryId": dentry_id, "unionId": space.operator}
        attachments.append(
            AttachmentRef(
                name=name, size=size, ref={**base, "version": version, "size": size}, kind="file_content"
            )
        )
        for old in versions or []:
            old_version = as_int(old.get("version"))
            if old_version is None or old_version == version:
                continue
            old_size = as_int(old.get("size"))
            attachments.append(
                AttachmentRef(
                    name=name,
                    size=old_size,
                    ref={**base, "version": old_version, "size": old_size},
                    kind="file_version",
                )
            )
    return Item(
        kind="file",
        source_id=f"{space.space_id}/{dentry_id}",
        raw=raw,
        fields={
            "name": name,
            "title": name,
            "path": dentry.get("path"),
            "type": dentry.get("type"),
            "size": size,
            "version": version,
            "extension": dentry.get("extension"),
            "parent_id": dentry.get("parentId"),
            "owner": dentry.get("creatorId"),
            "created": normalise_iso(dentry.get("createTime")),
            "modified": normalise_iso(dentry.get("modifiedTime")),
            "status": dentry.get("status"),
            "origin": space.origin,
        },
        version_key=stable_hash(dentry, DENTRY_DERIVED),
        attachments=attachments,
        container=space.space_id,
    )


def node_item(workspace: Workspace, node: dict[str, Any]) -> Item:
    return Item(
        kind="wiki_node",
        source_id=f"{workspace.workspace_id}/{node['nodeId']}",
        raw={"node": node},
        fields={
            "name": node.get("name"),
            "title": node.get("name"),
            "type": node.get("type"),
            "category": node.get("category"),
            "extension": node.get("extension"),
            "size": as_int(node.get("size")),
            "created": _ts(node.get("createTimestamp")) or normalise_iso(node.get("createTime")),
            "modified": _ts(node.get("modifiedTimestamp")) or normalise_iso(node.get("modifiedTime")),
        },
        version_key=stable_hash(node, NODE_DERIVED),
        container=workspace.workspace_id,
    )


def doc_item(
    workspace: Workspace,
    node: dict[str, Any],
    blocks: dict[str, Any] | None,
    *,
    stored_sha256: str | None = None,
) -> Item:
    """A document; its version is its content (blocks hash) and name, so a touch that changes
    neither is not a new version. Without `blocks` (unchanged node), `stored_sha256` stands in."""
    raw: dict[str, Any] = {"node": node}
    fields: dict[str, Any] = {
        "name": node.get("name"),
        "title": node.get("name"),
        "workspace_id": workspace.workspace_id,
        "modified": _ts(node.get("modifiedTimestamp")) or normalise_iso(node.get("modifiedTime")),
    }
    if blocks is not None:
        raw["blocks"] = blocks
        data = as_list(blocks.get("data"))
        fields["block_count"] = len(data)
        fields["sha256"] = canonical_blocks_sha256(data)
    sha = fields.get("sha256") or stored_sha256
    return Item(
        kind="doc",
        source_id=str(node["nodeId"]),
        raw=raw,
        fields=fields,
        version_key=content_hash({"sha256": sha, "name": node.get("name")}) if sha else node_marker(node),
        container=DOCS_CONTAINER,
    )


def _ts(value: Any) -> str | None:

    return iso_from_ms(value) if isinstance(value, int | float) else None
