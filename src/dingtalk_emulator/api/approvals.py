"""Approvals (§4): templates, instance ids (new + legacy), details (new + legacy), attachment URLs.

Window rules (§4.2): only startTime → it must be within 120 days of now; both → span ≤ 120 days and
startTime within 365 days. At most 10,000 ids are returned per (template, window) loop, as documented:
a client that needs more must use narrower windows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dingtalk_emulator.company.approvals import TEMPLATES, ApprovalBook, Instance
from dingtalk_emulator.company.seeding import DAY_MS, h64, iso_minutes, local_datetime, rng
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import ApiError, Call, LegacyError, api_endpoint, legacy_endpoint, legacy_int
from dingtalk_emulator.state import EmulatorState, MutationError

FORM_SCOPE = "Workflow.Form.Read"
READ_SCOPE = "Workflow.Instance.Read"
WRITE_SCOPE = "Workflow.Instance.Write"
MAX_RESULTS = 20
MAX_IDS_PER_LOOP = 10_000
URL_TTL_S = 15 * 60


def _book(call: Call | EmulatorState) -> ApprovalBook:
    state = call.state if isinstance(call, Call) else call
    return state.org.approvals


# -- templates -------------------------------------------------------------------------------------


@api_endpoint(FORM_SCOPE)
async def templates(call: Call) -> dict[str, Any]:
    book = _book(call)
    userid = call.params.get("userId", "")
    user = book.people.user(userid)
    if user is None:
        raise ApiError(400, "invalidParameter", "userId is invalid")
    if not (user.admin or user.boss):
        raise ApiError(403, "noPermission", "userId 没有 OA 审批管理权限")  # (uncertain) code name
    return {"result": [_template_api(t) for t in book.templates], "success": True}


def _template_api(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "iconName": t["iconName"],
        "flowTitle": t["flowTitle"],
        "processCode": t["processCode"],
        "newProcess": t["newProcess"],
        "gmtModified": iso_minutes(t["gmtModified"]),
        "attendanceType": t["attendanceType"],
        "iconUrl": t["iconUrl"],
    }


# -- instance id listing (shared by both generations) ------------------------------------------------


class WindowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _check_window(now: int, start: int, end: int | None) -> int:
    if end is None:
        if now - start > 120 * DAY_MS:
            raise WindowError("invalidInstanceListIdsStartTime", "startTime 须在当前时间 120 天以内")
        return now
    if end < start:
        raise WindowError("invalidEndTime", "endTime 不能早于 startTime")
    if end - start > 120 * DAY_MS or now - start > 365 * DAY_MS:
        raise WindowError(
            "invalidInstanceListIdsStartTime", "时间跨度不能超过 120 天，且 startTime 须在 365 天以内"
        )
    return end


def _list_ids(
    book: ApprovalBook,
    template: int,
    start: int,
    end: int,
    cursor: int,
    size: int,
    userids: set[str] | None,
    statuses: set[str] | None,
) -> tuple[list[str], int | None]:
    """One page of ids from position `cursor`; returns (ids, next position or None when done)."""
    first, count, extra = book.window(template, start, end)
    total = min(count + len(extra), MAX_IDS_PER_LOOP)
    out: list[str] = []
    pos = cursor
    tcount = len(TEMPLATES)
    while pos < total and len(out) < size:
        i = first + pos * tcount if pos < count else extra[pos - count]
        pos += 1
        if userids is not None or statuses is not None:
            inst = book.get(i)
            if userids is not None and inst.originator.userid not in userids:
                continue
            if statuses is not None and inst.status not in statuses:
                continue
        out.append(book.instance_id(i))
    return out, (pos if pos < total else None)


@api_endpoint(READ_SCOPE)
async def list_instance_ids(call: Call) -> dict[str, Any]:
    book, b = _book(call), call.body
    t = book.template_index(str(b.get("processCode") or ""))
    if t is None:
        raise ApiError(400, "invalidProcessCode", "processCode 不存在")
    try:
        start = int(b["startTime"])
        end = int(b["endTime"]) if b.get("endTime") not in (None, "") else None
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "invalidInstanceListIdsStartTime", "startTime is mandatory (ms)") from None
    try:
        size = int(b.get("maxResults", MAX_RESULTS))
    except (TypeError, ValueError):
        size = -1
    if not 1 <= size <= MAX_RESULTS:
        raise ApiError(400, "invalidMaxResults", f"maxResults 须在 1..{MAX_RESULTS}")
    try:
        cursor = int(b.get("nextToken") or 0)  # a Long in the request, a String in the response
    except (TypeError, ValueError):
        cursor = -1
    if cursor < 0:
        raise ApiError(400, "invalidNextToken", "nextToken 不合法")
    userids = b.get("userIds")
    if userids is not None and (not isinstance(userids, list) or len(userids) > 10):
        raise ApiError(400, "invalidUserIds", "userIds 最多 10 个")
    statuses = b.get("statuses")
    if statuses is not None and (
        not isinstance(statuses, list) or not set(statuses) <= {"RUNNING", "TERMINATED", "COMPLETED"}
    ):
        raise ApiError(400, "invalidParameter", "statuses ∈ RUNNING|TERMINATED|COMPLETED")
    try:
        end = _check_window(call.state.now_ms(), start, end)
    except WindowError as e:
        raise ApiError(400, e.code, e.message) from None
    ids, nxt = _list_ids(
        book,
        t,
        start,
        end,
        cursor,
        size,
        set(userids) if userids else None,
        set(statuses) if statuses else None,
    )
    result: dict[str, Any] = {"list": ids}
    if nxt is not None:
        result["nextToken"] = str(nxt)
    return {"result": result, "success": True}


@legacy_endpoint(READ_SCOPE)
async def legacy_listids(call: Call) -> dict[str, Any]:
    book, p = _book(call), call.params
    t = book.template_index(str(p.get("process_code") or ""))
    if t is None:
        raise LegacyError(400002, "无效的process_code")  # (uncertain) legacy code for a bad template
    start = legacy_int(p, "start_time")
    end = legacy_int(p, "end_time", -1)
    size = legacy_int(p, "size", 10)
    cursor = legacy_int(p, "cursor", 0)
    if not 1 <= size <= MAX_RESULTS or cursor < 0:
        raise LegacyError(400002, f"无效的参数: size 须在 1..{MAX_RESULTS}")
    raw_users = str(p.get("userid_list") or "")
    userids = {u for u in raw_users.split(",") if u} or None
    if userids is not None and len(userids) > 10:
        raise LegacyError(400002, "userid_list 最多 10 个")
    try:
        end = _check_window(call.state.now_ms(), start, None if end < 0 else end)
    except WindowError as e:
        raise LegacyError(400002, f"{e.code}: {e.message}") from None  # (uncertain) legacy errcode
    ids, nxt = _list_ids(book, t, start, end, cursor, size, userids, None)
    result: dict[str, Any] = {"list": ids}
    if nxt is not None:
        result["next_cursor"] = nxt  # absent ⇒ done
    return {"result": result}


# -- details ------------------------------------------------------------------------------------------


def _instance(call: Call, instance_id: str) -> Instance | None:
    book = _book(call)
    i = book.index_of(instance_id)
    return None if i is None else book.get(i)


def _dept(book: ApprovalBook, inst: Instance) -> tuple[str, str]:
    dept_id = inst.originator.dept_id_list[0]
    d = book.people.dept(dept_id)
    return str(dept_id), d.name if d else ""


def _tasks(book: ApprovalBook, inst: Instance) -> list[dict[str, Any]]:
    done = {rec["user"].userid: rec for rec in inst.records if rec["type"] == "EXECUTE_TASK_NORMAL"}
    tasks = []
    t_create = inst.create_ms
    for n, a in enumerate(inst.approvers):
        rec = done.get(a.userid)
        if rec:
            status, result, finish = "COMPLETED", rec["result"], rec["date"]
        elif inst.status == "RUNNING":
            status, result, finish = ("RUNNING" if n == len(done) else "NEW"), "NONE", None
        else:
            status, result, finish = "CANCELED", "NONE", inst.finish_ms
        task_id = 60_000_000_000 + h64(book.seed, "task", inst.index, n) % 10**10
        url = f"https://aflow.dingtalk.example/dingtalk/mobile/homepage.htm?procInstId={inst.id}&taskId={task_id}"
        tasks.append(
            {
                "taskId": task_id,
                "userId": a.userid,
                "status": status,
                "result": result,
                "createTime": iso_minutes(t_create),
                **({"finishTime": iso_minutes(finish)} if finish else {}),
                "mobileUrl": url,
                "pcUrl": url.replace("mobile", "pc"),
                "processInstanceId": inst.id,
                "activityId": f"act-{n + 1}",
                "taskGroupName": f"審批人{n + 1}",
            }
        )
        if rec:
            t_create = rec["date"]
    return tasks


def render_new(book: ApprovalBook, inst: Instance, api_created: bool = False) -> dict[str, Any]:
    dept_id, dept_name = _dept(book, inst)
    d: dict[str, Any] = {
        "title": inst.title,
        "createTime": iso_minutes(inst.create_ms),
        "originatorUserId": inst.originator.userid,
        "originatorDeptId": dept_id,
        "originatorDeptName": dept_name,
        "status": inst.status,
        "businessId": inst.business_id,
        "ccUserIds": [u.userid for u in inst.cc],
        "operationRecords": [
            {
                "userId": r["user"].userid,
                "date": iso_minutes(r["date"]),
                "type": r["type"],
                "result": r["result"],
                "showName": "審批人" if r["type"] == "EXECUTE_TASK_NORMAL" else "發起人",
                **({"remark": r["remark"]} if r["remark"] else {}),
            }
            for r in inst.records
        ],
        "tasks": _tasks(book, inst),
        "bizAction": "NONE",
        "attachedProcessInstanceIds": [],
        "formComponentValues": [dict(f) for f in inst.form],
    }
    if inst.finish_ms is not None:
        d["finishTime"] = iso_minutes(inst.finish_ms)
    if inst.result:
        d["result"] = inst.result
    if inst.index >= book.n:  # approverUserIds only appear for API-created instances (§4.3)
        d["approverUserIds"] = [u.userid for u in inst.approvers]
    return d


def render_legacy(book: ApprovalBook, inst: Instance) -> dict[str, Any]:
    dept_id, dept_name = _dept(book, inst)
    tasks = _tasks(book, inst)
    return {
        "title": inst.title,
        "create_time": local_datetime(inst.create_ms),
        **({"finish_time": local_datetime(inst.finish_ms)} if inst.finish_ms is not None else {}),
        "originator_userid": inst.originator.userid,
        "originator_dept_id": dept_id,
        "originator_dept_name": dept_name,
        "status": inst.status,
        "approver_userids": [u.userid for u in inst.approvers],
        "cc_userids": [u.userid for u in inst.cc],
        **({"result": inst.result} if inst.result else {}),
        "business_id": inst.business_id,
        "operation_records": [
            {
                "userid": r["user"].userid,
                "date": local_datetime(r["date"]),
                "operation_type": r["type"],
                "operation_result": r["result"],
                **({"remark": r["remark"]} if r["remark"] else {}),
            }
            for r in inst.records
        ],
        "tasks": [
            {
                "userid": t["userId"],
                "task_status": t["status"],
                "task_result": t["result"],
                "create_time": local_datetime(inst.create_ms),
                "taskid": str(t["taskId"]),
                "url": t["pcUrl"],
                "activity_id": t["activityId"],
            }
            for t in tasks
        ],
        "biz_action": "NONE",
        "attached_process_instance_ids": [],
        "form_component_values": [
            {"name": f["name"], "value": f["value"], "id": f["id"], "component_type": f["componentType"]}
            for f in inst.form
        ],
        "main_process_instance_id": "",
    }


@api_endpoint(READ_SCOPE)
async def instance_detail(call: Call) -> dict[str, Any]:
    pid = call.params.get("processInstanceId", "")
    if not pid:
        raise ApiError(400, "processInstanceIdError", "processInstanceId is mandatory")
    inst = _instance(call, pid)
    if inst is None:
        raise ApiError(400, "processInstanceNotExist", "审批实例不存在")
    return {"result": render_new(_book(call), inst), "success": "true"}  # documented as the string "true"


@legacy_endpoint(READ_SCOPE)
async def legacy_detail(call: Call) -> dict[str, Any]:
    pid = str(call.params.get("process_instance_id") or "")
    inst = _instance(call, pid) if pid else None
    if inst is None:
        raise LegacyError(400002, "审批实例不存在")  # (uncertain) legacy errcode
    return {"process_instance": render_legacy(_book(call), inst)}


# -- attachments ----------------------------------------------------------------------------------------


def _sign(key: bytes, path: str, expires: int) -> str:
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


@api_endpoint(WRITE_SCOPE)
async def attachment_url(call: Call) -> dict[str, Any]:
    b = call.body
    inst = _instance(call, str(b.get("processInstanceId") or ""))
    if inst is None:
        raise ApiError(400, "processInstNotExist", "审批实例不存在")
    att = next((a for a in inst.attachments if a.file_id == str(b.get("fileId") or "")), None)
    if att is None:
        raise ApiError(400, "invalidFileId", "fileId 不合法")
    state = call.state
    path = f"/_oss/approval/{inst.id}/{att.file_id}"
    expires = int(state.clock()) + URL_TTL_S
    sig = _sign(_book(call).url_key, path, expires)
    # Object names of client-uploaded files carry no real name (§4.4): restore from fileName/fileType.
    uri = f"{state.base_url}{path}/%23{att.file_id}.file?Expires={expires}&Signature={sig}"
    return {"result": {"spaceId": att.space_id, "fileId": att.file_id, "downloadUri": uri}, "success": True}


async def download(request: Request) -> Response:
    state = request.app.state.emulator
    book: ApprovalBook = state.org.approvals
    pid, fid = request.path_params["pid"], request.path_params["fid"]
    path = f"/_oss/approval/{pid}/{fid}"
    try:
        expires = int(request.query_params.get("Expires", ""))
    except ValueError:
        return PlainTextResponse("AccessDenied: missing Expires", status_code=403)
    sig = request.query_params.get("Signature", "")
    if not hmac.compare_digest(sig, _sign(book.url_key, path, expires)):
        return PlainTextResponse("SignatureDoesNotMatch", status_code=403)
    if state.clock() > expires:
        return PlainTextResponse("AccessDenied: Request has expired", status_code=403)
    i = book.index_of(pid)
    att = next((a for a in book.get(i).attachments if a.file_id == fid), None) if i is not None else None
    if att is None:
        return PlainTextResponse("NoSuchKey", status_code=404)
    return Response(att.content, media_type="application/octet-stream")


# -- truth and mutations ------------------------------------------------------------------------------------


def truth_item(book: ApprovalBook, inst: Instance) -> dict[str, Any]:
    return {
        "id": inst.id,
        "processCode": book.templates[inst.template]["processCode"],
        "title": inst.title,
        "status": inst.status,
        "result": inst.result,
        "version": inst.version,
        "createTime": inst.create_ms,
        "attachments": [book.attachment_truth(a) for a in inst.attachments],
    }


def truth_approvals(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = state.org.approvals
    for i in range(book.n):
        yield truth_item(book, book.get(i))
    for i in list(book.new_indices):  # a copy: truth walks run in a worker thread
        yield truth_item(book, book.get(i))


def truth_templates(state: EmulatorState) -> Iterator[dict[str, Any]]:
    for t in state.org.approvals.templates:
        yield {"id": t["processCode"], "flowTitle": t["flowTitle"]}


def truth_sensitive(state: EmulatorState) -> Iterator[dict[str, Any]]:
    """Where sensitive values were planted in approvals (forms) — scanning only the first 2,000 instances
    plus the overlay keeps this cheap for big profiles; the planting rule is the same everywhere."""
    book = state.org.approvals
    for i in [*range(min(book.n, 2000)), *list(book.new_indices)]:
        inst = book.get(i)
        for s in inst.sensitive:
            yield {"id": f"approval/{inst.id}/{s['type']}", "kind": "approval", "itemId": inst.id, **s}


def _event_base(book: ApprovalBook, inst: Instance, state: EmulatorState) -> dict[str, Any]:
    return {
        "processInstanceId": inst.id,
        "processCode": book.templates[inst.template]["processCode"],
        "bizCategoryId": "",
        "businessId": inst.business_id,
        "title": inst.title,
        "createTime": inst.create_ms,
        "staffId": inst.originator.userid,
        "url": f"https://aflow.dingtalk.example/dingtalk/mobile/homepage.htm?procInstId={inst.id}",
        "businessType": "",
    }


def _task_event(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """`bpms_task_change` data: exactly the §7.5 fields (no url/businessType, which are instance fields)."""
    keys = ("processInstanceId", "processCode", "bizCategoryId", "businessId", "title", "createTime")
    return {**{k: base[k] for k in keys}, "remark": "", **fields}


def _pick_running(book: ApprovalBook, params: dict[str, Any]) -> Instance:
    if params.get("processInstanceId"):
        i = book.index_of(str(params["processInstanceId"]))
        if i is None:
            raise MutationError(f"no approval {params['processInstanceId']!r}")
        inst = book.get(i)
        if inst.status != "RUNNING":
            raise MutationError(f"approval {inst.id} is {inst.status}, not RUNNING")
        return inst
    pool = book.running_indices()
    if not pool:
        raise MutationError("no RUNNING approval to change")
    return book.get(pool[int(params.get("rand", 0)) % len(pool)])


def m_start(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = state.org.approvals
    rand = int(params.get("rand", 0))
    if params.get("processCode"):
        t = book.template_index(str(params["processCode"]))
        if t is None:
            raise MutationError(f"no template {params['processCode']!r}")
    else:
        t = rand % len(TEMPLATES)
    people = state.org.people
    if params.get("userid"):
        who = people.user(str(params["userid"]))
        if who is None:
            raise MutationError(f"no active user {params['userid']!r}")
    else:
        who = people.users[(rand // 11) % len(people.users)]
    i = book.next_index()
    inst = book.build(i, t, state.now_ms(), who, rng(book.seed, "approval-new", i), running=True)
    book.add(inst)
    base = _event_base(book, inst, state)
    state.hub.publish_event("bpms_instance_change", {**base, "type": "start"})
    state.hub.publish_event(
        "bpms_task_change",
        _task_event(
            base, type="start", taskId=_tasks(book, inst)[0]["taskId"], staffId=inst.approvers[0].userid
        ),
    )
    return {"processInstanceId": inst.id, "processCode": base["processCode"]}


def _changed_copy(book: ApprovalBook, inst: Instance) -> Instance:
    from dataclasses import replace

    return replace(inst, records=list(inst.records), version=inst.version + 1)


def m_finish(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = state.org.approvals
    inst = _changed_copy(book, _pick_running(book, params))
    result = str(params.get("result") or ("refuse" if int(params.get("rand", 0)) % 5 == 0 else "agree"))
    if result not in ("agree", "refuse"):
        raise MutationError("result must be agree or refuse")
    now = state.now_ms()
    done = {r["user"].userid for r in inst.records if r["type"] == "EXECUTE_TASK_NORMAL"}
    tasks_before = _tasks(book, inst)
    for a in inst.approvers:
        if a.userid not in done:
            inst.records.append(
                {
                    "user": a,
                    "date": now,
                    "type": "EXECUTE_TASK_NORMAL",
                    "result": result.upper(),
                    "remark": "同意" if result == "agree" else "不同意",
                }
            )
    inst.status, inst.result, inst.finish_ms = "COMPLETED", result, now
    book.add(inst)
    base = _event_base(book, inst, state)
    for t in tasks_before:
        if t["status"] in ("RUNNING", "NEW"):
            state.hub.publish_event(
                "bpms_task_change",
                _task_event(
                    base,
                    type="finish",
                    result=result,
                    taskId=t["taskId"],
                    finishTime=now,
                    staffId=t["userId"],
                ),
            )
    state.hub.publish_event(
        "bpms_instance_change", {**base, "type": "finish", "result": result, "finishTime": now}
    )
    return {"processInstanceId": inst.id, "result": result, "version": inst.version}


def m_terminate(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = state.org.approvals
    inst = _changed_copy(book, _pick_running(book, params))
    now = state.now_ms()
    inst.records.append(
        {
            "user": inst.originator,
            "date": now,
            "type": "TERMINATE_PROCESS_INSTANCE",
            "result": "NONE",
            "remark": "撤銷",
        }
    )
    inst.status, inst.result, inst.finish_ms = "TERMINATED", "", now
    book.add(inst)
    state.hub.publish_event(
        "bpms_instance_change", {**_event_base(book, inst, state), "type": "terminate", "finishTime": now}
    )
    return {"processInstanceId": inst.id, "version": inst.version}


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/v1.0/workflow/processes/managements/templates", templates, methods=["GET"]),
        Route("/v1.0/workflow/processes/instanceIds/query", list_instance_ids, methods=["POST"]),
        Route("/v1.0/workflow/processInstances", instance_detail, methods=["GET"]),
        Route("/v1.0/workflow/processInstances/spaces/files/urls/download", attachment_url, methods=["POST"]),
        Route("/topapi/processinstance/listids", legacy_listids, methods=["POST"]),
        Route("/topapi/processinstance/get", legacy_detail, methods=["POST"]),
        Route("/_oss/approval/{pid}/{fid}/{name}", download, methods=["GET"]),
    ]


def register(state: EmulatorState) -> None:
    book = ApprovalBook(state.config.seed, profile_for(state.config), state.org.people)
    state.org.approvals = book
    state.truth["approval_template"] = truth_templates
    state.truth["approval"] = truth_approvals
    state.counts["approval"] = lambda s: s.org.approvals.n + len(s.org.approvals.new_indices)
    state.org.sensitive_sources.append(truth_sensitive)
    state.mutations.update(
        {"approval.start": m_start, "approval.finish": m_finish, "approval.terminate": m_terminate}
    )
