"""Knowledge bases (§5.2, §5.3): workspaces, "my docs", the node tree, node → storage ids.

Knowledge-base files live in a storage space each, so they download through the storage
`downloadInfos` endpoint; online documents (category ALIDOC) refuse that with 400
`operationNotSupported` and are read through the blocks API (api/docs.py).
List end condition: `nextToken` absent (uncertain; the doc shows only the field).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.api.storage import decode_token, max_results, operator, page
from dingtalk_emulator.envelope import ApiError, Call, api_bool, api_endpoint
from dingtalk_emulator.files.storage_model import Dentry, iso
from dingtalk_emulator.files.world import FilesWorld, Workspace, world
from dingtalk_emulator.state import EmulatorState

WS_SCOPE = "Wiki.Workspace.Read"
NODE_SCOPE = "Wiki.Node.Read"
DOC_SCOPE = "Storage.File.Read"


def role(w: FilesWorld, ws: Workspace, unionid: str) -> str:
    # (uncertain) role names; owners of a personal space and team creators are OWNER.
    if ws.owner == unionid or ws.creator == unionid:
        return "OWNER"
    user = w.people.by_unionid(unionid)
    return "MANAGER" if user is not None and user.admin else "READER"


def ws_json(w: FilesWorld, ws: Workspace, unionid: str, with_role: bool) -> dict[str, Any]:
    space = w.storage.spaces[ws.space_id]
    out: dict[str, Any] = {
        "workspaceId": ws.workspace_id,
        "corpId": w.corp_id,
        "teamId": ws.team_id,
        "rootNodeId": ws.root_node_id,
        "name": ws.name,
        "type": ws.type,
        "description": ws.description,
        "url": f"https://alidocs.dingtalk.com/i/spaces/{ws.workspace_id}/overview",
        "icon": {"type": "EMOJI", "value": "📁"},
        "cover": "",
        "creatorId": ws.creator,
        "modifierId": ws.creator,
        "createTime": iso(ws.create_ms),
        "modifiedTime": iso(max(ws.create_ms, space.modify_ms)),
    }
    if with_role:
        out["permissionRole"] = role(w, ws, unionid)
    return out


def node_json(w: FilesWorld, ws: Workspace, d: Dentry, unionid: str, with_role: bool) -> dict[str, Any]:
    space = w.storage.spaces[d.space_id]
    assert space.children is not None
    has_children = d.type == "FOLDER" and any(
        w.storage.tree(space)[c].status == "NORMAL" for c in space.children.get(d.dentry_id, [])
    )
    out: dict[str, Any] = {
        "nodeId": d.uuid,
        "workspaceId": ws.workspace_id,
        "name": d.name,
        "size": d.current.size,
        "type": d.type,
        "category": d.category if d.type == "FILE" else "OTHER",
        "extension": d.ext,
        "url": f"https://alidocs.dingtalk.com/i/nodes/{d.uuid}",
        "creatorId": d.creator,
        "modifierId": d.current.modifier,
        "createTime": iso(d.create_ms),
        "modifiedTime": iso(d.current.modified_ms),
        "createTimestamp": d.create_ms,
        "modifiedTimestamp": d.current.modified_ms,
        "hasChildren": has_children,
        "statisticalInfo": {"wordCount": d.current.size // 3 if d.type == "FILE" else 0},
    }
    if with_role:
        out["permissionRole"] = role(w, ws, unionid)
    return out


@api_endpoint(WS_SCOPE)
async def list_workspaces(call: Call) -> dict[str, Any]:
    unionid = operator(call, "operatorId")
    w = world(call.state)
    n = max_results(call, call.params, 30, 30)
    order = call.params.get("orderBy", "CREATE_TIME_DESC")
    if order not in ("VIEW_TIME_DESC", "CREATE_TIME_DESC", "MODIFIED_TIME_DESC"):
        raise ApiError(400, "invalidParameter", "orderBy is invalid")
    team = call.params.get("teamId")
    items = [
        ws
        for ws in w.workspaces.values()
        if ws.type == "TEAM"
        and (not team or ws.team_id == team)
        and w.storage.can_read(w.storage.spaces[ws.space_id], unionid)
    ]
    if order == "MODIFIED_TIME_DESC":
        items.sort(
            key=lambda ws: (-max(ws.create_ms, w.storage.spaces[ws.space_id].modify_ms), ws.workspace_id)
        )
    else:  # view time is not modelled: creation order stands in for it
        items.sort(key=lambda ws: (-ws.create_ms, ws.workspace_id))
    chunk, nxt = page(items, decode_token(call.params.get("nextToken")), n)
    with_role = api_bool(call.params, "withPermissionRole")
    out: dict[str, Any] = {"workspaces": [ws_json(w, ws, unionid, with_role) for ws in chunk]}
    if nxt:
        out["nextToken"] = nxt
    return out


@api_endpoint(WS_SCOPE)
async def mine_workspace(call: Call) -> dict[str, Any]:
    unionid = operator(call, "operatorId")
    w = world(call.state)
    ws = w.ensure_mine(unionid)
    if ws is None:
        raise ApiError(403, "permissionDenied", "unknown operator")
    return {"workspace": ws_json(w, ws, unionid, api_bool(call.params, "withPermissionRole"))}


def resolve_parent(w: FilesWorld, node_id: str) -> tuple[Workspace, str]:
    if node_id in w.root_nodes:
        ws = w.workspaces[w.root_nodes[node_id]]
        return ws, "0"
    hit = w.find_uuid(node_id)
    if hit is None or hit[1] is None or hit[0].origin != "wiki":
        raise ApiError(404, "nodeNotExist", f"node {node_id} does not exist")
    space, d = hit
    ws = w.workspace_of_space(space.space_id)
    if ws is None or d.status != "NORMAL":
        raise ApiError(404, "nodeNotExist", f"node {node_id} does not exist")
    return ws, d.dentry_id


@api_endpoint(NODE_SCOPE)
async def list_nodes(call: Call) -> dict[str, Any]:
    unionid = operator(call, "operatorId")
    w = world(call.state)
    parent_node = call.params.get("parentNodeId")
    if not parent_node:
        raise ApiError(400, "invalidParameter", "parentNodeId is mandatory for this action")
    ws, parent = resolve_parent(w, str(parent_node))
    space = w.storage.spaces[ws.space_id]
    if not w.storage.can_read(space, unionid):
        raise ApiError(403, "permissionDenied", "no permission to read this knowledge base")
    if parent != "0" and w.storage.tree(space)[parent].type != "FOLDER":
        return {"nodes": []}
    n = max_results(call, call.params, 50, 50)
    items = sorted(
        w.storage.listing(space, parent), key=lambda d: (d.type != "FOLDER", d.create_ms, d.dentry_id)
    )
    chunk, nxt = page(items, decode_token(call.params.get("nextToken")), n)
    with_role = api_bool(call.params, "withPermissionRole")
    for d in chunk:
        w.uuid_index[d.uuid] = (space.space_id, d.dentry_id)
    out: dict[str, Any] = {"nodes": [node_json(w, ws, d, unionid, with_role) for d in chunk]}
    if nxt:
        out["nextToken"] = nxt
    return out


@api_endpoint(DOC_SCOPE)
async def query_dentry_id(call: Call) -> dict[str, Any]:
    unionid = operator(call, "operatorId")
    w = world(call.state)
    uuid = call.path_params["dentryUuid"]
    if uuid in w.root_nodes:
        # A workspace's root node names the space itself; its dentryId is the listing root "0"
        # (uncertain: what the real service answers for a root node is not documented).
        ws = w.workspaces[w.root_nodes[uuid]]
        if not w.storage.can_read(w.storage.spaces[ws.space_id], unionid):
            raise ApiError(403, "permissionDenied", "no permission to access this node")
        return {"dentryUuid": uuid, "dentryId": "0", "spaceId": ws.space_id}
    hit = w.find_uuid(uuid)
    if hit is None or hit[1] is None:
        raise ApiError(404, "dentryNotExist", f"dentry {uuid} does not exist")
    space, d = hit
    if not w.storage.can_read(space, unionid):
        raise ApiError(403, "permissionDenied", "no permission to access this node")
    return {"dentryUuid": uuid, "dentryId": d.dentry_id, "spaceId": space.space_id}


# -- truth ---------------------------------------------------------------------------------


def truth_workspaces(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for ws in list(w.workspaces.values()):
        item = {
            "id": ws.workspace_id,
            "name": ws.name,
            "type": ws.type,
            "rootNodeId": ws.root_node_id,
            "spaceId": ws.space_id,
        }
        if ws.type == "PERSONAL":
            item["owner"] = ws.owner  # unionId: only its owner can open "my docs" (mineWorkspaces)
        yield item


def truth_nodes(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for ws in list(w.workspaces.values()):
        space = w.storage.spaces[ws.space_id]
        for d in w.storage.all_dentries(space):
            item = {
                "id": f"{ws.workspace_id}/{d.uuid}",
                "name": d.name,
                "type": d.type,
                "category": d.category if d.type == "FILE" else "OTHER",
                "extension": d.ext,
                "spaceId": space.space_id,
                "dentryId": d.dentry_id,
            }
            if d.status != "NORMAL":
                item["deleted"] = True
            yield item


def register(state: EmulatorState) -> None:
    state.truth["wiki_workspace"] = truth_workspaces
    state.truth["wiki_node"] = truth_nodes
    state.counts["wiki_workspace"] = lambda st: len(world(st).workspaces)


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/v2.0/wiki/workspaces", list_workspaces, methods=["GET"]),
        Route("/v2.0/wiki/mineWorkspaces", mine_workspace, methods=["GET"]),
        Route("/v2.0/wiki/nodes", list_nodes, methods=["GET"]),
        Route("/v2.0/doc/dentries/{dentryUuid}/queryDentryId", query_dentry_id, methods=["GET"]),
    ]
