"""Collector helpers and edge cases against hand-written answers (respx): no hangs, no silent loss."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from dingvault.source.client import DingTalkClient
from dingvault.source.collectors.approvals import approval_attachments, approval_item, template_item
from dingvault.source.collectors.base import (
    bounded_map,
    interleave,
    ms_from_iso,
    normalise_iso,
    whole_months,
    windows,
)
from dingvault.source.collectors.calendar import event_item
from dingvault.source.collectors.contacts import ContactsCollector
from dingvault.source.collectors.directory import Directory
from dingvault.source.collectors.storage import list_all
from dingvault.source.errors import BadResponse, IncompleteCollection, NotFound, QuotaExhausted
from dingvault.source.items import AllScope

from .conftest import API, OAPI
from .running import Running


def test_windows_cover_the_range_without_gaps() -> None:
    spans = windows(0, 1000, 300)
    assert spans == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    assert windows(5, 5, 10) == []


def test_iso_variants_parse_to_the_same_instant() -> None:
    assert (
        ms_from_iso("2022-08-31T11:52Z")
        == ms_from_iso("2022-08-31T11:52:00Z")
        == ms_from_iso("2022-08-31T19:52:00+08:00")
    )
    assert normalise_iso("2022-08-31T11:52Z") == "2022-08-31T11:52:00Z"
    assert ms_from_iso("not a date") is None and ms_from_iso(None) is None


def test_whole_months_only_counts_fully_covered_months() -> None:
    def ms(*args: int) -> int:
        return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)

    assert whole_months(ms(2026, 1, 15), ms(2026, 4, 10), False) == ["2026-02", "2026-03"]
    assert whole_months(ms(2026, 1, 1), ms(2026, 2, 1), False) == ["2026-01"]
    assert whole_months(ms(2026, 1, 15), ms(2026, 4, 10), True) == ["2026-02", "2026-03", "2026-04"]
    assert whole_months(ms(2025, 11, 2), ms(2026, 2, 3), False) == ["2025-12", "2026-01"]


async def test_bounded_map_keeps_order_limits_concurrency_and_yields_errors() -> None:
    running = 0
    peak = 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - n % 5))
        running -= 1
        if n == 3:
            raise NotFound("gone", endpoint="x")
        return n * 10

    out = [(v, r) async for v, r in bounded_map(work, range(8), 3)]
    assert [v for v, _ in out] == list(range(8))
    assert isinstance(out[3][1], NotFound)
    assert [r for v, r in out if v != 3] == [0, 10, 20, 40, 50, 60, 70]
    assert peak <= 3


async def test_interleave_runs_sources_concurrently_and_reraises() -> None:
    async def slow(tag: str, n: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0.01)
            yield f"{tag}{i}"

    async def broken() -> AsyncIterator[str]:
        yield "b0"
        raise QuotaExhausted("quota", endpoint="x")

    seen = [v async for v in interleave([lambda: slow("a", 3), lambda: slow("c", 3)], 2)]
    assert sorted(seen) == ["a0", "a1", "a2", "c0", "c1", "c2"]
    assert seen.index("c0") < seen.index("a2")  # really interleaved
    with pytest.raises(QuotaExhausted):
        async for _ in interleave([lambda: slow("a", 50), broken], 2):
            pass


async def test_interleave_takes_sources_only_as_slots_free() -> None:
    """A collector hands one source per person as a generator: only the running ones may exist, so
    what a run holds does not grow with the org."""
    made = 0
    running = Running()

    def factories() -> Iterator[Callable[[], AsyncIterator[int]]]:
        nonlocal made
        for n in range(200):
            made += 1
            yield running.source(n)

    seen = []
    async for value in interleave(factories(), 4):
        seen.append(value)
        assert made <= len(seen) + 4  # taken when a slot frees, not all up front
    assert sorted(seen) == list(range(200))
    assert running.most <= 4


def test_approval_attachments_from_form_and_operation_records() -> None:
    detail = {
        "createTime": "2026-03-01T10:00Z",
        "formComponentValues": [
            {
                "componentType": "DDAttachment",
                "value": json.dumps(
                    [{"fileId": "f1", "fileName": "#abc.file", "fileType": "pdf", "fileSize": "12"}]
                ),
            },
            {"componentType": "DDAttachment", "value": "not json"},
            {"componentType": "TextField", "value": "[]"},
        ],
        "operationRecords": [
            {
                "date": "2026-03-02T10:00Z",
                "attachments": [{"fileId": "f2", "fileName": "證明.png"}, {"fileId": "f1"}],
            }
        ],
    }
    refs = approval_attachments("PI-1", detail)
    assert [(r.ref["fileId"], r.name, r.size, r.ref["comment"]) for r in refs] == [
        ("f1", "#abc.file", 12, False),
        ("f2", "證明.png", None, True),
    ]
    item = approval_item("PI-1", "PROC-1", detail)
    assert item.container == "PROC-1/2026-03"
    assert item.fields["modified"] == "2026-03-02T10:00:00Z"


async def test_listing_that_repeats_its_next_token_is_an_error_not_a_hang(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.post(f"{API}/v1.0/storage/spaces/s1/dentries/listAll").respond(
        json={"dentries": [{"id": "1"}], "nextToken": "same"}
    )
    with pytest.raises(BadResponse, match="repeated its nextToken"):
        async for _ in list_all(client, "s1", "u1"):
            pass


async def test_user_list_without_advancing_cursor_is_an_error(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    mock.post(f"{OAPI}/topapi/v2/department/get").respond(
        json={"errcode": 0, "result": {"dept_id": 1, "name": "Org"}}
    )
    mock.post(f"{OAPI}/topapi/v2/department/listsub").respond(json={"errcode": 0, "result": []})
    mock.post(f"{OAPI}/topapi/v2/user/list").respond(
        json={
            "errcode": 0,
            "result": {"has_more": True, "next_cursor": 0, "list": [{"userid": "u1", "unionid": "x"}]},
        }
    )
    directory = await Directory.load(client)
    # The department's member list is marked incomplete (so no one is taken for gone) ...
    assert directory.incomplete_departments == [1]
    mock.get(f"{API}/v1.0/contact/empLeaveRecords").respond(json={"records": []})
    batches = []
    collector = ContactsCollector(client)
    with pytest.raises(IncompleteCollection, match="members of department 1"):
        async for batch in collector.collect(mode="full", cursors={}, scope=AllScope()):
            batches.append(batch)
    # ... and the run says so at the end, after yielding what it could read, without a user completeness claim.
    assert not any(c.kind == "user" for b in batches for c in (b.complete or []))
    assert any(i.kind == "department" for b in batches for i in b.items)


async def test_cyclic_department_tree_terminates(client: DingTalkClient, mock: respx.MockRouter) -> None:
    mock.post(f"{OAPI}/topapi/v2/department/get").respond(
        json={"errcode": 0, "result": {"dept_id": 1, "name": "Org"}}
    )

    def children(request: httpx.Request) -> httpx.Response:
        dept = json.loads(request.content)["dept_id"]
        # 2 -> 3 -> 2 (a cycle), and 3 also claims the root as its child
        table = {1: [2], 2: [3], 3: [2, 1]}
        return httpx.Response(
            200,
            json={
                "errcode": 0,
                "result": [{"dept_id": c, "name": f"d{c}", "parent_id": dept} for c in table[dept]],
            },
        )

    mock.post(f"{OAPI}/topapi/v2/department/listsub").mock(side_effect=children)
    mock.post(f"{OAPI}/topapi/v2/user/list").respond(
        json={"errcode": 0, "result": {"has_more": False, "list": []}}
    )
    directory = await asyncio.wait_for(Directory.load(client), timeout=5)
    assert sorted(directory.departments) == [1, 2, 3]


async def test_run_together_cancels_the_others_and_keeps_the_error_type() -> None:
    from dingvault.source.collectors.base import run_together

    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(5)
        finished.append("slow")

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise QuotaExhausted("quota", endpoint="x")

    with pytest.raises(QuotaExhausted):
        await asyncio.wait_for(run_together(slow(), fails()), timeout=2)
    assert finished == []


async def test_one_garbled_approval_is_reported_and_the_rest_kept(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    from dingvault.source.collectors.approvals import ApprovalsCollector

    mock.post(f"{OAPI}/topapi/v2/department/get").respond(
        json={"errcode": 0, "result": {"dept_id": 1, "name": "Org"}}
    )
    mock.post(f"{OAPI}/topapi/v2/department/listsub").respond(json={"errcode": 0, "result": []})
    mock.post(f"{OAPI}/topapi/v2/user/list").respond(
        json={
            "errcode": 0,
            "result": {"has_more": False, "list": [{"userid": "boss", "unionid": "u-boss", "admin": True}]},
        }
    )
    mock.get(f"{API}/v1.0/workflow/processes/managements/templates").respond(
        json={"result": [{"processCode": "PROC-1", "flowTitle": "請假", "gmtModified": "2026-01-01T00:00Z"}]}
    )
    mock.post(f"{API}/v1.0/workflow/processes/instanceIds/query").respond(
        json={"result": {"list": ["good", "bad", "gone"]}}
    )

    def detail(request: httpx.Request) -> httpx.Response:
        pid = request.url.params["processInstanceId"]
        if pid == "bad":
            return httpx.Response(200, json={"result": ["not", "an", "object"]})
        if pid == "gone":
            return httpx.Response(400, json={"code": "processInstanceNotExist", "message": "x"})
        return httpx.Response(
            200, json={"result": {"title": "t", "createTime": "2026-11-01T10:00Z", "status": "COMPLETED"}}
        )

    mock.get(f"{API}/v1.0/workflow/processInstances").mock(side_effect=detail)
    collector = ApprovalsCollector(client)
    items = []
    with pytest.raises(IncompleteCollection) as info:
        async for batch in collector.collect(mode="full", cursors={}, scope=AllScope()):
            items += batch.items
            assert not batch.complete or all(c.kind != "approval" for c in batch.complete)
    assert {i.source_id for i in items if i.kind == "approval"} == {"good"}
    assert "approval bad" in str(info.value)


async def test_ordered_pipeline_keeps_source_order_and_markers_in_place() -> None:
    from dingvault.source.collectors.base import ordered_pipeline

    gates = {n: asyncio.Event() for n in range(6)}

    async def source() -> AsyncIterator[int | str]:
        for n in range(3):
            yield n
        yield "end-1"
        for n in range(3, 6):
            yield n

    async def work(n: int) -> int:
        await gates[n].wait()
        if n == 4:
            raise NotFound("gone", endpoint="x")
        return n * 10

    # Answers come back last-first; the output must still follow the source.
    for n in reversed(range(6)):
        gates[n].set()
    out = [
        (value, result if not isinstance(result, BaseException) else type(result).__name__)
        async for value, result in ordered_pipeline(
            source(), work, slots=asyncio.Semaphore(3), lookahead=4, is_marker=lambda v: isinstance(v, str)
        )
    ]
    assert out == [(0, 0), (1, 10), (2, 20), ("end-1", None), (3, 30), (4, "NotFound"), (5, 50)]


async def test_ordered_pipeline_reads_ahead_boundedly_and_raises_a_source_failure_in_order() -> None:
    from dingvault.source.collectors.base import ordered_pipeline

    pulled: list[int] = []
    started: list[int] = []
    release = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        for n in range(100):
            pulled.append(n)
            yield n
            if n == 40:
                raise BadResponse("listing broke", endpoint="x")

    async def work(n: int) -> int:
        started.append(n)
        await release.wait()
        return n

    pipeline = ordered_pipeline(source(), work, slots=asyncio.Semaphore(2), lookahead=5)
    first = asyncio.ensure_future(anext(pipeline))
    # Let the read-ahead run until it can go no further (no I/O here: the loop settles).
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(pulled) <= 5 + 2  # the queue, the value taken by the consumer, the one being put
    assert started == [0, 1]  # two slots
    release.set()
    results = [await first] + [pair async for pair in _until_error(pipeline)]
    assert [v for v, _ in results] == list(range(41))


async def _until_error(pipeline: AsyncIterator[tuple[int, object]]) -> AsyncIterator[tuple[int, object]]:
    with pytest.raises(BadResponse, match="listing broke"):
        async for pair in pipeline:
            yield pair


def test_a_calendar_event_edited_twice_in_one_second_is_two_versions() -> None:
    # `updateTime` is to the second: an edit in the same second as the one a run stored must still
    # be a new version, or it would never be stored.
    first = {
        "id": "ev1",
        "summary": "Board meeting",
        "updateTime": "2026-11-29T10:00:05Z",
        "start": {"dateTime": "2026-12-01T09:00:00+08:00"},
        "attendees": [{"id": "u1", "responseStatus": "needsAction"}],
    }
    renamed = {**first, "summary": "Board meeting (moved to room 3)"}
    answered = {**first, "attendees": [{"id": "u1", "responseStatus": "accepted"}]}
    keys = {event_item("union1", e).version_key for e in (first, renamed, answered)}
    assert len(keys) == 3
    # The same event read twice is one version.
    assert event_item("union1", dict(first)).version_key == event_item("union1", first).version_key


def test_an_approval_template_edited_twice_in_one_minute_is_two_versions() -> None:
    # `gmtModified` is to the minute (dingtalk-api.md §4).
    first = {"processCode": "PROC-1", "flowTitle": "Payment", "gmtModified": "2026-11-29T10:05Z"}
    renamed = {**first, "flowTitle": "Payment over MOP 10,000"}
    assert template_item(first).version_key != template_item(renamed).version_key
    assert template_item(dict(first)).version_key == template_item(first).version_key
