"""Storage spaces and dentries (dingtalk-api.md §5.2–§5.4): the low-level reads of the files family.

Every call is made "as" a user (`unionId` / `operatorId`): results are filtered by what that person
may see, so each space is read as a user who can see it (the admin for org spaces, the owner for
personal spaces, a group member for group spaces, the listing user for knowledge bases).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from dingvault.source.collectors.base import as_list, has_more_token
from dingvault.source.errors import BadResponse

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient

DRIVE_SPACES = "/v1.0/drive/spaces"
GROUP_SPACE = "/v1.0/convFile/conversations/spaces/query"
DENTRIES = "/v1.0/storage/spaces/{spaceId}/dentries"
LIST_ALL = "/v1.0/storage/spaces/{spaceId}/dentries/listAll"
VERSIONS = "/v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/versions"
DOWNLOAD_INFO = "/v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/downloadInfos/query"
RECYCLE_BIN = "/v1.0/storage/recycleBins"
RECYCLE_ITEMS = "/v1.0/storage/recycleBins/{recycleBinId}/recycleItems"
WIKI_WORKSPACES = "/v2.0/wiki/workspaces"
WIKI_MINE = "/v2.0/wiki/mineWorkspaces"
WIKI_NODES = "/v2.0/wiki/nodes"
UUID_TO_DENTRY = "/v2.0/doc/dentries/{dentryUuid}/queryDentryId"
DOC_BLOCKS = "/v1.0/doc/suites/documents/{docKey}/blocks"

MAX_PAGES = 100_000  # a guard against a server that never ends a listing


async def paged(fetch: Any, endpoint: str, items_key: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Follow `nextToken` pages: `fetch(token)` returns a body with `items_key` and `nextToken`."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        body = await fetch(token)
        yield [e for e in as_list(body.get(items_key)) if isinstance(e, dict)]
        next_token = body.get("nextToken")
        if not has_more_token(next_token) or body.get("hasMore") is False:
            return
        if next_token == token:
            raise BadResponse(f"{endpoint} repeated its nextToken", endpoint=endpoint)
        token = str(next_token)
    raise BadResponse(f"{endpoint}: listing did not end after {MAX_PAGES} pages", endpoint=endpoint)


async def drive_spaces(
    client: DingTalkClient, union_id: str, space_type: str
) -> AsyncIterator[list[dict[str, Any]]]:
    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET",
            DRIVE_SPACES,
            params={"unionId": union_id, "spaceType": space_type, "maxResults": 50, "nextToken": token},
        )

    async for page in paged(fetch, DRIVE_SPACES, "spaces"):
        yield page


async def group_space(
    client: DingTalkClient, union_id: str, open_conversation_id: str
) -> dict[str, Any] | None:
    body = await client.api(
        "POST", GROUP_SPACE, params={"unionId": union_id}, json={"openConversationId": open_conversation_id}
    )
    space = body.get("space")
    return space if isinstance(space, dict) else None


async def list_all(
    client: DingTalkClient, space_id: str, union_id: str, *, order: str = "DESC"
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every dentry of a space, flat, newest-modified first (§5.3 listAll)."""

    async def fetch(token: str | None) -> dict[str, Any]:
        option: dict[str, Any] = {"maxResults": 50, "order": order}
        if token:
            option["nextToken"] = token
        return await client.api(
            "POST",
            LIST_ALL,
            path={"spaceId": space_id},
            params={"unionId": union_id},
            json={"option": option},
        )

    async for page in paged(fetch, LIST_ALL, "dentries"):
        yield page


async def list_children(
    client: DingTalkClient, space_id: str, union_id: str, parent_id: str
) -> AsyncIterator[list[dict[str, Any]]]:
    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET",
            DENTRIES,
            path={"spaceId": space_id},
            params={"parentId": parent_id, "unionId": union_id, "maxResults": 50, "nextToken": token},
        )

    async for page in paged(fetch, DENTRIES, "dentries"):
        yield page


async def versions(
    client: DingTalkClient, space_id: str, dentry_id: str, union_id: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET",
            VERSIONS,
            path={"spaceId": space_id, "dentryId": dentry_id},
            params={"unionId": union_id, "maxResults": 50, "nextToken": token},
        )

    async for page in paged(fetch, VERSIONS, "dentries"):
        out.extend(page)
    return out


