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

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from dingvault.source.collectors.base import as_list, is_family_fatal
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


class UserEntries(Mapping[str, dict[str, Any]]):
    """userid -> the user's `user/list` entry, as DingTalk sent it, in the order first listed.

    The directory lives for the whole run and every family holds it, so its size is paid once per
    person for the run's length: an entry is kept as its compact JSON (27 % of the parsed dict's
    memory for a realistic entry, and one object instead of a few dozen) and parsed again when
    asked for. What the other families look up on every record (unionId, admin) is kept beside
    it. An entry whose JSON would not read back equal is kept as it is.
    """

    def __init__(self) -> None:
        self._entries: dict[str, bytes | dict[str, Any]] = {}
        self.unionids: dict[str, str] = {}  # userid -> unionid, for users that have one
        self.userids: dict[str, str] = {}  # unionid -> userid (the last listed, for a shared one)
        self.admins: list[str] = []

    def add(self, userid: str, entry: dict[str, Any]) -> None:
        """Keep ``entry`` unless the user is already known (the first listing wins)."""
        if userid in self._entries:
            return
        kept: bytes | dict[str, Any] = entry
        try:
            # Copied: orjson hands back its whole 4 KiB working buffer, several times the JSON.
            packed = bytes(memoryview(orjson.dumps(entry)))
            if orjson.loads(packed) == entry:
                kept = packed
        except (TypeError, orjson.JSONEncodeError):
            pass
        self._entries[userid] = kept
        if entry.get("unionid"):
            union = str(entry["unionid"])
            self.unionids[userid] = union
            self.userids[union] = userid
        if entry.get("admin") is True:
            self.admins.append(userid)

    def __getitem__(self, userid: str) -> dict[str, Any]:
        kept = self._entries[userid]
        return orjson.loads(kept) if isinstance(kept, bytes) else kept

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, userid: object) -> bool:
        return userid in self._entries


@dataclass
class Directory:
    departments: dict[int, Department] = field(default_factory=dict)
    users: UserEntries = field(default_factory=UserEntries)  # userid -> raw list entry
    # Users whose listing failed for a department (the department's member list is incomplete).
    incomplete_departments: list[int] = field(default_factory=list)

    @classmethod
    async def load(cls, client: DingTalkClient, *, concurrency: int = 8) -> Directory:
        """Walk the tree, and read each department's detail and members as soon as it is found.

        The three APIs are paced separately (§0.5), so a department's detail and member list are
        asked while the walk goes on below it, instead of three phases one after the other: every
        other family waits for the directory, so its time is added to the whole run's.
        """
        loader = _Loader(client, concurrency)
        await loader.run()
        return loader.directory()

    # ---- look-ups the other families use

    def admins(self) -> list[str]:
        return list(self.users.admins)

    def unionid(self, userid: str) -> str | None:
        return self.users.unionids.get(userid)

    def userid_for_unionid(self, unionid: str) -> str | None:
        return self.users.userids.get(unionid)

    def people(self) -> list[tuple[str, str]]:
        """(userid, unionid) of every active user with a unionid, admins first."""
        admins = set(self.users.admins)
        return sorted(self.users.unionids.items(), key=lambda kv: (kv[0] not in admins, kv[0]))


class _Loader:
    """One directory read: the tree walk, details and member lists overlapped, results in BFS order."""

    def __init__(self, client: DingTalkClient, concurrency: int) -> None:
        self.client = client
        # One limit per API: a long walk does not hold back details or member lists.
        self.walk_slots = asyncio.Semaphore(concurrency)
        self.detail_slots = asyncio.Semaphore(concurrency)
        self.member_slots = asyncio.Semaphore(concurrency)
        self.children: dict[int, list[dict[str, Any]]] = {}  # parent -> listsub answer
        self.details: dict[int, dict[str, Any] | None] = {}
        self.members: dict[int, list[dict[str, Any]]] = {}
        self.incomplete: set[int] = set()
        self.started: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self.details[ROOT_DEPT_ID] = await _dept_detail(self.client, ROOT_DEPT_ID)
        self.started.add(ROOT_DEPT_ID)
        self._spawn(self._walk(ROOT_DEPT_ID))
        self._spawn(self._members(ROOT_DEPT_ID))
        try:
            while self.tasks:
                done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self.tasks.discard(task)
                    task.result()  # the first failure stops the whole read, as it is
        finally:
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        self.tasks.add(asyncio.ensure_future(coroutine))

    def _found(self, dept_id: int) -> None:
        if dept_id in self.started:  # listed twice (or a cyclic answer): read once
            return
        self.started.add(dept_id)
        self._spawn(self._walk(dept_id))
        self._spawn(self._detail(dept_id))
        self._spawn(self._members(dept_id))

    async def _walk(self, dept_id: int) -> None:
        try:
            async with self.walk_slots:
                children = await _children(self.client, dept_id)
        except NotFound:
            return  # removed while we walked the tree
        self.children[dept_id] = children
        for child in children:
            child_id = _int(child.get("dept_id"))
            if child_id is not None:
                self._found(child_id)

    async def _detail(self, dept_id: int) -> None:
        try:
            async with self.detail_slots:
                self.details[dept_id] = await _dept_detail(self.client, dept_id)
        except DingTalkError as exc:
            if is_family_fatal(exc):
                raise
            self.details[dept_id] = None

    async def _members(self, dept_id: int) -> None:
        try:
            async with self.member_slots:
                self.members[dept_id] = await _dept_users(self.client, dept_id)
        except DingTalkError as exc:
            if is_family_fatal(exc):
                raise
            self.incomplete.add(dept_id)

    def directory(self) -> Directory:
        """The tree in breadth-first order of the listsub answers, whatever order calls ended in.

        The order decides which parent a department listed twice belongs to, and which
        department's entry of a user (entries differ per department) is kept: it must not
        depend on timing, or an unchanged user would look changed from one run to the next.
        """
        directory = Directory()
        directory.departments[ROOT_DEPT_ID] = Department(
            ROOT_DEPT_ID, None, None, self.details.get(ROOT_DEPT_ID)
        )
        order = [ROOT_DEPT_ID]
        for parent in order:  # grows while iterated: a breadth-first walk of the recorded answers
            for child in self.children.get(parent, ()):
                child_id = _int(child.get("dept_id"))
                if child_id is None or child_id in directory.departments:
                    continue
                directory.departments[child_id] = Department(
                    child_id, _int(child.get("parent_id")) or parent, child, self.details.get(child_id)
                )
                order.append(child_id)
        for dept_id in order:
            if dept_id in self.incomplete:
                directory.incomplete_departments.append(dept_id)
                continue
            for user in self.members.get(dept_id, ()):
                userid = user.get("userid")
                if isinstance(userid, str) and userid:
                    directory.users.add(userid, user)
        return directory


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
