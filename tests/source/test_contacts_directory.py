"""The directory read overlaps its three APIs, and its result does not depend on call timing.

Every other family waits for the directory, so its time adds to the whole run's: a department's
detail and member list are asked while the tree walk goes on. What the directory holds (which
department's entry of a user is kept, which parent a department listed twice belongs to) must
still be the same whatever order the calls end in, or unchanged users would look changed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import orjson
import pytest
import respx

from dingvault.source.client import DingTalkClient
from dingvault.source.collectors.directory import Directory, UserEntries

from .conftest import OAPI

# 1 -> [2, 3]; 2 -> [4]; 4 is also (wrongly) listed under 3.
TREE = {1: [2, 3], 2: [4], 3: [4], 4: []}


def _dept(request: httpx.Request) -> int:
    return int(json.loads(request.content)["dept_id"])


def _mock_tree(mock: respx.MockRouter, *, gate: asyncio.Event, gated_listsub: int) -> None:
    async def listsub(request: httpx.Request) -> httpx.Response:
        dept = _dept(request)
        if dept == gated_listsub:
            await gate.wait()
        children = [{"dept_id": c, "name": f"d{c}", "parent_id": dept} for c in TREE[dept]]
        return httpx.Response(200, json={"errcode": 0, "result": children})

    mock.post(f"{OAPI}/topapi/v2/department/listsub").mock(side_effect=listsub)
    mock.post(f"{OAPI}/topapi/v2/department/get").mock(
        side_effect=lambda r: httpx.Response(
            200, json={"errcode": 0, "result": {"dept_id": _dept(r), "name": f"d{_dept(r)}"}}
        )
    )


async def test_members_are_read_while_the_tree_walk_is_still_going(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    # The walk below department 2 waits until department 3's members have been asked for: read
    # one phase after the other, this could never happen (the load would time out).
    gate = asyncio.Event()
    _mock_tree(mock, gate=gate, gated_listsub=2)

    def users(request: httpx.Request) -> httpx.Response:
        if _dept(request) == 3:
            gate.set()
        entry = {"userid": f"u{_dept(request)}", "unionid": f"x{_dept(request)}"}
        return httpx.Response(200, json={"errcode": 0, "result": {"has_more": False, "list": [entry]}})

    mock.post(f"{OAPI}/topapi/v2/user/list").mock(side_effect=users)
    directory = await asyncio.wait_for(Directory.load(client), timeout=10)
    assert list(directory.departments) == [1, 2, 3, 4]
    assert sorted(directory.users) == ["u1", "u2", "u3", "u4"]
    assert directory.departments[4].parent_id == 2  # first listed under 2 in breadth-first order
    assert all(d.detail is not None for d in directory.departments.values())


@pytest.mark.parametrize("slow_dept", [2, 3])
async def test_the_kept_entry_of_a_user_does_not_depend_on_which_answer_came_first(
    client: DingTalkClient, mock: respx.MockRouter, slow_dept: int
) -> None:
    # u-shared is a member of 2 and 3, with a different entry in each (e.g. its order there).
    # Whichever department answers last, the entry of 2 (first in breadth-first order) is kept.
    _mock_tree(mock, gate=asyncio.Event(), gated_listsub=-1)
    fast_answered = asyncio.Event()
    fast_dept = 5 - slow_dept

    async def users(request: httpx.Request) -> httpx.Response:
        dept = _dept(request)
        if dept == slow_dept:
            await fast_answered.wait()
        members = (
            [{"userid": "u-shared", "unionid": "x-shared", "dept_order": dept}] if dept in (2, 3) else []
        )
        response = httpx.Response(200, json={"errcode": 0, "result": {"has_more": False, "list": members}})
        if dept == fast_dept:
            fast_answered.set()
        return response

    mock.post(f"{OAPI}/topapi/v2/user/list").mock(side_effect=users)
    directory = await asyncio.wait_for(Directory.load(client), timeout=10)
    assert directory.users["u-shared"]["dept_order"] == 2


async def test_a_department_whose_members_cannot_be_read_is_marked_incomplete(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    _mock_tree(mock, gate=asyncio.Event(), gated_listsub=-1)

    def users(request: httpx.Request) -> httpx.Response:
        if _dept(request) == 3:
            return httpx.Response(200, json={"errcode": 0, "result": "not an object"})
        entry = {"userid": f"u{_dept(request)}", "unionid": f"x{_dept(request)}"}
        return httpx.Response(200, json={"errcode": 0, "result": {"has_more": False, "list": [entry]}})

    mock.post(f"{OAPI}/topapi/v2/user/list").mock(side_effect=users)
    directory = await asyncio.wait_for(Directory.load(client), timeout=10)
    assert sorted(directory.users) == ["u1", "u2", "u4"]
    assert directory.incomplete_departments == [3]


def _entry(i: int) -> dict[str, Any]:
    """A `user/list` entry shaped like DingTalk's (§2.2), with Chinese text."""
    return {
        "userid": f"user{i:05d}",
        "unionid": f"union{i:05d}iE",
        "name": f"陳大文{i}",
        "avatar": "",
        "state_code": "853",
        "mobile": f"6{i:07d}",
        "hide_mobile": False,
        "telephone": "",
        "job_number": f"J{i:05d}",
        "title": "會計主任",
        "email": f"user{i}@example.mo",
        "org_email": f"user{i}@corp.example.mo",
        "work_place": "澳門",
        "remark": "",
        "dept_id_list": [1, 100 + i % 7],
        "dept_order": i,
        "extension": '{"英文名":"Chan Tai Man"}',
        "hired_date": 1600000000000 + i,
        "active": True,
        "admin": i % 500 == 0,
        "boss": False,
        "leader": False,
        "exclusive_account": False,
    }


