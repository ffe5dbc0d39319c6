"""Contacts (dingtalk-api.md §2): departments, active users, resigned employees.

The department tree and the member list are always captured completely, whatever the scope:
they are what scopes are resolved against (the engine learns the tree from these items) and what
every other record refers to. They are cheap — all contacts APIs are exempt from the monthly quota.

Resigned employees come from `GET /v1.0/contact/empLeaveRecords` in ≤ 365-day windows
(`startTime`/`endTime` as `YYYY-MM-DDTHH:mm:ssZ`, `maxResults` ≤ 50, first `nextToken` = 0).
Once someone has left, `topapi/v2/user/get` no longer finds them (§2.3, uncertain), so their last
user record is whatever the previous backup holds — the engine keeps it, marked deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    bounded_map,
    content_hash,
    iso_from_ms,
    iso_seconds,
    normalise_iso,
    now_ms,
    stable_hash,
    windows,
)
from dingvault.source.collectors.directory import DEPT_GET, LISTSUB, USER_LIST, Directory
from dingvault.source.errors import BadResponse, NotFound
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

LEAVE_RECORDS = "/v1.0/contact/empLeaveRecords"
USER_GET = "/topapi/v2/user/get"
LEAVE_WINDOW_DAYS = 365
LEAVE_PAGE_SIZE = 50
ORG_CONTAINER = "org"
BATCH_SIZE = 200


class ContactsCollector(Collector):
    name = "contacts"
    family = "contacts"
    kinds = ("department", "user", "resigned_user")
    # The department-list scope is not named by the reference (uncertain); qyapi_get_member is.
    scopes = ("qyapi_get_member", "Contact.Common.Read")
    apis = (LISTSUB, DEPT_GET, USER_LIST, USER_GET, LEAVE_RECORDS)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        departments = [department_item(d.dept_id, d.listed, d.detail) for d in directory.departments.values()]
        yield Batch(items=departments, complete=[CompleteListing("department", ORG_CONTAINER)])
        # Users leave in batches as their details come, not once every detail is in: the details
        # and items of a whole org would otherwise be held at once.
        items: list[Item] = []
        async for userid, detail in self._details(list(directory.users)):
            items.append(user_item(directory.users[userid], detail))
            if len(items) >= BATCH_SIZE:
                yield Batch(items=items)
                items = []
        if items:
            yield Batch(items=items)
        if not directory.incomplete_departments:
            # Every department's member list was read: anyone not listed has left.
            yield Batch(complete=[CompleteListing("user", ORG_CONTAINER)])
        else:
            self.problems.extend(f"members of department {d}" for d in directory.incomplete_departments)
        if scope.includes_kind("resigned_user"):
            async for batch in self._resigned(mode, cursors):
                yield batch
        self.finish()

    async def _details(self, userids: list[str]) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """Each user with their detail (None when not asked for or not read), in listing order."""
        if not self.settings.user_details:
            for userid in userids:
                yield userid, None
            return
        async for userid, detail in bounded_map(self._user_detail, userids, self.settings.concurrency):
            if isinstance(detail, NotFound):
                yield userid, None  # left between the listing and now: the listing's entry stays
            elif isinstance(detail, BaseException):
                self.note_problem(f"detail of user {userid}", detail)
                yield userid, None
            else:
                yield userid, detail

    async def _user_detail(self, userid: str) -> dict[str, Any]:
        body = await self.client.oapi("POST", USER_GET, json={"userid": userid})
        result = body.get("result")
        if not isinstance(result, dict):
            raise BadResponse(f"user/get of {userid}: no result object", endpoint=USER_GET)
        return result

    async def _resigned(
        self, mode: Mode, cursors: Mapping[CursorKey, dict[str, Any]]
    ) -> AsyncIterator[Batch]:
        state = self.cursor(cursors, "resigned")
        end = now_ms()
        start = end - self.settings.resigned_history_days * DAY_MS
        if mode == "incremental" and isinstance(state.get("until"), int):
            start = max(start, state["until"] - self.settings.lookback_seconds * 1000)
        seen: set[str] = set()
        # The API takes whole seconds: pad the end so a departure in the current second is included.
        for window_start, window_end in windows(start, end + 60_000, LEAVE_WINDOW_DAYS * DAY_MS - 1000):
            items: list[Item] = []
            async for record in self._leave_records(window_start, window_end):
                userid = record.get("userId")
                if not isinstance(userid, str) or userid in seen:
                    continue
                seen.add(userid)
                items.append(resigned_item(record))
            yield Batch(
                items=items, cursor=CursorUpdate(self.name, "resigned", {"until": min(window_end, end)})
            )

    async def _leave_records(self, start: int, end: int) -> AsyncIterator[dict[str, Any]]:
        token: Any = 0
        for _ in range(100_000):
            body = await self.client.api(
                "GET",
                LEAVE_RECORDS,
                params={
                    "startTime": iso_seconds(start),
                    "endTime": iso_seconds(end),
                    "nextToken": token,
                    "maxResults": LEAVE_PAGE_SIZE,
                },
            )
            for record in as_list(body.get("records")):
                if isinstance(record, dict):
                    yield record
            next_token = body.get("nextToken")
            if next_token in (None, "", 0, "0"):
                return
            if next_token == token:
                raise BadResponse("empLeaveRecords returned the same nextToken again", endpoint=LEAVE_RECORDS)
            token = next_token


def department_item(dept_id: int, listed: dict[str, Any] | None, detail: dict[str, Any] | None) -> Item:
    raw: dict[str, Any] = {}
    if listed is not None:
        raw["listsub"] = listed
    if detail is not None:
        raw["detail"] = detail
    source = detail or listed or {}
    parent = source.get("parent_id")
    fields = {
        "name": source.get("name"),
        "title": source.get("name"),
        "parent_id": parent,
        "dept_id": dept_id,
    }
    if detail:
        fields["dept_group_chat_id"] = detail.get("dept_group_chat_id")
        fields["member_count"] = detail.get("member_count")
        fields["owner"] = detail.get("org_dept_owner") or None
    # Member counts follow from the users (versioned themselves): not a change of the department.
    derived = ("member_count", "owning_member_count")
    key = {name: stable_hash(payload, derived) for name, payload in raw.items()}
    return Item(
        kind="department",
        source_id=str(dept_id),
        raw=raw,
        fields=fields,
        version_key=content_hash(key),
        container=ORG_CONTAINER,
    )


def user_item(raw_user: dict[str, Any], detail: dict[str, Any] | None = None) -> Item:
    raw: dict[str, Any] = {"list": raw_user}
    if detail is not None:
        raw["detail"] = detail
    depts = as_list(raw_user.get("dept_id_list"))
    fields = {
        "name": raw_user.get("name"),
        "title": raw_user.get("name"),
        "job_title": raw_user.get("title"),
        "unionid": raw_user.get("unionid"),
        "dept_id_list": depts,
        "dept_id": depts[0] if depts else None,
        "email": raw_user.get("org_email") or raw_user.get("email") or None,
        "admin": raw_user.get("admin"),
        "active": raw_user.get("active"),
        "created": iso_from_ms(raw_user.get("hired_date")),
        "status": "active" if raw_user.get("active", True) else "inactive",
    }
    return Item(
        kind="user",
        source_id=str(raw_user["userid"]),
        raw=raw,
        fields=fields,
        version_key=content_hash(raw),
        container=ORG_CONTAINER,
    )


def resigned_item(record: dict[str, Any]) -> Item:
    return Item(
        kind="resigned_user",
        source_id=str(record["userId"]),
        raw={"leave_record": record},
        fields={
            "name": record.get("name"),
            "title": record.get("name"),
            "modified": normalise_iso(record.get("leaveTime")),
            "status": record.get("leaveReason"),
        },
        version_key=str(record.get("leaveTime")),
        container=ORG_CONTAINER,
    )


__all__ = ["ContactsCollector", "Directory", "department_item", "resigned_item", "user_item"]
