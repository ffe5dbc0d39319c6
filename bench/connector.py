"""Connector benchmark: a full and an incremental read of the emulated company under realistic limits.

    .venv/bin/python bench/connector.py [--profile demo|small] [--mutations 50] [--download]

Prints, for the full run, the wall time and the *rate-limit floor*: each API allows 20 calls/s per
app, APIs run in parallel, so no client can finish faster than max over APIs of (calls ÷ 20). The
ratio wall/floor says how close the connector gets to what DingTalk allows. Then the same for an
incremental run after `--mutations` random changes, and how many calls it needed.
The emulator runs in this process (a thread), so on a loaded machine it competes for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx

from dingtalk_emulator.server import serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.client import ClientConfig, DingTalkClient
from dingvault.source.collectors import CollectorSettings, build_collectors
from dingvault.source.items import AllScope

FAMILIES = ("contacts", "approvals", "files", "attendance", "calendar", "todo", "reports", "groups")
QPS = 20


async def read_all(
    client: DingTalkClient, mode: str, cursors: dict, settings: CollectorSettings, download: bool
) -> dict[str, Any]:
    collectors = build_collectors(client, families=FAMILIES, settings=settings)
    items = 0
    nbytes = 0
    new_cursors = dict(cursors)
    failures: list[str] = []

    timings: dict[str, float] = {}

    async def one(collector: Any) -> None:
        nonlocal items, nbytes
        began = time.monotonic()
        try:
            async for batch in collector.collect(mode=mode, cursors=cursors, scope=AllScope()):
                items += len(batch.items)
                if batch.cursor is not None:
                    new_cursors[batch.cursor.key] = batch.cursor.state
                if download:
                    for item in batch.items:
                        for ref in item.attachments[:1]:
                            async for chunk in collector.open_attachment(ref):
                                nbytes += len(chunk)
        except Exception as exc:  # reported in the output
            failures.append(f"{collector.name}: {type(exc).__name__}: {exc}"[:200])
        timings[collector.name] = time.monotonic() - began

    started = time.monotonic()
    # Contacts first (the directory is shared), then every other family at once, as the engine does.
    await one(collectors[0])
    await asyncio.gather(*(one(c) for c in collectors[1:]))
    return {
        "seconds": time.monotonic() - started,
        "items": items,
        "bytes": nbytes,
        "cursors": new_cursors,
        "failures": failures,
        "timings": timings,
    }


def floor_seconds(calls: dict[str, int]) -> tuple[float, str]:
    api_calls = {k: v for k, v in calls.items() if k != "download"}
    template, n = max(api_calls.items(), key=lambda kv: kv[1])
    return n / QPS, template


def report(title: str, result: dict[str, Any], stats: dict[str, Any]) -> None:
    calls = stats["calls"]
    total = sum(v for k, v in calls.items() if k != "download")
    floor, busiest = floor_seconds(calls)
    print(f"\n{title}")
    print(
        f"  items: {result['items']}, API calls: {total}, downloads: {calls.get('download', 0)} ({result['bytes'] / 1e6:.1f} MB)"
    )
    print(
        f"  wall: {result['seconds']:.1f} s; rate-limit floor: {floor:.1f} s ({calls[busiest]} calls to {busiest})"
    )
    print(
        f"  wall / floor: {result['seconds'] / floor:.2f}; throttled answers: {stats['throttled']}, retries: {stats['retries']}"
    )
    print("  per family (s):", ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items()))
    if result["failures"]:
        print("  failures:", *result["failures"], sep="\n    ")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--mutations", type=int, default=50)
    parser.add_argument("--download", action="store_true", help="also download each item's first attachment")
    args = parser.parse_args()
    emu = serve_in_thread(EmulatorConfig(profile=args.profile, limits="realistic", seed=1))
    try:
        org = emu.state.org
        known = [
            g["chatId"]
            for g in httpx.get(f"{emu.base_url}/_emulator/truth?kind=group").json()["items"]
            if g.get("origin") == "api"
        ]
        settings = CollectorSettings(known_chat_ids=known)
        config = ClientConfig(
            app_key=org.app_key, app_secret=org.app_secret, api_base=emu.base_url, oapi_base=emu.base_url
        )
        print(
            f"profile {args.profile}, realistic limits ({QPS} calls/s per API), load average {os.getloadavg()[0]:.2f}"
        )
        async with DingTalkClient(config) as client:
            full = await read_all(client, "full", {}, settings, args.download)
            report("full run", full, client.stats())
        httpx.post(
            f"{emu.base_url}/_emulator/mutate",
            json={"op": "random", "count": args.mutations, "seed": 2},
            timeout=60,
        )
        async with DingTalkClient(config) as client:
            incremental = await read_all(client, "incremental", full["cursors"], settings, args.download)
            report(f"incremental run after {args.mutations} random changes", incremental, client.stats())
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        emu.stop()


if __name__ == "__main__":
    asyncio.run(main())
