"""Contacts (§2): departments, users, resigned employees; contact mutations and events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from starlette.routing import Route

from dingtalk_emulator.company.people import ROOT_DEPT_ID, Department, User
from dingtalk_emulator.company.seeding import DAY_MS, h64, iso_seconds, local_datetime, parse_iso
from dingtalk_emulator.envelope import (
    ApiError,
    Call,
    LegacyError,
    api_endpoint,
    api_int,
    legacy_endpoint,
    legacy_int,
)
from dingtalk_emulator.state import EmulatorState, MutationError

# (uncertain) the reference names `qyapi_get_member` for member reads; the department scope name is
# not given, so the console's "通讯录部门信息读权限" key is used.
DEPT_SCOPE = "qyapi_get_department_list"
USER_SCOPE = "qyapi_get_member"
LEAVE_SCOPE = "Contact.Common.Read"
HRM_SCOPE = "qyapi_hrm_read_user"
USER_LIST_MAX = 100
LEAVE_WINDOW_DAYS = 365


def _people(call: Call) -> Any:
    return call.state.org.people


def _dept_or_60003(call: Call, dept_id: int) -> Department:
    dept = _people(call).dept(dept_id)
    if dept is None:
        raise LegacyError(60003, "部门不存在")
    return dept


@legacy_endpoint(DEPT_SCOPE)
async def dept_listsub(call: Call) -> dict[str, Any]:
    dept = _dept_or_60003(call, legacy_int(call.params, "dept_id", ROOT_DEPT_ID))
    return {"result": [d.to_api() for d in _people(call).children(dept.dept_id)]}


@legacy_endpoint(DEPT_SCOPE)
async def dept_listsubid(call: Call) -> dict[str, Any]:
    dept = _dept_or_60003(call, legacy_int(call.params, "dept_id"))
    return {"result": {"dept_id_list": [d.dept_id for d in _people(call).children(dept.dept_id)]}}


@legacy_endpoint(DEPT_SCOPE)
async def dept_get(call: Call) -> dict[str, Any]:
    people = _people(call)
    dept = _dept_or_60003(call, legacy_int(call.params, "dept_id"))
    members = people.members(dept.dept_id)
    leaders = [u.userid for u in members if u.leader]
    result = {
        **dept.to_api(),
        "source_identifier": "",
        "tags": "",
        "from_union_org": False,
        "order": dept.order,
        "dept_group_chat_id": "chat" + f"{h64(people.seed, 'dept-chat', dept.dept_id):016x}",
        "group_contain_sub_dept": False,
        "org_dept_owner": leaders[0] if leaders else "",
        "dept_manager_userid_list": leaders,
        "outer_dept": False,
        "outer_permit_depts": [],
        "outer_permit_users": [],
        "hide_dept": False,
        "user_permits": [],
        "dept_permits": [],
        "auto_approve_apply": False,
        "code": "",
        "member_count": len(members),
        "owning_member_count": len(members),
    }
    return {"result": result}


@legacy_endpoint(USER_SCOPE)
async def user_listid(call: Call) -> dict[str, Any]:
    dept = _dept_or_60003(call, legacy_int(call.params, "dept_id"))
    return {"result": {"userid_list": [u.userid for u in _people(call).members(dept.dept_id)]}}


_ORDER_KEYS = {
    "entry_asc": (lambda u: u.hired_date, False),
    "entry_desc": (lambda u: u.hired_date, True),
    "modify_asc": (lambda u: u.modified, False),
    "modify_desc": (lambda u: u.modified, True),
}


@legacy_endpoint(USER_SCOPE)
async def user_list(call: Call) -> dict[str, Any]:
    dept = _dept_or_60003(call, legacy_int(call.params, "dept_id"))
    cursor = legacy_int(call.params, "cursor")
    size = legacy_int(call.params, "size")
    if not 1 <= size <= USER_LIST_MAX or cursor < 0:
        raise LegacyError(400002, f"无效的参数: size 须在 1..{USER_LIST_MAX}, cursor ≥ 0")
    members = _people(call).members(dept.dept_id)
    order = str(call.params.get("order_field") or "custom")
    if order in _ORDER_KEYS:
        key, rev = _ORDER_KEYS[order]
        members = sorted(members, key=key, reverse=rev)
    page = members[cursor : cursor + size]
    has_more = cursor + size < len(members)
    # The reference's example returns next_cursor even with has_more=false: has_more is the end signal.
    return {
        "result": {
            "has_more": has_more,
            "next_cursor": cursor + len(page),
            "list": [u.to_api() for u in page],
        }
    }


def _user_detail(people: Any, user: User) -> dict[str, Any]:
    d = user.to_api()
    managers = [m for m in people.members(user.dept_id_list[0]) if m.leader and m.userid != user.userid]
    d.update(
        {
            "manager_userid": managers[0].userid if managers else people.admin.userid,
            "real_authed": True,
            "senior": False,
            "dept_order_list": [{"dept_id": dept_id, "order": 0} for dept_id in user.dept_id_list],
            "leader_in_dept": [{"dept_id": dept_id, "leader": user.leader} for dept_id in user.dept_id_list],
            "role_list": [{"id": 1, "name": "主管理員" if user.admin else "員工", "group_name": "默認"}],
            "union_emp_ext": {},
        }
    )
    return d


@legacy_endpoint(USER_SCOPE)
async def user_get(call: Call) -> dict[str, Any]:
    people = _people(call)
    userid = str(call.params.get("userid") or "")
    if not userid:
        raise LegacyError(40035, "不合法的参数: 缺少参数 userid")
    user = people.user(userid)
    if user is None:
        if people.resigned_user(userid) is not None:
            raise LegacyError(60121, "找不到该用户")  # (uncertain) left users are no longer found
        raise LegacyError(33012, "无效的USERID")
    return {"result": _user_detail(people, user)}


@api_endpoint(LEAVE_SCOPE)
async def emp_leave_records(call: Call) -> dict[str, Any]:
    q = call.params
    now = call.state.now_ms()
    try:
        start = parse_iso(q["startTime"]) if q.get("startTime") else None
        end = parse_iso(q["endTime"]) if q.get("endTime") else now
    except ValueError:
        raise ApiError(400, "invalidParameter", "startTime/endTime must be YYYY-MM-DDTHH:mm:ssZ") from None
    if start is None:
        raise ApiError(400, "invalidParameter", "startTime is mandatory for this action")
    if end < start or end - start > LEAVE_WINDOW_DAYS * DAY_MS:
        raise ApiError(
            400, "invalidParameter", "endTime - startTime must be within 365 days"
        )  # (uncertain code)
    max_results = api_int(q, "maxResults")
    if not 1 <= max_results <= 50:
        raise ApiError(400, "invalidParameter", "maxResults must be 1..50")
    offset = _offset_token(q.get("nextToken"))
    hits = [r for r in _people(call).resigned if start <= r.leave_time <= end]
    page = hits[offset : offset + max_results]
    body: dict[str, Any] = {
        "records": [
            {
                "userId": r.user.userid,
                "name": r.user.name,
                "stateCode": r.user.state_code,
                "mobile": r.user.mobile,
                "leaveTime": iso_seconds(r.leave_time),
                "leaveReason": r.leave_reason,
            }
            for r in page
        ]
    }
    if offset + max_results < len(hits):
        body["nextToken"] = _encode_offset(offset + max_results)
    return body


def _encode_offset(n: int) -> str:
    # Opaque-looking like the reference's "DCCD7A656FFA6F07"; the offset is recoverable.
    return f"{n ^ 0x5A5A5A5A:016X}"


def _offset_token(token: Any) -> int:
    if token in (None, "", "0", 0):
        return 0
    try:
        return int(str(token), 16) ^ 0x5A5A5A5A
    except ValueError:
        raise ApiError(400, "invalidParameter", "nextToken is invalid") from None


@api_endpoint(HRM_SCOPE)
async def hrm_dismissions(call: Call) -> dict[str, Any]:
    q = call.params
    offset = api_int(q, "nextToken", 0)
    max_results = api_int(q, "maxResults", 30)
    if not 1 <= max_results <= 50 or offset < 0:
        raise ApiError(400, "invalidParameter", "maxResults must be 1..50")
    ids = [r.user.userid for r in _people(call).resigned]
    page = ids[offset : offset + max_results]
    has_more = offset + max_results < len(ids)
    return {"nextToken": offset + len(page), "hasMore": has_more, "userIdList": page}


@api_endpoint(HRM_SCOPE)
async def hrm_dimission_infos(call: Call) -> dict[str, Any]:
    people = _people(call)
    raw = call.params.get("userIdList")
    try:
        ids = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        ids = str(raw).split(",")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 50:
        raise ApiError(400, "invalidParameter", "userIdList must hold 1..50 user ids")
    result = []
    for userid in ids:
        r = people.resigned_user(str(userid))
        if r is None:
            continue
        dept_id = r.user.dept_id_list[0]
        dept = people.dept(dept_id)
        dept_name = dept.name if dept else ""
        result.append(
            {
                "userId": r.user.userid,
                "lastWorkDay": r.leave_time,
                "deptList": [
                    {"dept_path": f"{people.dept(ROOT_DEPT_ID).name}-{dept_name}", "dept_id": dept_id}
                ],
                "reasonMemo": r.reason_memo,
                "preStatus": 2,
                "handoverUserId": r.handover_userid,
                "status": 2,
                "mainDeptName": dept_name,
                "mainDeptId": dept_id,
                "voluntaryReason": ["個人原因"] if r.leave_reason == "leave" else [],
                "passiveReason": [],
            }
        )
    return {"result": result}


def _dimission_detail(people: Any, r: Any) -> tuple[int, str, str]:
    dept_id = r.user.dept_id_list[0]
    dept = people.dept(dept_id)
    name = dept.name if dept else ""
    return dept_id, name, f"{people.dept(ROOT_DEPT_ID).name}-{name}"


@legacy_endpoint(HRM_SCOPE)
async def legacy_querydimission(call: Call) -> dict[str, Any]:
    """Archived `topapi/smartwork/hrm/employee/querydimission`: offset/size, no next_cursor ⇒ done."""
    offset, size = legacy_int(call.params, "offset", 0), legacy_int(call.params, "size", 50)
    if not 1 <= size <= 50 or offset < 0:
        raise LegacyError(400002, "size 须在 1..50")
    ids = [r.user.userid for r in _people(call).resigned]
    result: dict[str, Any] = {"data_list": ids[offset : offset + size]}
    if offset + size < len(ids):
        result["next_cursor"] = offset + size
    return {"result": result, "success": True}


@legacy_endpoint(HRM_SCOPE)
async def legacy_listdimission(call: Call) -> dict[str, Any]:
    """Archived `topapi/smartwork/hrm/employee/listdimission`: `userid_list` is a comma string (≤ 50)."""
    people = _people(call)
    ids = [u for u in str(call.params.get("userid_list") or "").split(",") if u]
    if not 1 <= len(ids) <= 50:
        raise LegacyError(400002, "userid_list 须含 1..50 个 userid")
    out = []
    for userid in ids:
        r = people.resigned_user(userid)
        if r is None:
            continue
        dept_id, name, path = _dimission_detail(people, r)
        out.append(
            {
                "userid": userid,
                "last_work_day": r.leave_time,
                "dept_list": [{"dept_id": dept_id, "dept_path": path}],
                "reason_memo": r.reason_memo,
                "reason_type": 1 if r.leave_reason == "leave" else 9,
                "pre_status": 2,
                "handover_userid": r.handover_userid,
                "status": 2,
                "main_dept_name": name,
                "main_dept_id": dept_id,
            }
        )
    return {"result": out}


# -- truth ---------------------------------------------------------------------------------------


def truth_departments(state: EmulatorState) -> Iterator[dict[str, Any]]:
    # Copies throughout: truth walks run in a worker thread while mutations may run.
    for d in list(state.org.people.departments):
        item: dict[str, Any] = {"id": str(d.dept_id), "name": d.name, "parent_id": d.parent_id or None}
        if d.removed:
            item["deleted"] = True
        yield item


def truth_users(state: EmulatorState) -> Iterator[dict[str, Any]]:
    people = state.org.people
    for u in list(people.users):
        yield {"id": u.userid, "unionid": u.unionid, "name": u.name, "dept_id_list": list(u.dept_id_list)}
    # Users who left while the emulator ran were visible before: a backup must mark them deleted.
    for left in list(people.left_during_run):
        u = left.user
        yield {
            "id": u.userid,
            "unionid": u.unionid,
            "name": u.name,
            "dept_id_list": list(u.dept_id_list),
            "deleted": True,
        }


def truth_resigned(state: EmulatorState) -> Iterator[dict[str, Any]]:
    for r in list(state.org.people.resigned):
        yield {
            "id": r.user.userid,
            "name": r.user.name,
            "leaveTime": iso_seconds(r.leave_time),
            "leaveReason": r.leave_reason,
        }


# -- mutations -----------------------------------------------------------------------------------


def _event_time(state: EmulatorState) -> str:
    return str(state.now_ms())


def _pick_user(state: EmulatorState, params: dict[str, Any], skip_leaders: bool = True) -> User:
    people = state.org.people
    if params.get("userid"):
        user = people.user(str(params["userid"]))
        if user is None:
            raise MutationError(f"no active user {params['userid']!r}")
        return user
    pool = [u for u in people.users if not (skip_leaders and (u.leader or u.admin))]
    if not pool:
        raise MutationError("no user to pick")
    return pool[int(params.get("rand", 0)) % len(pool)]


def _pick_dept(
    state: EmulatorState, params: dict[str, Any], key: str = "dept_id", allow_root: bool = False
) -> Department:
    people = state.org.people
    if params.get(key) is not None:
        dept = people.dept(int(params[key]))
        if dept is None:
            raise MutationError(f"no department {params[key]!r}")
        return dept
    pool = [d for d in people.live_departments() if allow_root or d.dept_id != ROOT_DEPT_ID]
    return pool[(int(params.get("rand", 0)) // 7) % len(pool)]


def m_user_join(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    people = state.org.people
    dept = _pick_dept(state, params)
    people.join_counter += 1
    user = people.add_user(people.join_counter, dept.dept_id, state.now_ms())
    if params.get("name"):
        user.name = str(params["name"])
    state.hub.publish_event("user_add_org", {"timeStamp": _event_time(state), "userId": [user.userid]})
    return {"userid": user.userid, "unionid": user.unionid, "dept_id": dept.dept_id}


def m_user_leave(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    people = state.org.people
    user = _pick_user(state, params)
    left = people.remove_user(user.userid, state.now_ms())
    people.left_during_run.append(left)
    state.hub.publish_event("user_leave_org", {"timeStamp": _event_time(state), "userId": [user.userid]})
    return {"userid": user.userid, "leaveTime": iso_seconds(left.leave_time)}


def m_user_move(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    user = _pick_user(state, params)
    dept = _pick_dept(state, {**params, "rand": int(params.get("rand", 0)) + 7})
    if dept.dept_id in user.dept_id_list and len(user.dept_id_list) == 1:
        pool = [
            d for d in state.org.people.live_departments() if d.dept_id not in (ROOT_DEPT_ID, dept.dept_id)
        ]
        if params.get("dept_id") is None and pool:
            dept = pool[int(params.get("rand", 0)) % len(pool)]
    user.dept_id_list = [dept.dept_id]
    user.modified = state.now_ms()
    state.org.people.changed()
    state.hub.publish_event("user_modify_org", {"timeStamp": _event_time(state), "userId": [user.userid]})
    return {"userid": user.userid, "dept_id": dept.dept_id}


def m_dept_create(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    people = state.org.people
    parent = _pick_dept(state, params, key="parent_id", allow_root=True)
    people.dept_counter += 1
    name = str(params.get("name") or f"新項目組 {people.dept_counter}")
    dept = people.add_department(name, parent.dept_id, people.dept_counter)
    state.hub.publish_event("org_dept_create", {"deptId": [dept.dept_id]})
    return {"dept_id": dept.dept_id, "name": dept.name, "parent_id": parent.dept_id}


def m_dept_rename(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    dept = _pick_dept(state, params)
    dept.name = str(
        params.get("name") or f"{dept.name.split('（')[0]}（{local_datetime(state.now_ms())[:10]} 重組）"
    )
    state.hub.publish_event("org_dept_modify", {"deptId": [dept.dept_id]})
    return {"dept_id": dept.dept_id, "name": dept.name}


def m_dept_remove(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    people = state.org.people
    if params.get("dept_id") is not None:
        dept = _pick_dept(state, params)
    else:
        # Only empty leaf departments can be removed (as in DingTalk); random mode creates one if none.
        empty = [
            d
            for d in people.live_departments()
            if d.dept_id != ROOT_DEPT_ID and not people.children(d.dept_id) and not people.members(d.dept_id)
        ]
        if not empty:
            raise MutationError("no empty department to remove")
        dept = empty[int(params.get("rand", 0)) % len(empty)]
    if dept.dept_id == ROOT_DEPT_ID or people.children(dept.dept_id) or people.members(dept.dept_id):
        raise MutationError(f"department {dept.dept_id} is not empty (or is the root)")
    dept.removed = True
    state.hub.publish_event("org_dept_remove", {"deptId": [dept.dept_id]})
    return {"dept_id": dept.dept_id}


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/topapi/v2/department/listsub", dept_listsub, methods=["POST", "GET"]),
        Route("/topapi/v2/department/listsubid", dept_listsubid, methods=["POST", "GET"]),
        Route("/topapi/v2/department/get", dept_get, methods=["POST", "GET"]),
        Route("/topapi/user/listid", user_listid, methods=["POST", "GET"]),
        Route("/topapi/v2/user/list", user_list, methods=["POST", "GET"]),
        Route("/topapi/v2/user/get", user_get, methods=["POST", "GET"]),
        Route("/v1.0/contact/empLeaveRecords", emp_leave_records, methods=["GET"]),
        Route("/v1.0/hrm/employees/dismissions", hrm_dismissions, methods=["GET"]),
        Route("/v1.0/hrm/employees/dimissionInfos", hrm_dimission_infos, methods=["GET"]),
        Route("/topapi/smartwork/hrm/employee/querydimission", legacy_querydimission, methods=["POST"]),
        Route("/topapi/smartwork/hrm/employee/listdimission", legacy_listdimission, methods=["POST"]),
    ]


def register(state: EmulatorState) -> None:
    people = state.org.people
    people.join_counter = 0
    people.dept_counter = 0
    people.left_during_run = []
    state.truth["department"] = truth_departments
    state.truth["user"] = truth_users
    state.truth["resigned_user"] = truth_resigned
    state.mutations.update(
        {
            "user.join": m_user_join,
            "user.leave": m_user_leave,
            "user.move": m_user_move,
            "dept.create": m_dept_create,
            "dept.rename": m_dept_rename,
            "dept.remove": m_dept_remove,
        }
    )
