"""The org chart: departments, active employees and employees who left — generated from the seed.

People are few (≤ a few thousand), so they are built eagerly at start-up and kept in memory; the
records families derive everything else from them lazily. Mutations (join/leave/move, department
create/rename/remove) change this model in place.

API (used by every family):

    people = state.org.people
    people.departments            list[Department], root (dept_id 1) first, then breadth-first
    people.dept(dept_id)          Department | None (removed departments are not returned)
    people.children(dept_id)      direct sub-departments, in order
    people.users                  list[User]: active employees, in generation order (stable)
    people.user(userid)           active User | None
    people.by_unionid(unionid)    active User | None
    people.members(dept_id)       active users whose dept_id_list contains dept_id (direct members);
                                  after changing a user's dept_id_list directly, call people.changed()
    people.resigned               list[ResignedUser] (left before start-up or via a leave mutation)
    people.admin                  the approval admin (a User in 總經理辦公室; holds OA admin rights)

User fields: userid, unionid, name, name_en, lang (zh-Hant|pt|en), dept_id_list, title, mobile
(`6xxxxxxx`, local part), state_code (`853`/`852`/`86`), email, org_email, job_number, hired_date (ms),
work_place, admin, boss, leader, index (stable generation index; -1 for users added by mutation),
modified (ms). `user.to_api()` renders the `topapi/v2/user/list` entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dingtalk_emulator.company import names
from dingtalk_emulator.company.seeding import DAY_MS, b62id, h64, rng

ROOT_DEPT_ID = 1


@dataclass
class Department:
    dept_id: int
    name: str
    parent_id: int  # the root has none on the wire; 0 internally
    order: int
    removed: bool = False

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "dept_id": self.dept_id,
            "name": self.name,
            "create_dept_group": True,
            "auto_add_user": True,
        }
        if self.dept_id != ROOT_DEPT_ID:
            d["parent_id"] = self.parent_id
        return d


@dataclass
class User:
    userid: str
    unionid: str
    name: str
    name_en: str
    lang: str
    dept_id_list: list[int]
    title: str
    mobile: str
    state_code: str
    email: str
    org_email: str
    job_number: str
    hired_date: int
    work_place: str
    admin: bool = False
    boss: bool = False
    leader: bool = False
    index: int = -1
    modified: int = 0
    avatar: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "userid": self.userid,
            "unionid": self.unionid,
            "name": self.name,
            "avatar": self.avatar,
            "state_code": self.state_code,
            "mobile": self.mobile,
            "hide_mobile": False,
            "telephone": "",
            "job_number": self.job_number,
            "title": self.title,
            "email": self.email,
            "org_email": self.org_email,
            "work_place": self.work_place,
            "remark": "",
            "dept_id_list": list(self.dept_id_list),
            "dept_order": 0,
            "extension": json.dumps({"英文名": self.name_en}, ensure_ascii=False),
            "hired_date": self.hired_date,
            "active": True,
            "admin": self.admin,
            "boss": self.boss,
            "leader": self.leader,
            "exclusive_account": False,
        }


@dataclass
class ResignedUser:
    user: User
    leave_time: int  # ms
    leave_reason: str  # oapi | cancel | leave | unknown | delete
    handover_userid: str = ""
    reason_memo: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _user(seed: int, index: int, dept_id: int, dept_name: str, anchor_ms: int, salt: str = "") -> User:
    r = rng(seed, "user" + salt, index)
    name, name_en, lang = names.person_name(r)
    region = "853" if r.random() < 0.8 else r.choice(("852", "86"))
    mobile = (
        f"6{r.randrange(10**7):07d}"
        if region == "853"
        else f"{r.choice('5679')}{r.randrange(10**7):07d}"
        if region == "852"
        else f"1{r.choice('3589')}{r.randrange(10**9):09d}"
    )
    slug = name_en.lower().replace(" ", ".").replace("é", "e").replace("ó", "o").replace("í", "i")
    slug = slug.replace("á", "a").replace("ê", "e").replace("ú", "u").replace("ô", "o")
    top = dept_name
    titles = names.TITLES.get(top, ("職員",))
    hired = anchor_ms - r.randrange(60, 3650) * DAY_MS + r.randrange(9 * 3600_000, 10 * 3600_000)
    userid = f"{h64(seed, 'userid' + salt, index) % 10**16:016d}"
    return User(
        userid=userid,
        unionid=b62id(seed, "unionid" + salt, index, length=27) + "iE",
        name=name,
        name_en=name_en,
        lang=lang,
        dept_id_list=[dept_id],
        title=r.choice(titles),
        mobile=mobile,
        state_code=region,
        email=f"{slug}{index}@example.mo",
        org_email=f"{slug}{index}@houkong.example.mo",
        job_number=f"HK{index + 1:05d}" if index >= 0 else "",
        hired_date=hired,
        work_place=r.choice(names.WORK_PLACES),
        index=index,
        modified=hired,
        avatar=f"https://static.dingtalk.example/media/avatar_{h64(seed, 'avatar' + salt, index) % 10**8:08d}.png",
    )


class People:
    def __init__(
        self, seed: int, users: int, resigned: int, teams_per_department: int, anchor_ms: int
    ) -> None:
        self.seed = seed
        self.anchor_ms = anchor_ms
        self.departments: list[Department] = []
        self._depts: dict[int, Department] = {}
        self._top_of: dict[int, str] = {}  # dept_id -> top-level department name (for titles)
        self.users: list[User] = []
        self._by_userid: dict[str, User] = {}
        self._by_unionid: dict[str, User] = {}
        self.resigned: list[ResignedUser] = []
        self._members: dict[int, list[User]] | None = None  # dept_id -> direct members (lazy index)
        self._build_departments(teams_per_department)
        self._build_users(users)
        self._build_resigned(resigned)

    # -- generation ----------------------------------------------------------------------------
    def _new_dept_id(self, salt: object) -> int:
        # Real dept ids are large integers (e.g. 37000095); keep them unique.
        n = 30_000_000 + h64(self.seed, "dept", salt) % 900_000_000
        while n in self._depts:
            n += 1
        return n

    def _add_dept(self, dept: Department, top_name: str) -> None:
        self.departments.append(dept)
        self._depts[dept.dept_id] = dept
        self._top_of[dept.dept_id] = top_name

    def _build_departments(self, teams: int) -> None:
        self._add_dept(Department(ROOT_DEPT_ID, names.COMPANY_NAME, 0, 0), "")
        subs: list[tuple[int, str, tuple[str, ...]]] = []
        for order, (top, children) in enumerate(names.DEPARTMENTS):
            dept = Department(self._new_dept_id(top), top, ROOT_DEPT_ID, order)
            self._add_dept(dept, top)
            extra = tuple(f"{top}第{n + 1}小組" for n in range(teams))
            subs.append((dept.dept_id, top, children + extra))
        for parent_id, top, children in subs:
            for order, child in enumerate(children):
                self._add_dept(Department(self._new_dept_id(child), child, parent_id, order), top)

    def _leaf_choices(self) -> list[Department]:
        return [d for d in self.departments if d.dept_id != ROOT_DEPT_ID]

    def _build_users(self, count: int) -> None:
        choices = self._leaf_choices()
        for i in range(count):
            # The first user of each top-level department leads it; user 0 is the boss.
            if i < len(names.DEPARTMENTS):
                dept = next(d for d in choices if d.name == names.DEPARTMENTS[i][0])
            else:
                dept = choices[h64(self.seed, "user-dept", i) % len(choices)]
            user = _user(self.seed, i, dept.dept_id, self._top_of[dept.dept_id], self.anchor_ms)
            if i < len(names.DEPARTMENTS):
                user.leader = True
                user.title = names.TITLES.get(dept.name, ("主管",))[0]
            if i == 0:
                user.boss = user.admin = True
            if i > 0 and h64(self.seed, "user-2nd-dept", i) % 17 == 0:  # a few people sit in two departments
                other = choices[h64(self.seed, "user-dept2", i) % len(choices)]
                if other.dept_id != dept.dept_id:
                    user.dept_id_list.append(other.dept_id)
            self._index_user(user)
        self.admin = self.users[0]

    def _build_resigned(self, count: int) -> None:
        choices = self._leaf_choices()
        for i in range(count):
            dept = choices[h64(self.seed, "resigned-dept", i) % len(choices)]
            user = _user(self.seed, i, dept.dept_id, self._top_of[dept.dept_id], self.anchor_ms, salt="-left")
            user.job_number = f"HKX{i + 1:04d}"
            r = rng(self.seed, "resigned", i)
            # Most left within the last year (reachable through empLeaveRecords' 365-day windows); some earlier.
            days_ago = r.randrange(1, 365) if r.random() < 0.85 else r.randrange(366, 900)
            leave = self.anchor_ms - days_ago * DAY_MS + r.randrange(9 * 3600_000, 18 * 3600_000)
            user.hired_date = min(user.hired_date, leave - 30 * DAY_MS)
            reason = r.choice(("leave", "leave", "leave", "oapi", "unknown"))
            memo = r.choice(
                ("個人發展", "家庭原因", "移居葡萄牙 / mudança para Portugal", "Career change", "合約期滿")
            )
            handover = self.users[r.randrange(len(self.users))].userid if self.users else ""
            self.resigned.append(ResignedUser(user, leave, reason, handover, memo))
        self.resigned.sort(key=lambda x: x.leave_time)

    # -- lookups -------------------------------------------------------------------------------
    def _index_user(self, user: User) -> None:
        self._members = None
        self.users.append(user)
        self._by_userid[user.userid] = user
        self._by_unionid[user.unionid] = user

    def dept(self, dept_id: int) -> Department | None:
        d = self._depts.get(dept_id)
        return None if d is None or d.removed else d

    def children(self, dept_id: int) -> list[Department]:
        return [
            d for d in self.departments if d.parent_id == dept_id and not d.removed and d.dept_id != dept_id
        ]

    def top_name(self, dept_id: int) -> str:
        return self._top_of.get(dept_id, "")

    def user(self, userid: str) -> User | None:
        return self._by_userid.get(userid)

    def by_unionid(self, unionid: str) -> User | None:
        return self._by_unionid.get(unionid)

    def members(self, dept_id: int) -> list[User]:
        """Direct members, in generation order (do not modify the list: it is shared)."""
        if self._members is None:
            index: dict[int, list[User]] = {}
            for u in self.users:
                for d in u.dept_id_list:
                    index.setdefault(d, []).append(u)
            self._members = index
        return self._members.get(dept_id, [])

    def changed(self) -> None:
        """Call after changing users' departments directly (joins and leaves call it themselves)."""
        self._members = None

    def resigned_user(self, userid: str) -> ResignedUser | None:
        return next((r for r in self.resigned if r.user.userid == userid), None)

    def any_user(self, userid: str) -> User | None:
        """Active or resigned — records keep naming people who have since left."""
        u = self._by_userid.get(userid)
        if u is None:
            r = self.resigned_user(userid)
            return r.user if r else None
        return u

    def live_departments(self) -> Iterable[Department]:
        return (d for d in self.departments if not d.removed)

    # -- mutations (used by api/contacts.py) ---------------------------------------------------
    def add_user(self, counter: int, dept_id: int, now_ms: int) -> User:
        user = _user(self.seed, counter, dept_id, self.top_name(dept_id), self.anchor_ms, salt="-join")
        user.index = -1
        user.job_number = f"HKN{counter + 1:04d}"
        user.hired_date = user.modified = now_ms
        self._index_user(user)
        return user

    def remove_user(self, userid: str, now_ms: int, reason: str = "leave") -> ResignedUser:
        user = self._by_userid.pop(userid)
        self._by_unionid.pop(user.unionid, None)
        self.users.remove(user)
        self._members = None
        left = ResignedUser(
            user, now_ms, reason, self.admin.userid if self.users else "", "Left during the run"
        )
        self.resigned.append(left)
        return left

    def add_department(self, name: str, parent_id: int, salt: object) -> Department:
        dept = Department(self._new_dept_id(("mut", salt)), name, parent_id, len(self.children(parent_id)))
        self._add_dept(dept, self.top_name(parent_id) or name)
        return dept
