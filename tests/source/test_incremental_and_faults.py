"""Incremental runs return exactly what changed; injected faults lose nothing; pacing keeps under limits.

Every test here starts its own emulator (they mutate it or change its limits and faults).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dingtalk_emulator.server import RunningEmulator, serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import CollectorSettings, build_collectors
from dingvault.source.items import AllScope

from .emulator_support import RunResult, client_for, run, truth

KINDS = (
    "department",
    "user",
    "resigned_user",
    "approval",
    "file",
    "wiki_node",
    "doc",
    "calendar_event",
    "todo",
    "report",
    "group",
)
# Kinds whose every payload change shows in the truth record: there, "detected" must equal "changed".
EXACT_KINDS = ("resigned_user", "approval", "doc", "calendar_event", "todo", "report")
FAMILIES = ("contacts", "approvals", "files", "calendar", "todo", "reports", "groups")


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off", seed=7))
    yield emu
    emu.stop()


def _snapshot(emu: RunningEmulator) -> dict[str, dict[str, dict[str, Any]]]:
    return {kind: {t["id"]: t for t in truth(emu, kind)} for kind in KINDS}


def _settings(emu: RunningEmulator) -> CollectorSettings:
    return CollectorSettings(
        known_chat_ids=[g["chatId"] for g in truth(emu, "group") if g.get("origin") == "api"]
    )


def _deletions(full: RunResult, incremental: RunResult, kind: str) -> set[str]:
    """What the engine concludes: reported deletions, plus ids missing from a complete container."""
    gone = {sid for k, sid in incremental.deleted if k == kind}
    for k, container in incremental.complete:
        if k != kind:
            continue
        before = {sid for (k2, sid), item in full.items.items() if k2 == kind and item.container == container}
        now = {
            sid for (k2, sid), item in incremental.items.items() if k2 == kind and item.container == container
        }
        gone |= before - now
    return gone


@pytest.mark.slow
async def test_incremental_after_random_mutations_returns_exactly_the_changes(
    emulator: RunningEmulator,
) -> None:
    settings = _settings(emulator)
    async with client_for(emulator) as client:
        full = await run(build_collectors(client, families=FAMILIES, settings=settings))
        full_calls = sum(client.calls.values())
    assert full.error is None
    before = _snapshot(emulator)
    answer = httpx.post(
        f"{emulator.base_url}/_emulator/mutate", json={"op": "random", "count": 50, "seed": 11}, timeout=30
    )
    applied = [r for r in answer.json()["results"] if "skipped" not in r]
    assert len(applied) >= 40
    after = _snapshot(emulator)
    async with client_for(emulator) as client:
        incremental = await run(
            build_collectors(client, families=FAMILIES, settings=_settings(emulator)),
            mode="incremental",
            cursors=full.cursors,
        )
        incremental_calls = sum(client.calls.values())
    assert incremental.error is None
    # Groups created through the API after the first run are unknown to the connector (no API lists
    # them): they are out of reach by design, as is their file space.
    new_api_groups = {
        i for i, t in after["group"].items() if i not in before["group"] and t.get("origin") == "api"
    }
    # A group without members has a file space nobody may read (only members can): out of reach too.
    unreachable_spaces = {
        str(t.get("spaceId"))
        for i, t in after["group"].items()
        if i in new_api_groups or not t.get("memberCount")
    }
    checked = 0
    for kind in KINDS:
        old, new = before[kind], after[kind]
        changed = {i for i, t in new.items() if not t.get("deleted") and old.get(i) != t}
        deleted = {i for i, t in new.items() if t.get("deleted") and i in old and not old[i].get("deleted")}
        if kind == "group":
            changed -= new_api_groups
        if kind == "file":
            changed = {i for i in changed if i.split("/")[0] not in unreachable_spaces}
        detected = {
            sid
            for (k, sid), item in incremental.items.items()
            if k == kind
            and (full.items.get((k, sid)) is None or full.items[(k, sid)].version_key != item.version_key)
        }
        assert changed <= detected, f"{kind}: missed {sorted(changed - detected)[:5]}"
        # Only what the first run could see can be seen to go (e.g. not todos done > 180 days ago).
        deleted &= full.ids(kind)
        assert deleted <= _deletions(full, incremental, kind), f"{kind}: deletion not seen"
        if kind in EXACT_KINDS:
            assert detected == changed, f"{kind}: reported unchanged {sorted(detected - changed)[:5]}"
        checked += len(changed) + len(deleted)
    assert checked >= 20
    assert incremental_calls < full_calls


@pytest.mark.slow
async def test_collectors_lose_nothing_under_injected_faults(emulator: RunningEmulator) -> None:
    families = ("contacts", "approvals", "files", "attendance", "calendar", "todo", "reports")
    settings = _settings(emulator)
    async with client_for(emulator) as client:
        clean = await run(build_collectors(client, families=families, settings=settings))
    assert clean.error is None
    spec = {
        "throttle": 0.08,
        "5xx": 0.02,
        "timeout": 0.01,
        "busy": 0.01,
        "reset": 0.005,
        "malformed": 0.005,
        "html": 0.005,
        "truncate": 0.05,
        "token_expire_after": 300,
        "seed": 5,
    }
    httpx.put(f"{emulator.base_url}/_emulator/faults", json=spec, timeout=10).raise_for_status()
    async with client_for(emulator) as client:
        collectors = build_collectors(client, families=families, settings=settings)
        faulty = await run(collectors)
        assert faulty.error is None, faulty.error
        assert set(faulty.items) == set(clean.items)
        stats = client.stats()
        assert stats["retries"] > 10 and stats["token_fetches"] >= 2
        # contents survive truncated transfers (resumed with Range)
        files = {t["id"]: t for t in truth(emulator, "file")}
        by_family = {c.family: c for c in collectors}
        checked = 0
        for item in faulty.of_kind("file"):
            if item.attachments:
                blob = b"".join([c async for c in by_family["files"].open_attachment(item.attachments[0])])
                assert hashlib.sha256(blob).hexdigest() == files[item.source_id]["sha256"]
                checked += 1
        assert checked > 50
    faults = httpx.get(f"{emulator.base_url}/_emulator/stats", timeout=10).json()
    assert faults  # the emulator did inject (its statistics are non-empty)


@pytest.mark.slow
async def test_pacing_stays_under_the_per_api_limit_and_apis_run_in_parallel() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="realistic", seed=3))
    try:
        async with client_for(emu, rate_per_api=20) as client:
            body = {"dept_id": 1, "cursor": 0, "size": 100}

            async def burst(template: str, n: int) -> None:
                await asyncio.gather(*(client.oapi("POST", template, json=body) for _ in range(n)))

            started = time.monotonic()
            await asyncio.gather(
                burst("/topapi/v2/user/list", 60), burst("/topapi/v2/department/listsub", 60)
            )
            elapsed = time.monotonic() - started
            stats = client.stats()
    finally:
        emu.stop()
    # 60 calls at 20/s take ~2 s per API (a first burst of 20, then two more windows); in parallel
    # the two APIs finish together rather than one after the other (~4 s).
    assert 1.9 <= elapsed < 3.6, elapsed
    assert stats["throttled"] <= 2, stats
    assert stats["calls"]["/topapi/v2/user/list"] >= 60


async def test_full_run_never_takes_an_unreachable_space_or_a_leavers_todos_for_deleted(
    emulator: RunningEmulator,
) -> None:
    settings = _settings(emulator)
    async with client_for(emulator) as client:
        first = await run(build_collectors(client, families=("contacts", "files", "todo"), settings=settings))
    assert first.error is None
    group = next(
        t
        for t in truth(emulator, "group")
        if t.get("origin") == "dept" and t.get("memberCount") and t["status"] == 1
    )
    space = str(group["spaceId"])
    assert ("drive_space", space) in first.items
    todo_owner = next(iter(first.of_kind("todo"))).container.split("/")[0]  # type: ignore[union-attr]
    leaver = next(u.source_id for u in first.of_kind("user") if u.fields["unionid"] == todo_owner)
    for op in (
        {"op": "group.disband", "openConversationId": group["id"]},
        {"op": "user.leave", "userid": leaver},
    ):
        httpx.post(f"{emulator.base_url}/_emulator/mutate", json=op, timeout=10).raise_for_status()
    async with client_for(emulator) as client:
        second = await run(
            build_collectors(client, families=("contacts", "files", "todo"), settings=_settings(emulator))
        )
    # The disbanded group's space can no longer be listed, but it still exists: no deletion claim.
    assert ("drive_space", space) not in second.items
    assert space not in _deletions(first, second, "drive_space")
    # The leaver's todos cannot be asked for any more; they are kept, not taken for deleted.
    leavers_todos = {
        i.source_id for i in first.of_kind("todo") if i.container and i.container.startswith(todo_owner + "/")
    }
    assert leavers_todos and not (leavers_todos & _deletions(first, second, "todo"))
    assert leaver in _deletions(first, second, "user")  # while the user is seen to have left


async def test_a_killed_run_resumes_from_its_committed_cursors(emulator: RunningEmulator) -> None:
    """Stop consuming mid-run (as a killed engine would); a run from the committed cursors finishes the job."""
    from dingvault.source.collectors import ApprovalsCollector

    async with client_for(emulator) as client:
        committed: dict[tuple[str, str], dict[str, Any]] = {}
        seen: set[str] = set()
        cursors_seen = 0
        async for batch in ApprovalsCollector(client).collect(mode="full", cursors={}, scope=AllScope()):
            seen.update(i.source_id for i in batch.items if i.kind == "approval")
            if batch.cursor is not None:
                committed[batch.cursor.key] = batch.cursor.state
                cursors_seen += 1
                if cursors_seen == 5:
                    break  # killed: later batches never became durable
        first_details = client.calls["/v1.0/workflow/processInstances"]
    async with client_for(emulator) as client:
        resumed = await run([ApprovalsCollector(client)], mode="incremental", cursors=committed)
        resumed_details = client.calls["/v1.0/workflow/processInstances"]
    assert resumed.error is None
    reachable = {
        t["id"]
        for t in truth(emulator, "approval")
        if t["createTime"] >= time.time() * 1000 - 365 * 86_400_000 + 2 * 3600_000
    }
    assert reachable <= seen | resumed.ids("approval")
    # The resumed run did not start over: it read fewer details than the whole history holds.
    assert resumed_details < len(reachable)
    assert first_details + resumed_details < 2 * len(reachable)
