"""The organisation's directory: department tree and active users (dingtalk-api.md §2.1, §2.2).

Read once per run and shared: the contacts collector turns it into items, the other families
need it to know whose data to read (userIds for attendance, unionIds for storage / calendar /
todo, an approval admin for templates, department group chat ids for groups).

Departments: breadth-first from the root (`dept_id` 1) with `listsub` (direct children only, no
paging), plus `department/get` per department for the detail (incl. `dept_group_chat_id`).
Users: `topapi/v2/user/list` per department with `cursor`/`size` 100 until `has_more` is false.
All of these are exempt from the monthly quota (§0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dingvault.source.collectors.base import as_list, bounded_map, check, is_family_fatal
from dingvault.source.errors import BadResponse, DingTalkError, NotFound

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient

ROOT_DEPT_ID = 1
USER_PAGE_SIZE = 100  # documented maximum (§2.2)
LISTSUB = "/topapi/v2/department/listsub"
DEPT_GET = "/topapi/v2/department/get"
USER_LIST = "/topapi/v2/user/list"


@dataclass
class Department:
    dept_id: int
    parent_id: int | None
    listed: dict[str, Any] | None  # the `listsub` entry (None for the root)
    detail: dict[str, Any] | None  # `department/get` result (None if it vanished meanwhile)

    @property
    def name(self) -> str:
        for source in (self.detail, self.listed):
            if source and source.get("name"):
                return str(source["name"])
        return ""


@dataclass
class Directory:
    departments: dict[int, Department] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # userid -> raw list entry
    # Users whose listing failed for a department (the department's member list is incomplete).
    incomplete_departments: list[int] = field(default_factory=list)
    _by_union: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    async def load(cls, client: DingTalkClient, *, concurrency: int = 8) -> Directory:
        directory = cls()
        root_detail = await _dept_detail(client, ROOT_DEPT_ID)
        directory.departments[ROOT_DEPT_ID] = Department(ROOT_DEPT_ID, None, None, root_detail)
        level = [ROOT_DEPT_ID]
        seen = {ROOT_DEPT_ID}
        while level:
            next_level: list[int] = []
            async for parent, result in bounded_map(lambda d: _children(client, d), level, concurrency):
                if isinstance(result, NotFound):
                    continue  # removed while we walked the tree
                for child in check(result):
                    child_id = _int(child.get("dept_id"))
                    if child_id is None or child_id in seen:  # `seen` guards against a cyclic answer
                        continue
                    seen.add(child_id)
                    directory.departments[child_id] = Department(
                        child_id, _int(child.get("parent_id")) or parent, child, None
                    )
                    next_level.append(child_id)
            level = next_level
        children = [d for d in directory.departments if d != ROOT_DEPT_ID]
        async for dept_id, detail in bounded_map(lambda d: _dept_detail(client, d), children, concurrency):
            if isinstance(detail, BaseException) and is_family_fatal(detail):
                raise detail
            directory.departments[dept_id].detail = None if isinstance(detail, BaseException) else detail
        async for dept_id, users in bounded_map(
            lambda d: _dept_users(client, d), list(directory.departments), concurrency
        ):
            if isinstance(users, BaseException):
                if is_family_fatal(users):
                    raise users
                directory.incomplete_departments.append(dept_id)
                continue
            for user in users:
                userid = user.get("userid")
                if isinstance(userid, str) and userid:
                    directory.users.setdefault(userid, user)
        return directory

    # ---- look-ups the other families use

    def admins(self) -> list[str]:
        return [uid for uid, u in self.users.items() if u.get("admin") is True]

    def unionid(self, userid: str) -> str | None:
        user = self.users.get(userid)
        value = user.get("unionid") if user else None
        return str(value) if value else None

    def userid_for_unionid(self, unionid: str) -> str | None:
        if self._by_union is None or len(self._by_union) != len(self.users):
            self._by_union = {str(u["unionid"]): uid for uid, u in self.users.items() if u.get("unionid")}
        return self._by_union.get(unionid)

    def people(self) -> list[tuple[str, str]]:
        """(userid, unionid) of every active user with a unionid, admins first."""
        admins = set(self.admins())
        ordered = sorted(self.users.items(), key=lambda kv: (kv[0] not in admins, kv[0]))
        return [(uid, str(u["unionid"])) for uid, u in ordered if u.get("unionid")]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def _children(client: DingTalkClient, dept_id: int) -> list[dict[str, Any]]:
    body = await client.oapi("POST", LISTSUB, json={"dept_id": dept_id})
    result = body.get("result")
    if not isinstance(result, list):
        raise BadResponse(f"listsub of {dept_id}: result is not a list", endpoint=LISTSUB)
    return [d for d in result if isinstance(d, dict)]


async def _dept_detail(client: DingTalkClient, dept_id: int) -> dict[str, Any] | None:
    try:
        body = await client.oapi("POST", DEPT_GET, json={"dept_id": dept_id})
    except NotFound:
        return None
    result = body.get("result")
    return result if isinstance(result, dict) else None


async def _dept_users(client: DingTalkClient, dept_id: int) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    cursor = 0
    for _ in range(100_000 // USER_PAGE_SIZE + 1):  # the cursor is documented ≤ 100000
        try:
            body = await client.oapi(
                "POST", USER_LIST, json={"dept_id": dept_id, "cursor": cursor, "size": USER_PAGE_SIZE}
            )
        except NotFound:
            return users
        result = body.get("result") or {}
        if not isinstance(result, dict):
            raise BadResponse(f"user list of {dept_id}: result is not an object", endpoint=USER_LIST)
        users.extend(u for u in as_list(result.get("list")) if isinstance(u, dict))
        if not result.get("has_more"):
            return users
        next_cursor = result.get("next_cursor")
        if not isinstance(next_cursor, int) or next_cursor <= cursor:
            raise BadResponse(
                f"user list of {dept_id}: has_more without an advancing next_cursor ({next_cursor!r})",
                endpoint=USER_LIST,
            )
        cursor = next_cursor
    raise DingTalkError(f"user list of {dept_id} did not end", endpoint=USER_LIST)
