"""Targeted reads of the contacts family (dingtalk-api.md §2, events §7.5).

* a user named by ``user_add_org`` / ``user_modify_org`` / ``user_active_org`` (``{"userId": [..]}``):
  ``POST topapi/v2/user/get`` says the user exists and in which departments; the item a collector
  stores is built from the user's entry in ``topapi/v2/user/list`` of their first department (plus
  the detail when ``user_details`` is set), so that entry is read too - two calls for a department
  of up to 100 people;
* a leaver (``user_leave_org``): ``user/get`` no longer finds them (§2.3, uncertain) - the user is
  marked deleted at source (the stored versions stay) - and their resigned-employee record is read
  from ``/v1.0/contact/empLeaveRecords`` in a short window around the event;
* a department named by ``org_dept_create`` / ``org_dept_modify`` (``{"deptId": [..]}``):
  ``department/get`` plus its entry in the parent's ``listsub``; ``org_dept_remove``, or a
  department/get answering "not found" (60003), marks it deleted at source.

Anything else (a user not in their department's listing, no leave record yet, an answer without
the expected fields) falls back to the contacts incremental.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dingvault.service.fetch_common import FallBack, read_all, within_limit
from dingvault.source.collectors.base import as_list, iso_seconds, now_ms
from dingvault.source.collectors.contacts import (
    LEAVE_PAGE_SIZE,
    LEAVE_RECORDS,
    USER_GET,
    department_item,
    resigned_item,
    user_item,
)
from dingvault.source.collectors.directory import DEPT_GET, LISTSUB, ROOT_DEPT_ID, USER_LIST, USER_PAGE_SIZE
from dingvault.source.errors import BadResponse, NotFound
from dingvault.source.items import Batch, Item

# A leave record is looked for from a little before the event (clock skew between DingTalk's
# event time and its leave time) until now.
LEAVE_LOOKBACK_MS = 10 * 60_000
MAX_PAGES = 1000


@dataclass
class ContactChanges:
    users: set[str] = field(default_factory=set)  # userids to read again
    leavers: dict[str, int | None] = field(default_factory=dict)  # userid -> event time (ms)
    departments: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.users or self.leavers or self.departments)


async def fetch_contacts(client: Any, changes: ContactChanges, scope: Any, settings: Any) -> list[Batch]:
    userids = sorted(changes.users | set(changes.leavers))
    dept_ids = sorted(changes.departments)
    within_limit(len(userids) + len(dept_ids), "users and departments")
    detail_wanted = bool(settings.user_details)
    users = await read_all(lambda u: _user(client, u, detail_wanted=detail_wanted), userids)
    depts = await read_all(lambda d: _department(client, d), dept_ids)
    items = [i for i in users + depts if i is not None]
    gone_users = [u for u, i in zip(userids, users, strict=True) if i is None]
    gone_depts = [str(d) for d, i in zip(dept_ids, depts, strict=True) if i is None]
    batches = [Batch(items=items)] if items else []
    if gone_users:
        batches.append(Batch(deleted=gone_users, deleted_kind="user"))
    if gone_depts:
        batches.append(Batch(deleted=gone_depts, deleted_kind="department"))
    left = [u for u in changes.leavers if u in gone_users]
    if left and scope.includes_kind("resigned_user"):
        since = min((t for u in left if (t := changes.leavers[u])), default=now_ms()) - LEAVE_LOOKBACK_MS
        batches.append(Batch(items=await _leave_records(client, left, since)))
    return batches


async def _user(client: Any, userid: str, *, detail_wanted: bool) -> Item | None:
    """The user's item as the contacts collector builds it, or None if DingTalk no longer knows them."""
    try:
        body = await client.oapi("POST", USER_GET, json={"userid": userid})
    except NotFound:
        return None
    detail = body.get("result")
    if not isinstance(detail, dict):
        raise BadResponse(f"user/get of {userid}: no result object", endpoint=USER_GET)
    depts = as_list(detail.get("dept_id_list"))
    if not depts:
        raise FallBack(f"user {userid}: no department to find the list entry in")
    entry = await _list_entry(client, depts[0], userid)
    if entry is None:
        raise FallBack(f"user {userid} is not in the listing of department {depts[0]}")
    return user_item(entry, detail if detail_wanted else None)


async def _list_entry(client: Any, dept_id: Any, userid: str) -> dict[str, Any] | None:
    cursor = 0
    for _ in range(MAX_PAGES):
        try:
            body = await client.oapi(
                "POST", USER_LIST, json={"dept_id": dept_id, "cursor": cursor, "size": USER_PAGE_SIZE}
            )
        except NotFound as exc:
            raise FallBack(f"department {dept_id} of user {userid} not found") from exc
        result = body.get("result") or {}
        if not isinstance(result, dict):
            raise BadResponse(f"user list of {dept_id}: result is not an object", endpoint=USER_LIST)
        for user in as_list(result.get("list")):
            if isinstance(user, dict) and user.get("userid") == userid:
                return user
        if not result.get("has_more"):
            return None
        next_cursor = result.get("next_cursor")
        if not isinstance(next_cursor, int) or next_cursor <= cursor:
            raise BadResponse(f"user list of {dept_id}: next_cursor does not advance", endpoint=USER_LIST)
        cursor = next_cursor
    raise BadResponse(f"user list of {dept_id} did not end", endpoint=USER_LIST)


async def _department(client: Any, dept_id: int) -> Item | None:
    try:
        body = await client.oapi("POST", DEPT_GET, json={"dept_id": dept_id})
    except NotFound:
        return None
    detail = body.get("result")
    if not isinstance(detail, dict):
        raise FallBack(f"department/get of {dept_id}: no result object")
    if dept_id == ROOT_DEPT_ID:
        return department_item(dept_id, None, detail)  # the root is listed by nobody
    parent = detail.get("parent_id")
    if parent is None:
        raise FallBack(f"department {dept_id} without parent_id")
    try:
        body = await client.oapi("POST", LISTSUB, json={"dept_id": parent})
    except NotFound as exc:
        raise FallBack(f"parent {parent} of department {dept_id} not found") from exc
    listed = next(
        (
            d
            for d in as_list(body.get("result"))
            if isinstance(d, dict) and str(d.get("dept_id")) == str(dept_id)
        ),
        None,
    )
    if listed is None:
        raise FallBack(f"department {dept_id} is not listed under its parent {parent}")
    return department_item(dept_id, listed, detail)


async def _leave_records(client: Any, userids: list[str], since_ms: int) -> list[Item]:
    wanted = set(userids)
    found: dict[str, Item] = {}
    token: Any = 0
    # The API takes whole seconds: pad the end so a departure in the current second is included.
    params = {"startTime": iso_seconds(since_ms), "endTime": iso_seconds(now_ms() + 60_000)}
    for _ in range(MAX_PAGES):
        body = await client.api(
            "GET", LEAVE_RECORDS, params={**params, "nextToken": token, "maxResults": LEAVE_PAGE_SIZE}
        )
        for record in as_list(body.get("records")):
            userid = record.get("userId") if isinstance(record, dict) else None
            if userid in wanted and userid not in found:
                found[userid] = resigned_item(record)
        next_token = body.get("nextToken")
        if next_token in (None, "", 0, "0") or next_token == token:
            break
        token = next_token
    missing = wanted - set(found)
    if missing:
        raise FallBack(f"no leave record yet for {sorted(missing)[:3]}")
    return list(found.values())
