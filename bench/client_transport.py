"""The connector's CPU per API call, by HTTP transport, side by side in one run.

    .venv/bin/python bench/client_transport.py [--calls 6000] [--concurrency 16] [--rounds 3]

Starts the emulator (medium company, limits off) as a separate process and makes the same API
call many times through `DingTalkClient` — token, pacing, error mapping and JSON parsing included —
with each transport in turn, alternating rounds so that load changes on a shared machine hit both:

* httpx's own transport (httpcore + h11, pure Python) over sharded pools — the design before,
  and still the one used behind a proxy;
* httpx on aiohttp (`source/_aiohttp_transport.py`) — what `DingTalkClient` uses now;
* the same with httpx keeping cookies (a plain `httpx.AsyncClient` instead of
  `source/_http.py`'s `CookielessClient`): what skipping httpx's cookie parsing saves.

It prints calls/s and CPU seconds per 1,000 calls for the client process, and the emulator's CPU
per 1,000 calls (what the stand-in for DingTalk costs on the same two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup import Emulator
from dingvault.source._http import HttpShards
from dingvault.source.client import ClientConfig, DingTalkClient

CALL = ("POST", "/topapi/v2/department/listsub", {"dept_id": 1})


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def one_round(emu: Emulator, variant: str, calls: int, concurrency: int) -> tuple[float, float, float]:
    config = ClientConfig(
        app_key=emu.org["appKey"],
        app_secret=emu.org["appSecret"],
        api_base=emu.base,
        oapi_base=emu.base,
        rate_per_api=1_000_000,
        max_concurrency=concurrency,
    )
    if variant == "aiohttp+cookies":
        import httpx

        import dingvault.source._http as http_module

        cookieless = http_module.CookielessClient
        http_module.CookielessClient = httpx.AsyncClient  # type: ignore[misc,assignment]
        try:
            client = DingTalkClient(config)
        finally:
            http_module.CookielessClient = cookieless  # type: ignore[misc]
    else:
        client = DingTalkClient(config)
    if variant == "httpx shards":
        await client._http.aclose()
        # The design before, and still the one behind a proxy: httpcore pools, one leased per call.
        client._http = HttpShards(
            max_concurrency=concurrency, timeout=config.timeout, user_agent=config.user_agent, transport=None
        )
    method, template, body = CALL
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await client.oapi(method, template, json=body)

    await asyncio.gather(*(one() for _ in range(300)))  # warm: token, connections
    server = psutil.Process(emu.proc.pid)
    cpu0, emu0, wall0 = time.process_time(), cpu_of(server), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    wall = time.perf_counter() - wall0
    cpu, emu_cpu = time.process_time() - cpu0, cpu_of(server) - emu0
    await client.aclose()
    return calls / wall, 1000 * cpu / calls, 1000 * emu_cpu / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=6000, help="timed calls per round and transport")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per transport")
    args = parser.parse_args()
    variants = ("httpx shards", "aiohttp", "aiohttp+cookies")
    emu = Emulator("medium", "off")
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        for _ in range(args.rounds):
            for variant in variants:
                results[variant].append(asyncio.run(one_round(emu, variant, args.calls, args.concurrency)))
    finally:
        emu.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.calls:,} × `{CALL[1]}` per round, {args.concurrency} in flight, medians of {args.rounds} rounds"
    )
    print(f"{'transport':<16} {'calls/s':>9} {'client CPU-s / 1,000':>21} {'emulator CPU-s / 1,000':>23}")
    medians = {}
    for variant, rows in results.items():
        rate, cpu, emu_cpu = (statistics.median(col) for col in zip(*rows, strict=True))
        medians[variant] = cpu
        print(f"{variant:<16} {rate:>9,.0f} {cpu:>21.3f} {emu_cpu:>23.3f}")
    print(f"client CPU per call, aiohttp ÷ httpx shards: {medians['aiohttp'] / medians['httpx shards']:.2f}")
    print(
        "client CPU per call, no cookies ÷ httpx keeping cookies (both on aiohttp): "
        f"{medians['aiohttp'] / medians['aiohttp+cookies']:.2f}"
    )


if __name__ == "__main__":
    main()