async def download_info(
    client: DingTalkClient, space_id: str, dentry_id: str, union_id: str, version: int | None
) -> tuple[str, dict[str, str]]:
    option: dict[str, Any] = {"preferIntranet": False}
    if version is not None:
        option["version"] = version
    body = await client.api(
        "POST",
        DOWNLOAD_INFO,
        path={"spaceId": space_id, "dentryId": dentry_id},
        params={"unionId": union_id},
        json={"option": option},
    )
    info = body.get("headerSignatureInfo") or {}
    urls = as_list(info.get("resourceUrls")) if isinstance(info, dict) else []
    if not urls or not isinstance(urls[0], str):
        raise BadResponse(
            f"download info for {space_id}/{dentry_id} without resourceUrls (protocol {body.get('protocol')!r})",
            endpoint=DOWNLOAD_INFO,
        )
    headers = info.get("headers") or {}
    # The signed headers must all be sent with the content request (§5.4).
    return urls[0], {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}


async def wiki_workspaces(client: DingTalkClient, operator_id: str) -> AsyncIterator[list[dict[str, Any]]]:
    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET", WIKI_WORKSPACES, params={"operatorId": operator_id, "maxResults": 30, "nextToken": token}
        )

    async for page in paged(fetch, WIKI_WORKSPACES, "workspaces"):
        yield page


async def mine_workspace(client: DingTalkClient, operator_id: str) -> dict[str, Any] | None:
    body = await client.api("GET", WIKI_MINE, params={"operatorId": operator_id})
    workspace = body.get("workspace")
    return workspace if isinstance(workspace, dict) else None


async def wiki_nodes(
    client: DingTalkClient, parent_node_id: str, operator_id: str
) -> AsyncIterator[list[dict[str, Any]]]:
    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET",
            WIKI_NODES,
            params={
                "parentNodeId": parent_node_id,
                "operatorId": operator_id,
                "maxResults": 50,
                "nextToken": token,
            },
        )

    async for page in paged(fetch, WIKI_NODES, "nodes"):
        yield page


async def uuid_to_dentry(client: DingTalkClient, dentry_uuid: str, operator_id: str) -> dict[str, Any]:
    return await client.api(
        "GET", UUID_TO_DENTRY, path={"dentryUuid": dentry_uuid}, params={"operatorId": operator_id}
    )


async def doc_blocks(client: DingTalkClient, doc_key: str, operator_id: str) -> dict[str, Any]:
    body = await client.api("GET", DOC_BLOCKS, path={"docKey": doc_key}, params={"operatorId": operator_id})
    result = body.get("result")
    if not isinstance(result, dict):
        raise BadResponse(f"blocks of {doc_key}: no result object", endpoint=DOC_BLOCKS)
    return result


async def recycle_bin_id(client: DingTalkClient, space_id: str, union_id: str) -> str | None:
    """The id of a space's recycle bin, or None if the space has none.

    The recycle-bin endpoints appear only in the API index; parameter and field names follow the
    official SDK's models (`recycleBinScope`, `scopeId`, `unionId` → `recycleBin.id`) — uncertain.
    """
    body = await client.api(
        "GET", RECYCLE_BIN, params={"recycleBinScope": "SPACE", "scopeId": space_id, "unionId": union_id}
    )
    recycle_bin = body.get("recycleBin") or {}
    bin_id = recycle_bin.get("id") if isinstance(recycle_bin, dict) else None
    return str(bin_id) if bin_id else None


async def recycle_items(
    client: DingTalkClient, bin_id: str, union_id: str
) -> AsyncIterator[list[dict[str, Any]]]:
    """Deleted dentries in a recycle bin: `recycleItems[{id, spaceId, dentryId, originalName,
    operatorTime, ...}]` after the official SDK's model — uncertain."""

    async def fetch(token: str | None) -> dict[str, Any]:
        return await client.api(
            "GET",
            RECYCLE_ITEMS,
            path={"recycleBinId": bin_id},
            params={"unionId": union_id, "maxResults": 50, "nextToken": token},
        )

    async for page in paged(fetch, RECYCLE_ITEMS, "recycleItems"):
        yield page
