"""The approvals collector's pipeline: listing ahead of details, templates side by side, exact cursors."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from dingvault.source.client import DingTalkClient
from dingvault.source.collectors.approvals import (
    DETAIL_SLOTS_PER_CONCURRENCY,
    PAGE_SIZE,
    ApprovalsCollector,
)
from dingvault.source.collectors.base import DAY_MS, CollectorContext, CollectorSettings, month_of, now_ms
from dingvault.source.errors import DingTalkError, IncompleteCollection
from dingvault.source.items import AllScope, Batch

from .conftest import API, OAPI

INSTANCES = f"{API}/v1.0/workflow/processInstances"
IDS = f"{API}/v1.0/workflow/processes/instanceIds/query"


@dataclass
class FakeOrg:
    """Approval instances per template: (id, creation ms, status), answered like §4.2 does."""

    instances: dict[str, list[tuple[str, int, str]]]
    failing_details: set[str] = field(default_factory=set)
    failing_window: int | None = None  # listing the n-th window (0-based) of a template is refused
    detail_calls: list[str] = field(default_factory=list)
    listing_calls: list[tuple[str, int, int]] = field(default_factory=list)  # (code, start, token)

    def listed(self, code: str, start: int, end: int) -> list[str]:
        return [i for i, t, _ in sorted(self.instances[code], key=lambda r: r[1]) if start <= t < end]

    def by_id(self, instance_id: str) -> tuple[str, int, str]:
        for code, rows in self.instances.items():
            for i, t, status in rows:
                if i == instance_id:
                    return code, t, status
        raise KeyError(instance_id)


def install(
    mock: respx.MockRouter, org: FakeOrg, *, detail_hook: Any = None, listing_hook: Any = None
) -> None:
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
        json={"result": [{"processCode": code, "flowTitle": code} for code in org.instances]}
    )

    def listing(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        code, start, end, token = body["processCode"], body["startTime"], body["endTime"], body["nextToken"]
        org.listing_calls.append((code, start, int(token)))
        if listing_hook is not None:
            listing_hook(code, start, int(token))
        starts = sorted({s for c, s, _ in org.listing_calls if c == code})
        if org.failing_window is not None and starts.index(start) == org.failing_window:
            return httpx.Response(400, json={"code": "invalidParameter", "message": "refused"})
        ids = org.listed(code, start, end)
        offset = int(token)
        page = ids[offset : offset + body["maxResults"]]
        more = offset + len(page) < len(ids)
        return httpx.Response(
            200, json={"result": {"list": page, "nextToken": str(offset + len(page)) if more else None}}
        )

    async def detail(request: httpx.Request) -> httpx.Response:
        pid = request.url.params["processInstanceId"]
        org.detail_calls.append(pid)
        if detail_hook is not None:
            await detail_hook(pid)
        if pid in org.failing_details:
            return httpx.Response(200, json={"result": "garbled"})
        _, created, status = org.by_id(pid)
        iso = f"{month_of(created)}-15T00:00Z"  # the month is what matters for containers
        return httpx.Response(200, json={"result": {"title": pid, "createTime": iso, "status": status}})

    mock.post(IDS).mock(side_effect=listing)
    mock.get(INSTANCES).mock(side_effect=detail)


def make_org(templates: int, per_template: int, *, seed: int = 1) -> FakeOrg:
    rng = random.Random(seed)
    now = now_ms()
    instances = {}
    for t in range(templates):
        rows = []
        for n in range(per_template):
            created = now - rng.randint(1, 360) * DAY_MS
            rows.append((f"T{t}-{n}", created, "RUNNING" if n % 7 == 0 else "COMPLETED"))
        instances[f"PROC-{t}"] = rows
    return org_with(instances)


def org_with(instances: dict[str, list[tuple[str, int, str]]]) -> FakeOrg:
    return FakeOrg(instances=instances)


def collector(client: DingTalkClient, concurrency: int = 8) -> ApprovalsCollector:
    return ApprovalsCollector(client, CollectorContext(client, CollectorSettings(concurrency=concurrency)))


async def collect(c: ApprovalsCollector, mode: str = "full", cursors: Any = None) -> list[Batch]:
    batches: list[Batch] = []

    async def run() -> None:
        async for batch in c.collect(mode=mode, cursors=cursors or {}, scope=AllScope()):  # type: ignore[arg-type]
            batches.append(batch)

    await asyncio.wait_for(run(), timeout=20)
    return batches


async def test_each_cursor_follows_everything_it_covers_in_listing_order(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    org = make_org(templates=3, per_template=45)
    rng = random.Random(7)

    async def jitter(pid: str) -> None:
        # Answers come back in another order than asked: the batches must not follow it.
        await asyncio.sleep(rng.uniform(0, 0.004))

    install(mock, org, detail_hook=jitter)
    batches = await collect(collector(client))

    yielded: dict[str, list[str]] = {code: [] for code in org.instances}
    cursors: dict[str, list[int]] = {code: [] for code in org.instances}
    for batch in batches:
        for item in batch.items:
            if item.kind == "approval":
                yielded[item.fields["process_code"]].append(item.source_id)
        if batch.cursor is not None:
            code, until = batch.cursor.container, batch.cursor.state["until"]
            # Everything created before `until` has been handed over before this cursor.
            assert {i for i, t, _ in org.instances[code] if t < until} <= set(yielded[code])
            running = {i for i in yielded[code] if org.by_id(i)[2] == "RUNNING"}
            assert set(batch.cursor.state["open"]) == running
            cursors[code].append(until)
    for code, rows in org.instances.items():
        assert yielded[code] == [i for i, _, _ in sorted(rows, key=lambda r: r[1])]  # listing order
        assert cursors[code] == sorted(cursors[code]) and len(cursors[code]) >= 3
    assert len(org.detail_calls) == sum(len(rows) for rows in org.instances.values())  # once each
    assert all(len(b.items) <= PAGE_SIZE for b in batches[1:])


async def test_the_listing_runs_ahead_of_slow_details(client: DingTalkClient, mock: respx.MockRouter) -> None:
    now = now_ms()
    org = org_with({"PROC-A": [(f"a{n}", now - DAY_MS - n, "COMPLETED") for n in range(60)]})
    third_page_listed = asyncio.Event()

    def watch_listing(code: str, start: int, token: int) -> None:
        if token >= 2 * PAGE_SIZE:
            third_page_listed.set()

    async def hold_first(pid: str) -> None:
        # The first detail is answered only once the third listing page has been asked for; read
        # page after page, that page would wait for this detail and the run would time out.
        if pid == "a59":  # the oldest: listed first
            await third_page_listed.wait()

    install(mock, org, detail_hook=hold_first, listing_hook=watch_listing)
    # Concurrency 16 lets the listing run 64 ids ahead: more than the two pages needed here.
    batches = await collect(collector(client, concurrency=16))
    order = [i.source_id for b in batches for i in b.items if i.kind == "approval"]
    assert order == [f"a{n}" for n in reversed(range(60))]


async def test_detail_reads_fill_the_shared_slots_and_never_exceed_them(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    org = make_org(templates=3, per_template=30, seed=3)
    slots = 8 * DETAIL_SLOTS_PER_CONCURRENCY
    in_flight = 0
    peak = 0
    full = asyncio.Event()

    async def count(pid: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= slots:
            full.set()
        try:
            # Until the slots have been full once, nobody is answered: reaching them is required.
            await full.wait()
        finally:
            in_flight -= 1

    install(mock, org, detail_hook=count)
    batches = await collect(collector(client, concurrency=8))
    assert peak == slots
    assert sum(1 for b in batches for i in b.items if i.kind == "approval") == 90


async def test_a_failed_record_holds_back_only_its_templates_months(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    org = make_org(templates=2, per_template=30, seed=5)
    org.failing_details = {"T0-3"}
    install(mock, org)
    c = collector(client)
    batches: list[Batch] = []
    with pytest.raises(IncompleteCollection, match="approval T0-3"):
        async for batch in c.collect(mode="full", cursors={}, scope=AllScope()):
            batches.append(batch)
    complete = {x.container.split("/")[0] for b in batches for x in b.complete or () if x.kind == "approval"}
    assert complete == {"PROC-1"}
    # The failed one is kept open for the next run, in every cursor yielded after it was read.
    last = [b.cursor for b in batches if b.cursor is not None and b.cursor.container == "PROC-0"][-1]
    assert "T0-3" in last.state["open"]


async def test_incremental_reads_open_ones_first_and_each_id_once(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    now = now_ms()
    org = org_with(
        {
            "PROC-A": [
                ("old-open", now - 200 * DAY_MS, "COMPLETED"),  # finished since the last run
                ("recent-open", now - 2_000_000, "RUNNING"),  # still running, listed again
                ("new", now - 1_000_000, "COMPLETED"),
            ]
        }
    )
    install(mock, org)
    cursors = {("approvals", "PROC-A"): {"until": now - 600_000, "open": ["old-open", "recent-open"]}}
    batches = await collect(collector(client), mode="incremental", cursors=cursors)
    order = [i.source_id for b in batches for i in b.items if i.kind == "approval"]
    assert order == ["old-open", "recent-open", "new"]
    assert sorted(org.detail_calls) == ["new", "old-open", "recent-open"]
    final = [b.cursor for b in batches if b.cursor is not None][-1]
    assert final.state["open"] == ["recent-open"]


async def test_a_refused_listing_stops_after_what_was_read_before_it(
    client: DingTalkClient, mock: respx.MockRouter
) -> None:
    org = make_org(templates=1, per_template=60, seed=9)
    org.failing_window = 1
    install(mock, org)
    batches: list[Batch] = []

    async def run() -> None:
        async for batch in collector(client).collect(mode="full", cursors={}, scope=AllScope()):
            batches.append(batch)

    with pytest.raises(DingTalkError, match="refused"):
        await asyncio.wait_for(run(), timeout=20)
    cursors = [b.cursor for b in batches if b.cursor is not None]
    assert len(cursors) == 1  # the first window's, not the refused one's
    until = cursors[0].state["until"]
    first_window = [i for i, t, _ in sorted(org.instances["PROC-0"], key=lambda r: r[1]) if t < until]
    handed = [i.source_id for b in batches for i in b.items if i.kind == "approval"]
    # Everything of the first window came, before its cursor; nothing read beyond it was handed over.
    assert first_window and handed == first_window
