"""Enterprise todos (§6.3): `POST /v1.0/todo/users/{unionId}/org/tasks/query`.

Generated tasks belong to the staff present at start-up: task j of user u is created by and assigned
to u (as if an internal system had created it with a detailUrl). Completed tasks are listed only if
they were completed within 180 days, as documented. Page size is 20 **(uncertain: not documented)**.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.company.seeding import DAY_MS, h64, hexid, rng
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import ApiError, Call, api_endpoint
from dingtalk_emulator.state import EmulatorState, MutationError

SCOPE = "Todo.Todo.Read"
PAGE = 20
DONE_VISIBLE_DAYS = 180
HISTORY_DAYS = 400
SUBJECTS = (
    "審批：{n} 號報銷單",
    "跟進客戶合同續約",
    "Preparar relatório mensal",
    "提交季度稅務資料 (M/1)",
    "Review Q3 budget",
    "安排新同事電腦及賬號",
    "更新員工手冊",
    "回覆澳門金融管理局問卷",
    "Renovar seguro do escritório",
    "整理橫琴項目付款憑證",
)


class TodoBook:
    def __init__(self, seed: int, per_user: int, people: Any) -> None:
        self.seed = seed
        self.anchor_ms = people.anchor_ms
        self.per_user = per_user
        self.staff = list(people.users)
        self.index_of_union = {u.unionid: n for n, u in enumerate(self.staff)}
        self.changed: dict[str, dict[str, Any] | None] = {}  # taskId -> task (None = deleted)
        self.deleted: dict[str, dict[str, Any]] = {}  # taskId -> last state, for truth
        self.new_ids: dict[str, list[str]] = {}  # unionId -> created taskIds
        self.counter = 0
        self._generated_cached = functools.lru_cache(maxsize=20_000)(self._generated)
        self._task_ids = functools.lru_cache(maxsize=4096)(
            lambda u: tuple(self.task_id(u, j) for j in range(self.per_user))
        )

    def generated(self, u: int, j: int) -> dict[str, Any]:
        """Todo j of user u (shared from a bounded cache: copy before changing it)."""
        return self._generated_cached(u, j)

    def task_id(self, u: int, j: int) -> str:
        return f"{hexid(self.seed, 'todo-id', u, j, length=14)}{u:06x}{j:04x}"

    def locate(self, task_id: str) -> tuple[int, int] | None:
        try:
            u, j = int(task_id[14:20], 16), int(task_id[20:24], 16)
        except ValueError:
            return None
        if len(task_id) != 24 or u >= len(self.staff) or j >= self.per_user or self.task_id(u, j) != task_id:
            return None
        return u, j

    def _generated(self, u: int, j: int) -> dict[str, Any]:
        r = rng(self.seed, "todo", u, j)
        owner = self.staff[u]
        created = (
            self.anchor_ms
            - HISTORY_DAYS * DAY_MS
            + j * (HISTORY_DAYS * DAY_MS // max(1, self.per_user))
            + r.randrange(DAY_MS)
        )
        age = (self.anchor_ms - created) / DAY_MS
        done = age > 14 and r.random() < 0.8
        modified = created + r.randrange(1, 10) * DAY_MS if done else created
        task_id = self.task_id(u, j)
        return {
            "taskId": task_id,
            "subject": r.choice(SUBJECTS).format(n=h64(self.seed, "todo-n", u, j) % 9000 + 1000),
            "dueTime": created + r.randrange(2, 30) * DAY_MS,
            "detailUrl": {
                "appUrl": f"https://oa.houkong.example.mo/m/task/{task_id}",
                "pcUrl": f"https://oa.houkong.example.mo/task/{task_id}",
            },
            "priority": r.choice((10, 20, 30, 40)),
            "createdTime": created,
            "modifiedTime": min(modified, self.anchor_ms - 60_000),
            "creatorId": owner.unionid,
            "sourceId": f"oa-{h64(self.seed, 'todo-src', u, j) % 10**8:08d}",
            "bizTag": "houkong_oa",
            "isDone": done,
            "todoType": "TODO",
        }

    def current(self, task_id: str) -> dict[str, Any] | None:
        if task_id in self.changed:
            return self.changed[task_id]
        loc = self.locate(task_id)
        return self.generated(*loc) if loc else None

    def tasks_of(self, unionid: str) -> list[dict[str, Any]]:
        out = []
        u = self.index_of_union.get(unionid)
        if u is not None:
            for j, tid in enumerate(self._task_ids(u)):
                t = self.changed[tid] if tid in self.changed else self.generated(u, j)
                if t is not None:
                    out.append(t)
        out += [t for tid in list(self.new_ids.get(unionid, [])) if (t := self.changed.get(tid)) is not None]
        return out


def _book(call: Call | EmulatorState) -> TodoBook:
    state = call.state if isinstance(call, Call) else call
    return state.org.todo


@api_endpoint(SCOPE)
async def query_org_tasks(call: Call) -> dict[str, Any]:
    book, b = _book(call), call.body
    unionid = call.path_params["unionId"]
    if call.state.org.people.by_unionid(unionid) is None:
        raise ApiError(400, "invalidParameter", "unionId 不存在")  # (uncertain) code
    try:
        offset = int(b.get("nextToken") or 0)
    except (TypeError, ValueError):
        raise ApiError(400, "invalidParameter", "nextToken is invalid") from None
    is_done = b.get("isDone")
    if isinstance(is_done, str):
        is_done = {"true": True, "false": False}.get(is_done.lower())
    todo_type = b.get("todoType")
    now = call.state.now_ms()
    tasks = [
        t
        for t in book.tasks_of(unionid)
        if (is_done is None or t["isDone"] == bool(is_done))
        and (todo_type in (None, "") or t["todoType"] == todo_type)
        and not (t["isDone"] and now - t["modifiedTime"] > DONE_VISIBLE_DAYS * DAY_MS)
    ]
    tasks.sort(key=lambda t: (t["createdTime"], t["taskId"]))
    page = tasks[offset : offset + PAGE]
    body: dict[str, Any] = {"todoCards": page}
    if offset + PAGE < len(tasks):
        body["nextToken"] = str(offset + PAGE)
    return body


def _truth_row(book: Any, tid: str, current: dict[str, Any] | None) -> dict[str, Any]:
    """One truth row: the current task, or its last state marked deleted."""
    t = current if current is not None else book.deleted[tid]
    row = {"id": tid, "subject": t["subject"], "isDone": t["isDone"], "modifiedTime": t["modifiedTime"]}
    if current is None:
        row["deleted"] = True
    return row


def truth_todos(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = _book(state)
    for u in range(len(book.staff)):
        for j in range(book.per_user):
            tid = book.task_id(u, j)
            yield _truth_row(book, tid, book.current(tid))
    for ids in list(book.new_ids.values()):  # copies: truth walks run in a worker thread
        for tid in list(ids):
            yield _truth_row(book, tid, book.changed.get(tid))


def _event(state: EmulatorState, name: str, t: dict[str, Any]) -> None:
    # (uncertain) the reference lists the todo_task_* event names but not their data fields.
    state.hub.publish_event(
        name,
        {
            "taskId": t["taskId"],
            "creatorId": t["creatorId"],
            "executorIds": [t["creatorId"]],
            "modifiedTime": t["modifiedTime"],
            "isDone": t["isDone"],
        },
    )


def _pick(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    if params.get("taskId"):
        t = book.current(str(params["taskId"]))
        if t is None:
            raise MutationError(f"no todo {params['taskId']!r}")
        return t
    people = state.org.people
    for attempt in range(len(people.users)):
        user = people.users[(int(params.get("rand", 0)) + attempt) % len(people.users)]
        tasks = book.tasks_of(user.unionid)
        if tasks:
            return tasks[(int(params.get("rand", 0)) // 7) % len(tasks)]
    raise MutationError("no todo to change")


def m_create(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    people = state.org.people
    if params.get("unionId"):
        user = people.by_unionid(str(params["unionId"]))
        if user is None:
            raise MutationError(f"no active user with unionId {params['unionId']!r}")
    else:
        user = people.users[int(params.get("rand", 0)) % len(people.users)]
    now = state.now_ms()
    book.counter += 1
    tid = f"{hexid(book.seed, 'todo-new', book.counter, length=14)}n{book.counter:09d}"
    t = {
        "taskId": tid,
        "subject": str(
            params.get("subject")
            or SUBJECTS[int(params.get("rand", 0)) % len(SUBJECTS)].format(n=book.counter)
        ),
        "dueTime": now + 7 * DAY_MS,
        "detailUrl": {
            "appUrl": f"https://oa.houkong.example.mo/m/task/{tid}",
            "pcUrl": f"https://oa.houkong.example.mo/task/{tid}",
        },
        "priority": 20,
        "createdTime": now,
        "modifiedTime": now,
        "creatorId": user.unionid,
        "sourceId": f"oa-new-{book.counter}",
        "bizTag": "houkong_oa",
        "isDone": False,
        "todoType": "TODO",
    }
    book.changed[tid] = t
    book.new_ids.setdefault(user.unionid, []).append(tid)
    _event(state, "todo_task_create", t)
    return {"taskId": tid, "unionId": user.unionid}


def m_update(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    t = dict(_pick(state, params))
    t["isDone"] = bool(params["isDone"]) if "isDone" in params else not t["isDone"]
    if params.get("subject"):
        t["subject"] = str(params["subject"])
    t["modifiedTime"] = state.now_ms()
    book.changed[t["taskId"]] = t
    _event(state, "todo_task_update", t)
    return {"taskId": t["taskId"], "isDone": t["isDone"]}


def m_delete(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    t = dict(_pick(state, params))
    t["modifiedTime"] = state.now_ms()
    book.changed[t["taskId"]] = None
    book.deleted[t["taskId"]] = t
    _event(state, "todo_task_delete", t)
    return {"taskId": t["taskId"]}


def routes(state: EmulatorState) -> list[Route]:
    return [Route("/v1.0/todo/users/{unionId}/org/tasks/query", query_org_tasks, methods=["POST"])]


def register(state: EmulatorState) -> None:
    book = state.org.todo = TodoBook(
        state.config.seed, profile_for(state.config).todos_per_user, state.org.people
    )
    state.truth["todo"] = truth_todos
    state.counts["todo"] = lambda s: book.per_user * len(book.staff) + book.counter
    state.mutations.update({"todo.create": m_create, "todo.update": m_update, "todo.delete": m_delete})
