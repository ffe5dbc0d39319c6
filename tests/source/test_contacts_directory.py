"""The directory read overlaps its three APIs, and its result does not depend on call timing.

Every other family waits for the directory, so its time adds to the whole run's: a department's
detail and member list are asked while the tree walk goes on. What the directory holds (which
department's entry of a user is kept, which parent a department listed twice belongs to) must
still be the same whatever order the calls end in, or unchanged users would look changed.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from dingvault.source.client import DingTalkClient
from dingvault.source.collectors.directory import Directory

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
