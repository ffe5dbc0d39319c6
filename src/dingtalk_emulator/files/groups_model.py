"""Groups reachable through the API: department groups and groups the app created.

Department groups use the chatid that `topapi/v2/department/get` reports as `dept_group_chat_id`
(the contacts family derives it from the seed and dept_id with the same formula, see
`dept_chat_id`). Every group has an `openConversationId` (`cid...`), members (userids), an
owner, a status (1 normal, 2 disbanded) and a file space (created with the storage model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dingtalk_emulator.company.seeding import h64 as company_h64

from .seeding import rng
from .storage_model import b62id

GROUP_NAMES = [
    "項目協調群",
    "澳門分店營運",
    "採購小組",
    "年度審計工作組",
    "客戶服務群",
    "Equipa de Obras",
    "IT Helpdesk",
    "橫琴項目組",
]


def dept_chat_id(seed: int, dept_id: int) -> str:
    # Must match api/contacts.py dept_get's dept_group_chat_id.
    return "chat" + f"{company_h64(seed, 'dept-chat', dept_id):016x}"


@dataclass
class Group:
    chatid: str
    open_conversation_id: str
    name: str
    owner: str  # userid
    origin: str  # dept | api
    create_ms: int
    dept_id: int = 0
    extra_members: list[str] = field(default_factory=list)  # api groups: explicit members
    removed_members: set[str] = field(default_factory=set)
    status: int = 1  # 1 normal, 2 disbanded
    version: int = 1
    space_id: str = ""
    robot_present: bool = False
    template_id: str = ""


class GroupsModel:
    def __init__(self, seed: int, people: Any, initial: Any, api_groups: int, anchor_ms: int) -> None:
        """`people` is the live org; `initial` the org as generated (groups start from it)."""
        self.seed = seed
        self.people = people
        self.initial = initial
        self.anchor_ms = anchor_ms
        self.groups: dict[str, Group] = {}  # by openConversationId
        self.by_chatid: dict[str, Group] = {}
        for dept in initial.departments:
            if dept.dept_id == 1:
                continue
            chatid = dept_chat_id(seed, dept.dept_id)
            members = initial.members(dept.dept_id)
            owner = next(
                (u.userid for u in members if u.leader),
                members[0].userid if members else initial.admin.userid,
            )
            born = anchor_ms - rng(seed, "group", chatid).randrange(100, 900) * 86_400_000
            self._add(Group(chatid, self._cid(chatid), dept.name, owner, "dept", born, dept_id=dept.dept_id))
        users = initial.users
        for i in range(api_groups):
            r = rng(seed, "api-group", i)
            chatid = "chat" + b62id(24, seed, "api-chat", i).lower()
            size = min(len(users), r.randrange(3, 30))
            members = [u.userid for u in r.sample(users, size)] if users else []
            name = GROUP_NAMES[i % len(GROUP_NAMES)] + (
                f" {i // len(GROUP_NAMES) + 1}" if i >= len(GROUP_NAMES) else ""
            )
            g = Group(
                chatid,
                self._cid(chatid),
                name,
                members[0] if members else initial.admin.userid,
                "api",
                anchor_ms - r.randrange(10, 500) * 86_400_000,
                extra_members=members,
            )
            g.robot_present = True  # the app created it, so its robot sits in it
            self._add(g)
        # The robot was also added to a few department groups.
        for g in list(self.groups.values()):
            if g.origin == "dept" and h_mod(seed, g.chatid, 3) == 0:
                g.robot_present = True

    def sync_departments(self, now_ms: int) -> list[Group]:
        """Follow the live org chart: a new department gets its group (born now), a removed one's
        group is disbanded. Returns the groups created (the caller gives them a file space)."""
        created = []
        for dept in self.people.departments:
            if dept.dept_id == 1:
                continue
            chatid = dept_chat_id(self.seed, dept.dept_id)
            g = self.by_chatid.get(chatid)
            if g is None and not dept.removed:
                members = self.people.members(dept.dept_id)
                owner = next(
                    (u.userid for u in members if u.leader),
                    members[0].userid if members else self.people.admin.userid,
                )
                g = Group(chatid, self._cid(chatid), dept.name, owner, "dept", now_ms, dept_id=dept.dept_id)
                self._add(g)
                created.append(g)
            elif g is not None and dept.removed and g.status == 1:
                g.status = 2
                g.version += 1
        return created

    def initial_member_unionids(self, g: Group) -> Callable[[], list[str]]:
        """Members as generated (authors of the group's generated files)."""

        def get() -> list[str]:
            people = self.initial
            ids = (
                [u.userid for u in people.members(g.dept_id)] if g.origin == "dept" else list(g.extra_members)
            )
            return [u.unionid for u in map(people.user, ids) if u is not None]

        return get

    def _cid(self, chatid: str) -> str:
        return "cid" + b62id(22, self.seed, "cid", chatid) + "=="

    def _add(self, g: Group) -> None:
        self.groups[g.open_conversation_id] = g
        self.by_chatid[g.chatid] = g

    def members(self, g: Group) -> list[str]:
        if g.origin == "dept":
            base = [u.userid for u in self.people.members(g.dept_id)]
        else:
            base = [u for u in g.extra_members if self.people.user(u) is not None]
        extra = [u for u in g.extra_members if g.origin == "dept" and self.people.user(u) is not None]
        seen: dict[str, None] = {}
        for u in base + extra:
            if u not in g.removed_members:
                seen[u] = None
        return list(seen)

    def member_unionids(self, g: Group) -> Callable[[], set[str]]:
        def get() -> set[str]:
            out = set()
            for userid in self.members(g):
                u = self.people.user(userid)
                if u is not None:
                    out.add(u.unionid)
            return out

        return get


def h_mod(seed: int, key: str, m: int) -> int:
    return company_h64(seed, "robot-in-group", key) % m
