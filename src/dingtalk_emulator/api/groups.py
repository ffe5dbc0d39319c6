"""Groups (§3.4, §7.5): legacy `chat/get`, chatid → openConversationId, scene-group member
listing, group lifecycle mutations with their `chat_*` events, and the `group` truth.

Reachable groups are department groups (chatid from `topapi/v2/department/get`'s
`dept_group_chat_id`) and groups the app created; `chat/get` answers 40016 for any other id.
Scope names for the v1.0 IM endpoints are not given by the reference: `qyapi_chat_read` is used
for all group reads (uncertain).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.api.storage import decode_token, encode_token
from dingtalk_emulator.envelope import ApiError, Call, LegacyError, api_endpoint, api_int, legacy_endpoint
from dingtalk_emulator.files.groups_model import Group
from dingtalk_emulator.files.storage_model import Space, b62id
from dingtalk_emulator.files.world import FilesWorld, world
from dingtalk_emulator.state import EmulatorState, MutationError

CHAT_SCOPE = "qyapi_chat_read"
MEMBERS_MAX = 1000  # (uncertain) the documented maximum is not given


@legacy_endpoint(CHAT_SCOPE)
async def chat_get(call: Call) -> dict[str, Any]:
    w = world(call.state)
    chatid = call.params.get("chatid")
    g = w.groups.by_chatid.get(str(chatid or ""))
    if g is None:
        raise LegacyError(40016, "不合法的会话ID")
    owner = g.owner if g.owner in w.groups.members(g) else (w.groups.members(g) or [g.owner])[0]
    return {
        "chat_info": {
            "chatid": g.chatid,
            "name": g.name,
            "owner": owner,
            "useridlist": w.groups.members(g),
            "conversationTag": 2,
            "chatBannedType": 0,
            "searchable": 0,
            "validationType": 0,
            "mentionAllAuthority": 0,
            "managementType": 0,
            "showHistoryType": 0,
            "icon": "",
            "status": g.status,
        }
    }


@api_endpoint(CHAT_SCOPE)
async def convert_chat_id(call: Call) -> dict[str, Any]:
    w = world(call.state)
    g = w.groups.by_chatid.get(call.path_params["chatId"])
    if g is None:
        raise ApiError(400, "invalidParameter.chatId", "chatId does not exist or is not accessible")
    return {"openConversationId": g.open_conversation_id}


@api_endpoint(CHAT_SCOPE)
async def members_batch_query(call: Call) -> dict[str, Any]:
    w = world(call.state)
    cid = call.body.get("openConversationId")
    if not cid:
        raise ApiError(400, "invalidParameter", "openConversationId is mandatory for this action")
    g = w.groups.groups.get(str(cid))
    if g is None:
        raise ApiError(400, "invalidParameter.openConversationId", "conversation does not exist")
    n = api_int(call.body, "maxResults", 100)
    if not 1 <= n <= MEMBERS_MAX:
        raise ApiError(400, "invalidParameter", f"maxResults must be between 1 and {MEMBERS_MAX}")
    members = w.groups.members(g) if g.status == 1 else []
    offset = decode_token(call.body.get("nextToken"))
    chunk = members[offset : offset + n]
    more = offset + n < len(members)
    users = [w.people.user(u) for u in chunk]
    return {
        "success": True,
        "memberUserIds": chunk,
        "hasMore": more,
        "nextToken": encode_token(offset + n) if more else "",
        "unionIdList": [u.unionid for u in users if u],
        "staffIdNickMap": {u.userid: u.name for u in users if u},
        "unionIdNickMap": {u.unionid: u.name for u in users if u},
    }


# -- mutations -----------------------------------------------------------------------------


def _pick(w: FilesWorld, params: dict[str, Any], live: bool = True) -> Group:
    if params.get("openConversationId"):
        g = w.groups.groups.get(str(params["openConversationId"]))
        if g is None:
            raise MutationError(f"unknown group {params['openConversationId']}")
    elif params.get("chatId"):
        g = w.groups.by_chatid.get(str(params["chatId"]))
        if g is None:
            raise MutationError(f"unknown group {params['chatId']}")
    else:
        pool = [g for g in w.groups.groups.values() if g.status == 1]
        if not pool:
            raise MutationError("no live group")
        g = pool[int(params.get("rand", 0)) % len(pool)]
    if live and g.status != 1:
        raise MutationError(f"group {g.open_conversation_id} is disbanded")
    return g


def _event(
    state: EmulatorState, w: FilesWorld, event_type: str, g: Group, operator_userid: str, **extra: Any
) -> None:
    op = w.people.user(operator_userid) or w.people.admin
    state.hub.publish_event(
        event_type,
        {
            "timeStamp": str(state.now_ms()),
            "chatId": g.chatid,
            "corpId": w.corp_id,
            "operatorUnionId": op.unionid,
            "openConversationId": g.open_conversation_id,
            "operator": op.userid,
            **extra,
        },
    )


def _users(
    w: FilesWorld, params: dict[str, Any], key: str, pool: list[str], rand: int, count: int = 1
) -> list[str]:
    if params.get(key):
        ids = params[key] if isinstance(params[key], list) else [params[key]]
        for u in ids:
            if w.people.user(str(u)) is None:
                raise MutationError(f"unknown userid {u}")
        return [str(u) for u in ids]
    if not pool:
        raise MutationError("no candidate user")
    return [pool[(rand + i * 7919) % len(pool)] for i in range(count)][: len(pool)]


def m_create(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    rand = int(params.get("rand", 0))
    users = [u.userid for u in w.people.users]
    members = list(dict.fromkeys(_users(w, params, "userIds", users, rand, count=3 + rand % 8)))
    owner = str(params.get("owner") or members[0])
    n = len([g for g in w.groups.groups.values() if g.origin == "api"])
    chatid = "chat" + b62id(24, w.seed, "api-chat-m", n, rand).lower()
    g = Group(
        chatid,
        w.groups._cid(chatid),
        str(params.get("name") or f"新項目群 {rand % 1000}"),
        owner,
        "api",
        state.now_ms(),
        extra_members=members,
        robot_present=True,
    )
    w.groups._add(g)
    sp = w.storage.add_space(
        Space(
            w.storage.new_space_id("group", g.open_conversation_id),
            f"{g.name}的群文件",
            "org",
            "group",
            state.now_ms(),
            0,
            members=w.groups.member_unionids(g),
            admin_managed=False,
        )
    )
    g.space_id = sp.space_id
    return {"openConversationId": g.open_conversation_id, "chatId": chatid, "members": members}


def m_add_member(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    g = _pick(w, params)
    current = set(w.groups.members(g))
    pool = [u.userid for u in w.people.users if u.userid not in current]
    added = _users(w, params, "userIds", pool, int(params.get("rand", 0)))
    for u in added:
        g.removed_members.discard(u)
        if u not in g.extra_members:
            g.extra_members.append(u)
    g.version += 1
    _event(
        state,
        w,
        "chat_add_member",
        g,
        g.owner,
        eventType="chat_add_member",
        userId=added,
        unionId=[w.people.user(u).unionid for u in added],
    )  # type: ignore[union-attr]
    return {"openConversationId": g.open_conversation_id, "added": added}


def m_remove_member(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    g = _pick(w, params)
    pool = [u for u in w.groups.members(g) if u != g.owner]
    removed = _users(w, params, "userIds", pool, int(params.get("rand", 0)))
    for u in removed:
        g.removed_members.add(u)
    g.version += 1
    _event(
        state,
        w,
        "chat_remove_member",
        g,
        g.owner,
        eventType="chat_remove_member",
        userId=removed,
        unionId=[u.unionid for u in map(w.people.user, removed) if u],
    )
    return {"openConversationId": g.open_conversation_id, "removed": removed}


def m_rename(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    g = _pick(w, params)
    g.name = str(params.get("name") or f"{g.name.split('（')[0]}（{int(params.get('rand', 0)) % 100}）")
    g.version += 1
    # (uncertain) the title field of chat_update_title is not shown in the reference.
    _event(state, w, "chat_update_title", g, g.owner, eventType="chat_update_title", title=g.name)
    return {"openConversationId": g.open_conversation_id, "name": g.name}


def m_disband(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    w = world(state)
    g = _pick(w, params)
    g.status = 2
    g.version += 1
    _event(state, w, "chat_disband", g, g.owner)
    return {"openConversationId": g.open_conversation_id, "status": 2}


def truth_groups(state: EmulatorState) -> Iterator[dict[str, Any]]:
    w = world(state)
    for g in list(w.groups.groups.values()):
        yield {
            "id": g.open_conversation_id,
            "chatId": g.chatid,
            "name": g.name,
            "memberCount": len(w.groups.members(g)),
            "status": g.status,
            "origin": g.origin,
            "version": g.version,
            "spaceId": g.space_id,
            "robotPresent": g.robot_present,
            "deptId": g.dept_id if g.origin == "dept" else None,
        }


def register(state: EmulatorState) -> None:
    state.mutations["group.create"] = m_create
    state.mutations["group.add_member"] = m_add_member
    state.mutations["group.remove_member"] = m_remove_member
    state.mutations["group.rename"] = m_rename
    state.mutations["group.disband"] = m_disband
    state.truth["group"] = truth_groups
    state.counts["group"] = lambda st: len(world(st).groups.groups)


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/chat/get", chat_get, methods=["GET", "POST"]),
        Route("/v1.0/im/chat/{chatId}/convertToOpenConversationId", convert_chat_id, methods=["POST"]),
        Route("/v1.0/im/sceneGroups/members/batchQuery", members_batch_query, methods=["POST"]),
    ]
