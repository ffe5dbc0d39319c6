"""Todos: changes made before a user leaves are kept ("final listing"), nothing taken for deleted.

The directory lists active users only, so a user who left since the last run is no longer asked
for. The todo cursor keeps who was listed; the next run asks once more for the todos of those who
left, keeps what comes back without any completeness claim, and then forgets them — also when
DingTalk refuses because it no longer knows them. A failure that may pass is retried next run.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import respx

from dingvault.source.client import DingTalkClient
from dingvault.source.collectors import TodoCollector
from dingvault.source.errors import IncompleteCollection

from .conftest import API, OAPI
from .emulator_support import run

DAY_MS = 86_400_000
STAYS = ("u1", "x1")
LEFT = ("ugone", "xgone")


def _card(task_id: str, creator: str, *, done: bool, modified: int) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "subject": f"task {task_id}",
        "createdTime": modified - DAY_MS,
        "modifiedTime": modified,
        "creatorId": creator,
        "isDone": done,
        "detailUrl": {"pcUrl": f"https://oa.example/{task_id}"},
    }


def _mock_directory(mock: respx.MockRouter) -> None:
    mock.post(f"{OAPI}/topapi/v2/department/get").respond(json={"errcode": 0, "result": {"dept_id": 1}})
    mock.post(f"{OAPI}/topapi/v2/department/listsub").respond(json={"errcode": 0, "result": []})
    entry = {"userid": STAYS[0], "unionid": STAYS[1], "name": "Stays"}
    mock.post(f"{OAPI}/topapi/v2/user/list").respond(
        json={"errcode": 0, "result": {"has_more": False, "list": [entry]}}
    )


def _mock_todos(mock: respx.MockRouter, departed: Any) -> dict[str, int]:
    """Todo API: the staying user has one open todo; `departed(done)` answers for the leaver."""
    calls: dict[str, int] = {}
    now = 1_900_000_000_000

    def answer(request: httpx.Request) -> httpx.Response:
        union = request.url.path.split("/")[4]
        done = bool(json.loads(request.content)["isDone"])
        calls[union] = calls.get(union, 0) + 1
        if union == STAYS[1]:
            cards = [] if done else [_card("t-stays", STAYS[1], done=False, modified=now)]
            return httpx.Response(200, json={"todoCards": cards})
        return departed(done)

    mock.post(url__regex=re.escape(API) + r"/v1\.0/todo/users/[^/]+/org/tasks/query").mock(side_effect=answer)
    return calls


CURSORS = {("todo", ""): {"people": {STAYS[1]: STAYS[0], LEFT[1]: LEFT[0]}}}


async def test_a_leavers_todos_changed_before_leaving_are_kept_without_completeness_claims(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    _mock_directory(mock)
    modified = 1_890_000_000_000

    def departed(done: bool) -> httpx.Response:
        card = _card("t-done" if done else "t-open", LEFT[1], done=done, modified=modified)
        return httpx.Response(200, json={"todoCards": [card]})

    calls = _mock_todos(mock, departed)
    result = await run([TodoCollector(client)], mode="incremental", cursors=CURSORS)
    assert result.error is None
    assert result.ids("todo") == {"t-stays", "t-open", "t-done"}
    left_open = result.items[("todo", "t-open")]
    assert left_open.container == f"{LEFT[1]}/open" and left_open.fields["owner"] == LEFT[0]
    assert result.items[("todo", "t-done")].container.startswith(f"{LEFT[1]}/done/")  # type: ignore[union-attr]
    # The staying user's listing is complete; nothing of the leaver's is claimed.
    assert ("todo", f"{STAYS[1]}/open") in result.complete
    assert not {c for _, c in result.complete if c.startswith(LEFT[1])}
    assert calls[LEFT[1]] == 2  # open and done, once
    # The leaver is forgotten: the next run does not ask again.
    assert result.cursors[("todo", "")] == {"people": {STAYS[1]: STAYS[0]}}
    calls.clear()
    again = await run([TodoCollector(client)], mode="incremental", cursors=result.cursors)
    assert again.error is None and LEFT[1] not in calls


async def test_a_refusal_for_a_leaver_ends_the_final_listing_without_failing_the_run(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    _mock_directory(mock)
    refusal = {"code": "invalidParameter", "message": "unionId 不存在"}
    calls = _mock_todos(mock, lambda done: httpx.Response(400, json=refusal))
    result = await run([TodoCollector(client)], mode="incremental", cursors=CURSORS)
    assert result.error is None
    assert result.ids("todo") == {"t-stays"}
    assert calls[LEFT[1]] == 1  # refused: the done listing is not asked
    assert result.cursors[("todo", "")] == {"people": {STAYS[1]: STAYS[0]}}


async def test_a_passing_failure_for_a_leaver_is_asked_again_next_run(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    _mock_directory(mock)
    _mock_todos(mock, lambda done: httpx.Response(503, json={"code": "ServiceUnavailable"}))
    result = await run([TodoCollector(client)], mode="incremental", cursors=CURSORS)
    assert isinstance(result.error, IncompleteCollection)
    assert result.ids("todo") == {"t-stays"}
    assert result.cursors[("todo", "")] == {"people": {STAYS[1]: STAYS[0], LEFT[1]: LEFT[0]}}
