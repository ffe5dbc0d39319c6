"""Storage (§5.2–§5.4): org drive spaces, group file spaces, dentries, versions, downloads,
recycle bins, file-change event subscription; the signed `/_blob/storage/...` URLs; file mutations
and the `drive_space` / `file` truth.

Every call names an operator (`unionId`) and sees only what that person may read (403
`permissionDenied` otherwise). List end conditions: `/v1.0/drive/spaces` ends with an empty-string
`nextToken` (as documented); dentry listings end with `nextToken` absent (uncertain: the doc shows
only a non-empty example).
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from dingtalk_emulator.envelope import ApiError, Call, api_endpoint, api_int
from dingtalk_emulator.files import sensitive, signing
from dingtalk_emulator.files.render import MIME, MIN_SIZE, text_of
from dingtalk_emulator.files.storage_model import Dentry, Space, Version, iso
from dingtalk_emulator.files.world import FilesWorld, world
from dingtalk_emulator.state import EmulatorState, MutationError

SPACE_SCOPE = "Drive.Space.Read"
FILE_SCOPE = "Storage.File.Read"
DOWNLOAD_SCOPE = "Storage.DownloadInfo.Read"
CONV_SCOPE = "ConvFile.Space.Read"
EVENT_SCOPE = "Storage.Event.Write"
EXPIRATION_SECONDS = 900
MAX_DENTRIES = 50
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# -- helpers -------------------------------------------------------------------------------


def operator(call: Call, name: str = "unionId") -> str:
    unionid = call.params.get(name) or call.body.get(name)
    if not unionid:
        raise ApiError(400, "invalidParameter", f"{name} is mandatory for this action")
    if call.state.org.people.by_unionid(unionid) is None:
        raise ApiError(403, "permissionDenied", "operator has no permission (unknown or inactive unionId)")
    return str(unionid)


def space_for(call: Call, w: FilesWorld, space_id: str, unionid: str) -> Space:
    space = w.storage.spaces.get(space_id)
    if space is None:
        raise ApiError(404, "spaceNotExist", f"space {space_id} does not exist")
    if not w.storage.can_read(space, unionid):
        raise ApiError(403, "permissionDenied", "no permission to access this space")
    return space


def dentry_for(w: FilesWorld, space: Space, dentry_id: str) -> Dentry:
    d = w.storage.get(space, dentry_id)
    if d is None:
        raise ApiError(404, "dentryNotExist", f"dentry {dentry_id} does not exist")
    return d


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError
        return max(0, int(text[2:]))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalidParameter", "nextToken is invalid") from None


def max_results(
    call: Call, params: dict[str, Any], limit: int, default: int, code: str = "invalidParameter"
) -> int:
    n = api_int(params, "maxResults", default, code=code)
    if not 1 <= n <= limit:
        raise ApiError(400, code, f"maxResults must be between 1 and {limit}")
    return n


def space_json(w: FilesWorld, space: Space) -> dict[str, Any]:
    used = w.storage.used_quota(space)
    return {
        "spaceId": space.space_id,
        "spaceName": space.name,
        "spaceType": space.space_type,
        "quota": space.quota,
        # Before a space is first listed its usage is not known without generating it: estimated.
        "usedQuota": used if used >= 0 else space.n_files * w.prof.median_small,
        "permissionMode": "acl",
        "createTime": iso(space.create_ms),
        "modifyTime": iso(max(space.create_ms, space.modify_ms)),
    }


def dentry_json(w: FilesWorld, d: Dentry, version: int | None = None) -> dict[str, Any]:
    v = d.versions[(version or d.current.version) - 1]
    out: dict[str, Any] = {
        "id": d.dentry_id,
        "spaceId": d.space_id,
        "parentId": d.parent_id,
        "type": d.type,
        "name": d.name,
        "path": w.storage.path_of(d),
        "version": v.version,
        "status": d.status,
        "creatorId": d.creator,
        "modifierId": v.modifier,
        "createTime": iso(d.create_ms),
        "modifiedTime": iso(v.modified_ms),
        "properties": {"readOnly": False},
        "appProperties": {},
        "uuid": d.uuid,
        "partitionType": "PUBLIC_OSS_PARTITION",
        "storageDriver": d.driver,
        "category": d.category,
    }
    if d.type == "FILE":
        out["size"] = v.size
        out["extension"] = d.ext
    return out


def dentry_json_cached(w: FilesWorld, d: Dentry) -> dict[str, Any]:
    """The current-version JSON of a dentry, memoised until the space next changes (listings are hot)."""
    return w.storage.cached(w.storage.spaces[d.space_id], ("json", d.dentry_id), lambda: dentry_json(w, d))


_ORDER = {
    "MODIFIED_TIME": lambda d: (d.current.modified_ms, d.dentry_id),
    "CREATE_TIME": lambda d: (d.create_ms, d.dentry_id),
    "NAME": lambda d: (d.name, d.dentry_id),
    "SIZE": lambda d: (d.current.size, d.dentry_id),
}


def page(items: list[Any], offset: int, n: int) -> tuple[list[Any], str | None]:
    chunk = items[offset : offset + n]
    nxt = offset + n
    return chunk, encode_token(nxt) if nxt < len(items) else None


# -- endpoints -----------------------------------------------------------------------------


@api_endpoint(SPACE_SCOPE)
async def list_spaces(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    space_type = call.params.get("spaceType", "org")
    if space_type not in ("org", "personal"):
        raise ApiError(400, "invalidParameter", "spaceType must be org or personal")
    n = max_results(call, call.params, 50, 50, code="param.error.maxresults")
    w = world(call.state)
    if space_type == "personal":
        # (uncertain) a person's own space: the emulator backs it with their "my docs" space.
        mine = w.ensure_mine(unionid)
        spaces = [w.storage.spaces[mine.space_id]] if mine else []
    else:
        spaces = [s for s in w.storage.drive_spaces() if w.storage.can_read(s, unionid)]
    chunk, nxt = page(spaces, decode_token(call.params.get("nextToken")), n)
    return {"spaces": [space_json(w, s) for s in chunk], "nextToken": nxt or ""}


@api_endpoint(SPACE_SCOPE)
async def get_space(call: Call) -> dict[str, Any]:
    # The reference names the path only; the shape follows the SDK model GetSpaceResponseBodySpace.
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    used = w.storage.used_quota(space)
    scene = {"drive": "org", "group": "im", "wiki": "wiki"}[space.origin]  # (uncertain) scene names
    owner = space.owner or w.people.admin.unionid
    return {
        "space": {
            "id": space.space_id,
            "name": space.name,
            "corpId": w.corp_id,
            "appId": "",
            "scene": scene,
            "sceneId": space.space_id,
            "ownerType": "USER" if space.owner else "ORG",
            "ownerId": owner,
            "creatorId": owner,
            "modifierId": owner,
            "quota": space.quota,
            "usedQuota": used if used >= 0 else space.n_files * w.prof.median_small,
            "status": "NORMAL",
            "createTime": iso(space.create_ms),
            "modifiedTime": iso(max(space.create_ms, space.modify_ms)),
            "capabilities": {"canRecordRecentFile": True, "canRename": True, "canSearch": True},
            "partitions": [],
        }
    }


@api_endpoint(CONV_SCOPE)
async def conv_space(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    cid = call.body.get("openConversationId")
    if not cid:
        raise ApiError(400, "invalidParameter", "openConversationId is mandatory for this action")
    group = w.groups.groups.get(str(cid))
    if group is None or group.status != 1:
        raise ApiError(404, "conversationNotExist", "conversation does not exist")
    space = w.storage.spaces[group.space_id]
    if not w.storage.can_read(space, unionid):
        raise ApiError(403, "permissionDenied", "operator is not a member of this conversation")
    return {
        "space": {
            "spaceId": space.space_id,
            "corpId": w.corp_id,
            "createTime": iso(space.create_ms),
            "modifiedTime": iso(max(space.create_ms, space.modify_ms)),
        }
    }


@api_endpoint(FILE_SCOPE)
async def list_dentries(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    parent = str(call.params.get("parentId") or "0")
    if parent != "0":
        folder = w.storage.get(space, parent)
        if folder is None or folder.type != "FOLDER" or folder.status != "NORMAL":
            raise ApiError(404, "dentryNotExist", f"parent {parent} does not exist")
    n = max_results(call, call.params, MAX_DENTRIES, MAX_DENTRIES)
    order_by = call.params.get("orderBy", "NAME")
    order = call.params.get("order", "ASC")
    if order_by not in _ORDER or order not in ("ASC", "DESC"):
        raise ApiError(400, "invalidParameter", "orderBy/order is invalid")
    items = w.storage.sorted_children(space, parent, order_by, _ORDER[order_by], order == "DESC")
    chunk, nxt = page(items, decode_token(call.params.get("nextToken")), n)
    out: dict[str, Any] = {"dentries": [dentry_json_cached(w, d) for d in chunk]}
    if nxt:
        out["nextToken"] = nxt
    return out


@api_endpoint(FILE_SCOPE)
async def list_all_dentries(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    option = call.body.get("option") or {}
    if not isinstance(option, dict):
        raise ApiError(400, "invalidParameter", "option must be an object")
    n = max_results(call, option, MAX_DENTRIES, MAX_DENTRIES)
    order = option.get("order", "ASC")
    if order not in ("ASC", "DESC"):
        raise ApiError(400, "invalidParameter", "order must be ASC or DESC")
    items = w.storage.cached(
        space,
        ("all", order),
        lambda: sorted(
            (d for d in w.storage.all_dentries(space) if d.status == "NORMAL"),
            key=_ORDER["MODIFIED_TIME"],
            reverse=order == "DESC",
        ),
    )
    chunk, nxt = page(items, decode_token(option.get("nextToken")), n)
    out: dict[str, Any] = {"dentries": [dentry_json_cached(w, d) for d in chunk]}
    if nxt:
        out["nextToken"] = nxt
    return out


@api_endpoint(FILE_SCOPE)
async def list_versions(call: Call) -> dict[str, Any]:
    # Shape from the SDK model ListDentryVersionsResponseBody: {"dentries": [...], "nextToken"};
    # newest first and including the current version (uncertain).
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    d = dentry_for(w, space, call.path_params["dentryId"])
    if d.type != "FILE":
        raise ApiError(400, "operationNotSupported", "folders have no versions")
    n = max_results(call, call.params, MAX_DENTRIES, MAX_DENTRIES)
    items = [dentry_json(w, d, v.version) for v in reversed(d.versions)]
    chunk, nxt = page(items, decode_token(call.params.get("nextToken")), n)
    out: dict[str, Any] = {"dentries": chunk}
    if nxt:
        out["nextToken"] = nxt
    return out


@api_endpoint(FILE_SCOPE)
async def get_dentry(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    d = dentry_for(w, space, call.path_params["dentryId"])
    return {"dentry": dentry_json_cached(w, d)}


@api_endpoint(FILE_SCOPE)
async def get_dentries(call: Call) -> dict[str, Any]:
    # Batch query; request and response shape from the SDK models GetDentriesRequest /
    # GetDentriesResponseBody (the reference lists the path only). At most 30 ids (uncertain).
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    ids = call.body.get("dentryIds")
    if not isinstance(ids, list) or not ids or len(ids) > 30:
        raise ApiError(400, "invalidParameter", "dentryIds must be a list of 1..30 ids")
    items = []
    for did in ids:
        d = w.storage.get(space, str(did))
        if d is None:
            items.append(
                {
                    "spaceId": space.space_id,
                    "dentryId": str(did),
                    "success": False,
                    "errorCode": "dentryNotExist",
                }
            )
        else:
            items.append(
                {
                    "spaceId": space.space_id,
                    "dentryId": d.dentry_id,
                    "success": True,
                    "dentry": dentry_json_cached(w, d),
                }
            )
    return {"resultItems": items}


@api_endpoint(SPACE_SCOPE)
async def get_org(call: Call) -> dict[str, Any]:
    # Shape from the SDK model GetOrgResponseBody (the reference lists the path only; uncertain).
    operator(call)
    w = world(call.state)
    if call.path_params["corpId"] != w.corp_id:
        raise ApiError(403, "acrossOrgAccessForbidden", "corpId is not this organisation")
    used = sum(max(0, w.storage.used_quota(s)) for s in w.storage.spaces.values())
    return {
        "org": {
            "corpId": w.corp_id,
            "partitions": [
                {
                    "partitionType": "PUBLIC_OSS_PARTITION",
                    "quota": {"max": 1 << 44, "reserved": 0, "type": "ORG", "used": used},
                },
            ],
        }
    }


@api_endpoint(DOWNLOAD_SCOPE)
async def download_infos(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    space = space_for(call, w, call.path_params["spaceId"], unionid)
    d = dentry_for(w, space, call.path_params["dentryId"])
    if d.status != "NORMAL":
        raise ApiError(404, "dentryNotExist", "dentry is deleted")
    if d.type != "FILE" or d.driver == "ALIDOC":
        raise ApiError(
            400, "operationNotSupported", "online documents and folders cannot be downloaded as files"
        )
    option = call.body.get("option") or {}
    version = option.get("version") if isinstance(option, dict) else None
    try:
        version = int(version) if version not in (None, "") else d.current.version
    except (TypeError, ValueError):
        raise ApiError(400, "invalidParameter", "option.version is invalid") from None
    if not 1 <= version <= d.current.version:
        raise ApiError(400, "invalidParameter", f"version {version} does not exist")
    return storage_download_info(call.state, w, d, version)


def storage_download_info(state: EmulatorState, w: FilesWorld, d: Dentry, version: int) -> dict[str, Any]:
    now = state.clock()
    expires_ms = int((now + EXPIRATION_SECONDS) * 1000)
    payload = signing.encode_payload([d.space_id, d.dentry_id, version, expires_ms])
    date = signing.http_date(now)
    signature = signing.sign(w.signing_key, payload, date)
    url = f"{state.base_url}/_blob/storage/{payload}"
    return {
        "protocol": "HEADER_SIGNATURE",
        "headerSignatureInfo": {
            "resourceUrls": [url],
            "headers": {"Authorization": f"OSS {w.corp_id}:{signature}", "x-oss-date": date},
            "expirationSeconds": EXPIRATION_SECONDS,
            "region": "ZHANGJIAKOU",
            "internalResourceUrls": [url],
        },
    }


@api_endpoint(EVENT_SCOPE)
async def subscribe_events(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    scope = call.body.get("scope")
    scope_id = str(call.body.get("scopeId") or "")
    if scope not in ("ORG", "SPACE"):
        raise ApiError(400, "invalidParameter", "scope must be ORG or SPACE")
    if scope == "ORG" and scope_id != w.corp_id:
        raise ApiError(400, "invalidParameter", "scopeId must be the corpId for scope ORG")
    if scope == "SPACE":
        space_for(call, w, scope_id, unionid)
    record = {"scope": scope, "scopeId": scope_id, "unionId": unionid}
    if record not in w.storage.subscriptions:
        w.storage.subscriptions.append(record)
    return {"success": True}


@api_endpoint(FILE_SCOPE)
async def get_recycle_bin(call: Call) -> dict[str, Any]:
    # Query (recycleBinScope, scopeId, unionId) and shape from the SDK model GetRecycleBin (uncertain):
    # one bin per space, id "rb<spaceId>".
    unionid = operator(call)
    w = world(call.state)
    scope_id = str(call.params.get("scopeId") or "")
    space = space_for(call, w, scope_id, unionid)
    scope = call.params.get("recycleBinScope") or call.params.get("scope") or "SPACE"
    return {"recycleBin": {"id": f"rb{space.space_id}", "scope": scope, "scopeId": space.space_id}}


@api_endpoint(FILE_SCOPE)
async def list_recycle_items(call: Call) -> dict[str, Any]:
    unionid = operator(call)
    w = world(call.state)
    bin_id = call.path_params["recycleBinId"]
    if not bin_id.startswith("rb"):
        raise ApiError(404, "recycleBinNotExist", "recycle bin does not exist")
    space = space_for(call, w, bin_id[2:], unionid)
    n = max_results(call, call.params, MAX_DENTRIES, MAX_DENTRIES)
    deleted = sorted(
        (d for d in w.storage.all_dentries(space) if d.status == "DELETED"),
        key=lambda d: (-d.deleted_ms, d.dentry_id),
    )
    chunk, nxt = page(deleted, decode_token(call.params.get("nextToken")), n)
    items = [
        {
            "id": f"ri{d.dentry_id}",
            "spaceId": d.space_id,
            "dentryId": d.dentry_id,
            "originalName": d.name,
            "originalPath": w.storage.path_of(d),
            "size": d.current.size,
            "type": d.type,
            "operatorId": d.deleted_by,
            "operatorTime": iso(d.deleted_ms),
        }
        for d in chunk
    ]
    out: dict[str, Any] = {"recycleItems": items}
    if nxt:
        out["nextToken"] = nxt
    return out


# -- signed blobs --------------------------------------------------------------------------


def oss_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


def range_response(request: Request, part: Any, media_type: str, filename: str | None = None) -> Response:
    size = part.length
    headers = {"Accept-Ranges": "bytes", "Content-Type": media_type}
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
    header = request.headers.get("range")
    start, end = 0, size
    status = 200
    if header:
        m = _RANGE.match(header.strip())
        if m is None or (not m.group(1) and not m.group(2)):
            if "," in header:
                m = None  # multiple ranges: serve the whole body (allowed by RFC 9110)
            else:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if m is not None:
            a, b = m.group(1), m.group(2)
            if a:
                start = int(a)
                end = min(size, int(b) + 1) if b else size
            else:
                start, end = max(0, size - int(b)), size
            if start >= size or start >= end:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)

    if end - start <= WHOLE_BODY_LIMIT:
        # One body message: generating in the event loop costs the same CPU as in a worker thread
        # (the GIL), without a thread hand-off and an ASGI message per generated chunk.
        return Response(b"".join(part.iter_range(start, end)), status_code=status, headers=headers)
    return StreamingResponse(_coalesced(part.iter_range(start, end)), status_code=status, headers=headers)


# Ranges up to this size are answered as one body; bigger ones stream in chunks of about STREAM_CHUNK
# bytes, so one download holds at most a few MB whatever the file's size.
WHOLE_BODY_LIMIT = 2 << 20
STREAM_CHUNK = 1 << 20


async def _coalesced(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Generated chunks glued into ~1 MB messages, produced in the event loop (no thread pool)."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= STREAM_CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def blob_routes(state: EmulatorState) -> list[Route]:
    async def storage_blob(request: Request) -> Response:
        w = world(state)
        payload = request.path_params["payload"]
        parsed = signing.decode_payload(payload)
        if not (isinstance(parsed, list) and len(parsed) == 4):
            return oss_error(403, "AccessDenied", "Invalid resource")
        auth = request.headers.get("authorization", "")
        date = request.headers.get("x-oss-date", "")
        if not auth.startswith("OSS ") or ":" not in auth or not date:
            return oss_error(403, "AccessDenied", "Missing signed headers (Authorization, x-oss-date)")
        if not signing.verify(w.signing_key, auth.rsplit(":", 1)[1], payload, date):
            return oss_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        space_id, dentry_id, version, expires_ms = parsed
        if state.now_ms() > int(expires_ms):
            return oss_error(403, "AccessDenied", "Request has expired")
        space = w.storage.spaces.get(str(space_id))
        d = w.storage.get(space, str(dentry_id)) if space else None
        if d is None or d.type != "FILE" or not 1 <= int(version) <= d.current.version:
            return oss_error(404, "NoSuchKey", "The specified key does not exist")
        return range_response(
            request, w.storage.content(d, int(version)), MIME.get(d.ext, "application/octet-stream")
        )

    return [Route("/_blob/storage/{payload}", storage_blob, methods=["GET", "HEAD"])]


# -- mutations -----------------------------------------------------------------------------


def publish_storage_event(
    state: EmulatorState, w: FilesWorld, event_type: str, d: Dentry, unionid: str
) -> bool:
    """Push a storage_dentry_* event if the org or the space is subscribed (§7.5)."""
    subs = w.storage.subscriptions
    scope = next((s for s in subs if s["scope"] == "SPACE" and s["scopeId"] == d.space_id), None) or next(
        (s for s in subs if s["scope"] == "ORG"), None
    )
    if scope is None:
        return False
    state.hub.publish_event(
        event_type,
        {
            "spaceId": d.space_id,
            "dentryId": d.dentry_id,
            "eventScope": scope["scope"],
            "eventScopeId": scope["scopeId"],
            "extension": d.ext,
            "unionId": unionid,
            "type": d.type,
        },
    )
    return True


def _pick_space(state: EmulatorState, w: FilesWorld, params: dict[str, Any]) -> Space:
    if params.get("spaceId"):
        space = w.storage.spaces.get(str(params["spaceId"]))
        if space is None:
            raise MutationError(f"unknown space {params['spaceId']}")
        return space
    drive = w.storage.drive_spaces()
    return drive[int(params.get("rand", 0)) % len(drive)]


def _pick_file(
    state: EmulatorState, w: FilesWorld, params: dict[str, Any], folder: bool | None = False
) -> Dentry:
    space = _pick_space(state, w, params)
    if params.get("dentryId"):
        d = w.storage.get(space, str(params["dentryId"]))
        if d is None or d.status != "NORMAL":
            raise MutationError(f"unknown dentry {params['dentryId']} in space {space.space_id}")
        return d
    pool = [
        d
        for d in w.storage.all_dentries(space)
        if d.status == "NORMAL"
        and d.driver != "ALIDOC"
        and (folder is None or (d.type == "FOLDER") == folder)
    ]
    if not pool:
        raise MutationError(f"space {space.space_id} has no candidate dentry")
    return pool[int(params.get("rand", 0)) % len(pool)]


def _actor(w: FilesWorld, space: Space, params: dict[str, Any]) -> str:
    if params.get("unionId"):
        return str(params["unionId"])
    readers = w.storage.readers(space) or [w.people.admin.unionid]
    return readers[int(params.get("rand", 0)) % len(readers)]


def m_upload(state: EmulatorState, params: dict[str, Any], folder: bool = False) -> dict[str, Any]:
    w = world(state)
    space = _pick_space(state, w, params)
    now = state.now_ms()
    actor = _actor(w, space, params)
    parent = str(params.get("parentId", "0"))
    if parent != "0":
        p = w.storage.get(space, parent)
        if p is None or p.type != "FOLDER" or p.status != "NORMAL":
            raise MutationError(f"unknown folder {parent}")
    ext = str(
        params.get("extension", ("docx", "xlsx", "pdf", "csv", "txt", "png")[int(params.get("rand", 0)) % 6])
    )
    if not folder and ext not in MIN_SIZE:
        raise MutationError(f"unsupported extension {ext}")
    rand = int(params.get("rand", 0))
    name = str(
        params.get("name") or (f"新資料夾 {rand % 1000}" if folder else f"上載文件 {rand % 100000}.{ext}")
    )
    size = int(params.get("size", 20_000 + rand % 200_000))
    try:
        d = w.storage.add_dentry(space, parent, name, ext, size, actor, now, folder=folder)
    except ValueError as e:
        raise MutationError(str(e)) from None
    if d.type == "FILE" and d.versions[0].size < MIN_SIZE.get(ext, 0):
        d.versions[0].size = MIN_SIZE[ext]
    w.uuid_index[d.uuid] = (space.space_id, d.dentry_id)
    w.storage.touch(space, now)
    pushed = publish_storage_event(state, w, "storage_dentry_create", d, actor)
    return {"spaceId": space.space_id, "dentryId": d.dentry_id, "name": d.name, "event": pushed}


def m_update(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    d = _pick_file(state, w, params)
    space = w.storage.spaces[d.space_id]
    now = max(state.now_ms(), d.current.modified_ms + 1)
    actor = _actor(w, space, params)
    size = int(params.get("size", d.current.size + d.current.size // 50 + 17))
    d.versions.append(Version(d.current.version + 1, max(size, MIN_SIZE[d.ext]), now, actor))
    w.storage.touch(space, now)
    pushed = publish_storage_event(state, w, "storage_dentry_update", d, actor)
    return {"spaceId": d.space_id, "dentryId": d.dentry_id, "version": d.current.version, "event": pushed}


def m_rename(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    d = _pick_file(state, w, params, folder=None)
    space = w.storage.spaces[d.space_id]
    new = str(
        params.get("name")
        or f"{d.name.rsplit('.', 1)[0]}（已更新 {int(params.get('rand', 0)) % 1000}）"
        + (f".{d.ext}" if d.ext else "")
    )
    siblings = [s for s in w.storage.listing(space, d.parent_id) if s.dentry_id != d.dentry_id]
    if any(s.name == new for s in siblings):
        raise MutationError(f"name {new!r} already exists")
    d.name = new
    now = state.now_ms()
    d.current.modified_ms = max(d.current.modified_ms, now)
    w.storage.touch(space, now)
    actor = _actor(w, space, params)
    pushed = publish_storage_event(state, w, "storage_dentry_update", d, actor)
    return {"spaceId": d.space_id, "dentryId": d.dentry_id, "name": d.name, "event": pushed}


def m_move(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    d = _pick_file(state, w, params, folder=None)
    space = w.storage.spaces[d.space_id]
    if "parentId" in params:
        target = str(params["parentId"])
    else:
        folders = ["0"] + [
            f.dentry_id
            for f in w.storage.all_dentries(space)
            if f.type == "FOLDER" and f.status == "NORMAL" and f.dentry_id != d.dentry_id
        ]
        target = folders[int(params.get("rand", 0)) // 7 % len(folders)]
    try:
        w.storage.move(d, target)
    except ValueError as e:
        raise MutationError(str(e)) from None
    now = state.now_ms()
    d.current.modified_ms = max(d.current.modified_ms, now)
    w.storage.touch(space, now)
    pushed = publish_storage_event(state, w, "storage_dentry_update", d, _actor(w, space, params))
    return {"spaceId": d.space_id, "dentryId": d.dentry_id, "parentId": d.parent_id, "event": pushed}


def m_delete(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    d = _pick_file(state, w, params, folder=None)
    space = w.storage.spaces[d.space_id]
    actor = _actor(w, space, params)
    now = state.now_ms()
    deleted = []
    for x in w.storage.iter_subtree(d):
        if x.status == "NORMAL":
            x.status, x.deleted_ms, x.deleted_by = "DELETED", now, actor
            deleted.append(x.dentry_id)
    w.storage.touch(space, now)
    pushed = publish_storage_event(state, w, "storage_dentry_delete", d, actor)
    return {"spaceId": d.space_id, "dentryId": d.dentry_id, "deleted": deleted, "event": pushed}


# -- truth ---------------------------------------------------------------------------------


def truth_spaces(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for s in w.storage.spaces.values():
        yield {"id": s.space_id, "spaceName": s.name, "spaceType": s.space_type, "origin": s.origin}


def truth_files(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for s in list(w.storage.spaces.values()):
        for d in w.storage.all_dentries(s):
            item: dict[str, Any] = {
                "id": f"{s.space_id}/{d.dentry_id}",
                "type": d.type,
                "name": d.name,
                "parentId": d.parent_id,
                "path": w.storage.path_of(d),
                "version": d.current.version,
                "extension": d.ext,
                "storageDriver": d.driver,
                "uuid": d.uuid,
            }
            if d.type == "FILE" and d.driver != "ALIDOC":
                item["size"] = d.current.size
                item["versions"] = [
                    {"version": v.version, "size": v.size, "sha256": w.storage.sha256(d, v.version)}
                    for v in d.versions
                ]
                item["sha256"] = item["versions"][-1]["sha256"]
                item["sensitive"] = [
                    {"type": t, "value": val, "where": where} for t, val, where in _planted(d)
                ]
            if d.status != "NORMAL":
                item["deleted"] = True
            yield item


def _planted(d: Dentry) -> list[tuple[str, str, str]]:
    if d.ext == "png":
        return []  # images carry no text
    return text_of(d.spec()).planted


def sensitive_files(state: EmulatorState) -> Iterator[dict[str, Any]]:
    """Planted values of every live file's current version; `where` = "paragraph <i>" of its text."""
    w = world(state)
    for s in list(w.storage.spaces.values()):
        for d in w.storage.all_dentries(s):
            if d.type == "FILE" and d.driver != "ALIDOC" and d.status == "NORMAL":
                yield from sensitive.truth_entries(
                    "file", f"{s.space_id}/{d.dentry_id}", _planted(d), lambda loc: f"paragraph {loc[1:]}"
                )


