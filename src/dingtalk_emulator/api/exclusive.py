"""Exclusive DingTalk (专属钉钉, §3.5, §6.5): the org group inventory, file audit logs and the
SDK-only external-audit-group endpoints; `org_group` and `file_audit_log` truth.

Only when `config.exclusive`: otherwise every path answers 403 `Forbidden.AccessDenied.NotExclusiveOrg`
"该组织未开通专属钉钉" — the real code for an org without the product is not documented (uncertain).
The inventory includes groups created in the client, which no other API can list.
Types follow the SDK models (`SearchOrgInnerGroupInfoResponseBodyItems`, `ListAuditLogResponseBodyList`):
group times are epoch ms, `targetSpaceId` an integer, `bizId` a numeric string. `status` 1 for a normal
group and -1 for a disbanded one is **uncertain**.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.envelope import ApiError, Call, api_endpoint, api_int
from dingtalk_emulator.files.groups_model import GROUP_NAMES
from dingtalk_emulator.files.seeding import h64, rng
from dingtalk_emulator.files.storage_model import DAY_MS, b62id
from dingtalk_emulator.files.world import FilesWorld, world
from dingtalk_emulator.state import EmulatorState

GROUP_SCOPE = "Custom.Group.Read"
AUDIT_SCOPE = "Custom.OpFileAudit.Read"
AUDIT_GROUP_SCOPE = "Custom.AuditGroup.Read"  # (uncertain) not named in the reference
AUDIT_WINDOW_DAYS = 180
MACAU = timezone(timedelta(hours=8))
ACTIONS = {
    0: "上傳",
    1: "刪除",
    2: "下載",
    3: "預覽",
    4: "覆蓋",
    5: "分享連結",
    6: "重命名",
    7: "移動",
    8: "轉發",
    10: "新建文檔",
    12: "導出",
}


@dataclass
class InventoryGroup:
    open_conversation_id: str
    name: str
    owner_userid: str
    members: int
    admins: int
    create_ms: int
    last_active_ms: int
    status: int
    used_quota: int


def _show(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, MACAU).strftime("%Y-%m-%d %H:%M:%S")


def _require(call: Call) -> FilesWorld:
    if not call.state.config.exclusive:
        raise ApiError(403, "Forbidden.AccessDenied.NotExclusiveOrg", "该组织未开通专属钉钉")
    return world(call.state)


def inventory(state: EmulatorState) -> list[InventoryGroup]:
    w = world(state)
    out = []
    for g in w.groups.groups.values():
        r = rng(w.seed, "inv", g.open_conversation_id)
        out.append(
            InventoryGroup(
                g.open_conversation_id,
                g.name,
                g.owner,
                len(w.groups.members(g)),
                r.randrange(0, 3),
                g.create_ms,
                w.anchor_ms - r.randrange(0, 60) * DAY_MS,
                1 if g.status == 1 else -1,
                r.randrange(0, 2_000_000_000),
            )
        )
    users = w.people.users
    # Groups people created in the client: visible only through this inventory.
    for i in range(max(2, len(users) // 5)):
        r = rng(w.seed, "client-group", i)
        cid = "cid" + b62id(22, w.seed, "client-cid", i) + "=="
        owner = users[r.randrange(len(users))].userid if users else ""
        out.append(
            InventoryGroup(
                cid,
                f"{GROUP_NAMES[i % len(GROUP_NAMES)]}（{i + 1}）",
                owner,
                r.randrange(2, 200),
                r.randrange(0, 3),
                w.anchor_ms - r.randrange(30, 1500) * DAY_MS,
                w.anchor_ms - r.randrange(0, 120) * DAY_MS,
                1 if r.random() > 0.05 else -1,
                r.randrange(0, 10**8),
            )
        )
    return out


@api_endpoint(GROUP_SCOPE)
async def org_group_infos(call: Call) -> dict[str, Any]:
    w = _require(call)
    page_start = api_int(call.params, "pageStart", 1)
    page_size = api_int(call.params, "pageSize", 20)
    if page_start < 1 or not 1 <= page_size <= 1000:
        raise ApiError(400, "invalidParameter", "pageStart must be ≥ 1 and pageSize 1..1000")
    if not call.params.get("uuid"):
        raise ApiError(400, "invalidParameter", "uuid is mandatory for this action")
    items = inventory(call.state)
    name = call.params.get("groupName")
    owner = call.params.get("groupOwner")
    lo_members = api_int(call.params, "groupMembersCountStart", 0)
    hi_members = api_int(call.params, "groupMembersCountEnd", 10**9)
    lo_create = api_int(call.params, "createTimeStart", 0)
    hi_create = api_int(call.params, "createTimeEnd", 2**62)
    lo_active = api_int(call.params, "lastActiveTimeStart", 0)
    hi_active = api_int(call.params, "lastActiveTimeEnd", 2**62)
    items = [
        g
        for g in items
        if (not name or name in g.name)
        and (not owner or owner == g.owner_userid)
        and lo_members <= g.members <= hi_members
        and lo_create <= g.create_ms <= hi_create
        and lo_active <= g.last_active_ms <= hi_active
    ]
    chunk = items[(page_start - 1) * page_size : page_start * page_size]
    out = []
    for g in chunk:
        u = w.people.user(g.owner_userid)
        out.append(
            {
                "openConversationId": g.open_conversation_id,
                "groupOwner": u.name if u else "",
                "groupName": g.name,
                "groupAdminsCount": g.admins,
                "groupMembersCount": g.members,
                "groupCreateTime": g.create_ms,
                "groupLastActiveTime": g.last_active_ms,
                "groupLastActiveTimeShow": _show(g.last_active_ms),
                "syncToDingpan": 0,
                "usedQuota": g.used_quota,
                "groupOwnerUserId": g.owner_userid,
                "status": g.status,
                "templateId": "",
                "templateName": "",
                "extensions": {},
            }
        )
    return {"totalCount": len(items), "itemCount": len(out), "items": out}


# -- file audit logs -----------------------------------------------------------------------


class AuditLog:
    """Record i of N is spread evenly over the last 180 days, so a time window maps to an index range."""

    def __init__(self, w: FilesWorld, count: int) -> None:
        self.w = w
        self.count = count
        self.start = w.anchor_ms - AUDIT_WINDOW_DAYS * DAY_MS
        self.step = max(1, AUDIT_WINDOW_DAYS * DAY_MS // max(1, count))
        self.space_ids = [s.space_id for s in w.storage.spaces.values() if s.origin == "drive"]

    def time_of(self, i: int) -> int:
        return self.start + i * self.step + h64(self.w.seed, "audit-t", i) % max(1, self.step // 2)

    def biz_id(self, i: int) -> str:
        # Numeric and fixed-width: the SDK sends nextBizId as an integer, and ids sort like gmtCreate.
        return str(100_000_000_000 + i)

    def first_at_or_after(self, ms: int) -> int:
        i = max(0, min(self.count, (ms - self.start) // self.step - 1))
        while i < self.count and self.time_of(i) < ms:
            i += 1
        return i

    def record(self, i: int) -> dict[str, Any]:
        w = self.w
        r = rng(w.seed, "audit", i)
        users = w.people.users
        u = users[r.randrange(len(users))]
        action = r.choice(list(ACTIONS))
        ext = r.choice(("docx", "xlsx", "pdf", "png", "txt"))
        t = self.time_of(i)
        spaces = self.space_ids
        return {
            "operatorName": u.name,
            "realName": u.name,
            "userId": u.userid,
            "platform": r.choice((0, 1, 2, 11, 12)),
            "action": action,
            "actionView": ACTIONS[action],
            "resource": f"文件{i % 10000}.{ext}",
            "resourceExtension": ext,
            "resourceSize": r.randrange(1000, 5_000_000),
            "bizId": self.biz_id(i),
            "targetSpaceId": int(spaces[r.randrange(len(spaces))]) if spaces else 0,
            "ipAddress": f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            "orgName": "濠江數碼科技有限公司",
            "receiverName": "",
            "receiverType": 0,
            "gmtCreate": t,
            "gmtModified": t,
            "docMemberList": [],
        }


def audit_log(state: EmulatorState) -> AuditLog:
    w = world(state)
    log = getattr(w, "audit_log", None)
    if log is None:
        log = AuditLog(w, w.prof.audit_logs)
        w.audit_log = log  # type: ignore[attr-defined]
    return log


@api_endpoint(AUDIT_SCOPE)
async def file_audit_logs(call: Call) -> dict[str, Any]:
    _require(call)
    log = audit_log(call.state)
    start = api_int(call.params, "startDate")
    end = api_int(call.params, "endDate")
    size = api_int(call.params, "pageSize", 100)
    if not 1 <= size <= 500 or end < start:
        raise ApiError(400, "invalidParameter", "pageSize must be 1..500 and endDate ≥ startDate")
    i = log.first_at_or_after(start)
    next_gmt = call.params.get("nextGmtCreate")
    next_biz = call.params.get("nextBizId")
    if next_gmt:
        # Resume strictly after the last record returned (gmtCreate, bizId).
        last = (int(next_gmt), str(next_biz or ""))
        i = max(i, log.first_at_or_after(int(next_gmt)))
        while i < log.count and (log.time_of(i), int(log.biz_id(i))) <= (last[0], int(last[1] or 0)):
            i += 1
    out = []
    while i < log.count and len(out) < size and log.time_of(i) <= end:
        out.append(log.record(i))
        i += 1
    return {"list": out}


# -- external audit groups (SDK-only, uncertain) -------------------------------------------


def _outside_groups(w: FilesWorld) -> list[str]:
    return ["cid" + b62id(22, w.seed, "outside", i) + "==" for i in range(2)]


@api_endpoint(AUDIT_GROUP_SCOPE)
async def outside_groups(call: Call) -> dict[str, Any]:
    w = _require(call)
    page_number = api_int(call.body, "pageNumber", 1)
    page_size = api_int(call.body, "pageSize", 20)
    groups = _outside_groups(w)
    chunk = groups[(page_number - 1) * page_size : page_number * page_size] if page_number >= 1 else []
    return {"responseBody": {"groupList": [{"openConversationId": c} for c in chunk], "total": len(groups)}}


@api_endpoint(AUDIT_GROUP_SCOPE)
async def outside_group_messages(call: Call) -> dict[str, Any]:
    w = _require(call)
    cid = call.body.get("openConversationId")
    if cid not in _outside_groups(w):
        raise ApiError(400, "invalidParameter", "openConversationId is not an external audit group")
    n = api_int(call.body, "maxResults", 50)
    offset = int(call.body.get("nextToken") or 0)
    total = 40
    msgs = []
    for i in range(offset, min(total, offset + n)):
        r = rng(w.seed, "outside-msg", cid, i)
        u = w.people.users[r.randrange(len(w.people.users))]
        msgs.append(
            {
                "content": r.choice(["請確認報價", "Recebido, obrigado.", "合約明天寄出"]),
                "contentType": "text",
                "createAt": w.anchor_ms - (total - i) * 3_600_000,
                "openConversationId": cid,
                "sender": {"id": u.userid, "idType": "userId", "type": "user"},
            }
        )
    nxt = offset + n
    return {"responseBody": {"messageList": msgs, "nextToken": str(nxt) if nxt < total else ""}}


def truth_org_groups(state: EmulatorState) -> Iterator[dict[str, Any]]:
    if not state.config.exclusive:
        return
    for g in inventory(state):
        item: dict[str, Any] = {
            "id": g.open_conversation_id,
            "groupName": g.name,
            "groupMembersCount": g.members,
            "status": g.status,
        }
        yield item


def truth_audit(state: EmulatorState) -> Iterator[dict[str, Any]]:
    if not state.config.exclusive:
        return
    log = audit_log(state)
    for i in range(log.count):
        rec = log.record(i)
        yield {"id": rec["bizId"], "action": rec["action"], "gmtCreate": rec["gmtCreate"]}


def register(state: EmulatorState) -> None:
    state.truth["org_group"] = truth_org_groups
    state.truth["file_audit_log"] = truth_audit


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/v1.0/exclusive/securities/orgGroupInfos", org_group_infos, methods=["GET"]),
        Route("/v1.0/exclusive/fileAuditLogs", file_audit_logs, methods=["GET"]),
        Route("/v1.0/exclusive/audits/outsideGroups/query", outside_groups, methods=["POST"]),
        Route(
            "/v1.0/exclusive/audits/outsideGroups/messages/query", outside_group_messages, methods=["POST"]
        ),
    ]