def test_user_entries_read_back_as_listed_first_listing_wins_and_index_unionids() -> None:
    entries = UserEntries()
    for i in range(3):
        entries.add(f"user{i:05d}", _entry(i))
    entries.add("user00001", {**_entry(1), "dept_order": 99})  # listed again under another department
    entries.add("no-union", {"userid": "no-union", "name": "x"})
    # A value JSON cannot carry faithfully (an integer beyond 64 bits) is kept as it came.
    huge = {"userid": "huge", "unionid": "u-huge", "big": 1 << 70}
    entries.add("huge", huge)
    assert list(entries) == ["user00000", "user00001", "user00002", "no-union", "huge"]
    assert entries["user00001"] == _entry(1)  # the first listing's entry, intact
    assert entries["huge"] == huge
    assert "user00002" in entries and "nobody" not in entries and len(entries) == 5
    assert entries.unionids == {
        "user00000": "union00000iE",
        "user00001": "union00001iE",
        "user00002": "union00002iE",
        "huge": "u-huge",
    }
    assert entries.admins == ["user00000"]
    directory = Directory(users=entries)
    assert directory.people() == [
        ("user00000", "union00000iE"),
        ("huge", "u-huge"),
        ("user00001", "union00001iE"),
        ("user00002", "union00002iE"),
    ]
    assert directory.userid_for_unionid("union00002iE") == "user00002"
    assert directory.unionid("no-union") is None


def test_user_entries_take_a_fraction_of_the_parsed_entries_memory() -> None:
    # The directory is held by every family for the whole run: its size per person matters.
    import tracemalloc

    raw = [orjson.loads(orjson.dumps(_entry(i))) for i in range(2000)]  # as the API parser returns them
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        as_dicts = {e["userid"]: orjson.loads(orjson.dumps(e)) for e in raw}
        dicts_size = tracemalloc.get_traced_memory()[0] - before
        before = tracemalloc.get_traced_memory()[0]
        entries = UserEntries()
        for e in raw:
            entries.add(e["userid"], e)
        entries_size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(as_dicts) == len(entries) == 2000
    assert entries_size < 0.5 * dicts_size, (entries_size, dicts_size)