def count_files(state: EmulatorState) -> int:
    w = world(state)
    return sum(len(w.storage.tree(s)) for s in w.storage.spaces.values())


def register(state: EmulatorState) -> None:
    state.mutations["file.upload"] = lambda st, p: m_upload(st, p)
    state.mutations["folder.create"] = lambda st, p: m_upload(st, p, folder=True)
    state.mutations["file.update"] = m_update
    state.mutations["file.rename"] = m_rename
    state.mutations["file.move"] = m_move
    state.mutations["file.delete"] = m_delete
    state.truth["drive_space"] = truth_spaces
    state.truth["file"] = truth_files
    state.org.sensitive_sources.append(sensitive_files)
    state.counts["drive_space"] = lambda st: len(world(st).storage.spaces)
    state.counts["file"] = count_files


def routes(state: EmulatorState) -> list[Route]:
    p = "/v1.0/storage/spaces/{spaceId}"
    return [
        Route("/v1.0/drive/spaces", list_spaces, methods=["GET"]),
        Route(p, get_space, methods=["GET"]),
        Route("/v1.0/convFile/conversations/spaces/query", conv_space, methods=["POST"]),
        Route(p + "/dentries", list_dentries, methods=["GET"]),
        Route(p + "/dentries/listAll", list_all_dentries, methods=["POST"]),
        Route(p + "/dentries/{dentryId}/versions", list_versions, methods=["GET"]),
        Route(p + "/dentries/query", get_dentries, methods=["POST"]),
        Route(p + "/dentries/{dentryId}/query", get_dentry, methods=["POST"]),
        Route("/v1.0/storage/orgs/{corpId}", get_org, methods=["GET"]),
        Route(p + "/dentries/{dentryId}/downloadInfos/query", download_infos, methods=["POST"]),
        Route("/v1.0/storage/events/subscribe", subscribe_events, methods=["POST"]),
        Route("/v1.0/storage/recycleBins", get_recycle_bin, methods=["GET"]),
        Route("/v1.0/storage/recycleBins/{recycleBinId}/recycleItems", list_recycle_items, methods=["GET"]),
        *blob_routes(state),
    ]


__all__ = [
    "dentry_json",
    "operator",
    "range_response",
    "register",
    "routes",
    "space_for",
    "storage_download_info",
]
