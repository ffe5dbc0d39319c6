"""Backup engine benchmark: the whole product path (connector → engine → vault + catalog).

    .venv/bin/python bench/backup.py [--profile medium] [--limits-profile small] [--max-seconds 0]
                                     [--large-seconds 0] [--skip a,b,c]

The emulator runs as a separate process (`dingtalk-emulator serve`) so it does not share this
process's interpreter lock; everything is on loopback. Three scenarios, each printing figures:

(a) limits off, `--profile` (default medium): a full backup into a fresh home: records/s, MB/s of
    content downloaded, peak RSS of this process. Targets: ≥ 5,000 records/s, RSS < 400 MB.
    `--large-seconds N` also runs the large company for N seconds (then stops the run) and prints
    its peak RSS: memory must not grow with the organisation's size.
(b) realistic limits (20 calls/s per API), `--limits-profile` (default small): a full backup's wall
    time against the floor set by DingTalk's limits — max over APIs of (calls needed ÷ 20 s⁻¹),
    APIs in parallel — target ≤ 1.15×; and the calls used against the minimum — target ≤ 1.05×.
    "Calls needed" / "minimum" are the calls the emulator answered successfully (each one returned
    data the backup used); "used" adds every throttled answer, i.e. the waste of hitting the limit.
(c) incremental after a 0.5% change (random mutations at the source) on the same company: calls
    against (changed items + listing pages), and time against the full run's (target ≤ 5%).

Figures and the exact command go in bench/RESULTS.md, section "Backup".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from dingvault.backup.session import init_home, open_session
from dingvault.backup.stats import RunStats
from dingvault.home import open_home
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

QPS = 20
PASSPHRASE = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, profile: str, limits: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("dingtalk-emulator")
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(self.port), "--profile", profile, "--limits", limits],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.org = httpx.get(f"{self.base}/_emulator/org", timeout=5).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.2)

    def get(self, path: str, **kw: Any) -> Any:
        return httpx.get(f"{self.base}/_emulator/{path}", timeout=120, **kw).json()

    def post(self, path: str, body: Any = None) -> Any:
        return httpx.post(f"{self.base}/_emulator/{path}", json=body, timeout=600).json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def new_home(emu: Emulator, root: Path, client: dict[str, Any]) -> Any:
    home = open_home(root / "home")
    init_home(home, PASSPHRASE, kdf=FAST_KDF_FOR_TESTS)
    settings = home.load_settings()
    groups = emu.get("truth", params={"kind": "group"})["items"]
    settings.backup["collectors"] = {
        "known_chat_ids": sorted({g["chatId"] for g in groups if g.get("origin") == "api" and g.get("chatId")})
    }
    settings.backup["client"] = client
    home.save_settings(settings)
    with open_session(home, PASSPHRASE) as s:
        asyncio.run(s.connect(emu.org["appKey"], emu.org["appSecret"], api_base=emu.base, oapi_base=emu.base))
    return home


async def _run_capped(s: Any, mode: str, seconds: float) -> RunStats | None:
    task = asyncio.ensure_future(s.backup(mode))
    if seconds <= 0:
        return await task
    try:
        return await asyncio.wait_for(task, timeout=seconds)
    except TimeoutError:
        return None


def backup(home: Any, mode: str, seconds: float = 0) -> tuple[RunStats | None, float]:
    with open_session(home, PASSPHRASE) as s:
        started = time.monotonic()
        stats = asyncio.run(_run_capped(s, mode, seconds))
        return stats, time.monotonic() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def scenario_a(profile: str, max_seconds: float) -> None:
    print(f"\n(a) limits off, {profile} company, full backup  [{load()}]")
    emu = Emulator(profile, "off")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = new_home(emu, root, {"rate_per_api": 100_000, "max_concurrency": 32})
        stats, wall = backup(home, "full", max_seconds)
        if stats is None:
            print(f"  stopped after {wall:.0f} s (--max-seconds); figures below are for the part done")
            with open_session(home, PASSPHRASE) as s:
                records = sum(c.versions for c in s.catalog.counts_per_kind().values())
            print(f"  records stored: {records:,} → {records / wall:,.0f} records/s")
        else:
            records = stats.items_seen
            print(f"  records: {records:,} in {wall:.1f} s → {records / wall:,.0f} records/s (target ≥ 5,000)")
            print(
                f"  content downloaded: {stats.bytes_downloaded / 1e6:,.1f} MB → {stats.bytes_downloaded / 1e6 / wall:,.1f} MB/s; "
                f"stored (plaintext) {stats.bytes_stored / 1e6:,.1f} MB; API calls {sum(stats.api_calls.values()):,}"
            )
            if stats.family_failures or stats.failed:
                print(f"  problems: {[f.to_dict() for f in stats.family_failures]} failed items {dict(stats.failed)}")
        vault_bytes = sum(f.stat().st_size for f in (root / "home" / "vault").rglob("*") if f.is_file())
        print(f"  vault on disk: {vault_bytes / 1e6:,.1f} MB; peak RSS of this process: {peak_rss_mb():,.0f} MB (target < 400)")
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


def scenario_large(seconds: float) -> None:
    print(f"\n(a') limits off, large company, full backup stopped after {seconds:.0f} s  [{load()}]")
    emu = Emulator("large", "off")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = new_home(emu, root, {"rate_per_api": 100_000, "max_concurrency": 32})
        _stats, wall = backup(home, "full", seconds)
        with open_session(home, PASSPHRASE) as s:
            records = sum(c.versions for c in s.catalog.counts_per_kind().values())
        print(f"  records stored in {wall:.0f} s: {records:,}; peak RSS of this process: {peak_rss_mb():,.0f} MB")
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


def _calls(emu: Emulator) -> tuple[dict[str, int], dict[str, int]]:
    st = emu.get("stats")
    calls = {k: int(v) for k, v in st["calls"].items()}
    throttled = {k: int(v) for k, v in (st.get("throttled_by") or {}).items()}
    return calls, throttled


def scenarios_b_c(profile: str) -> None:
    print(f"\n(b) realistic limits ({QPS} calls/s per API), {profile} company, full backup  [{load()}]")
    emu = Emulator(profile, "realistic")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = new_home(emu, root, {})
        emu.post("stats/reset")
        full, wall = backup(home, "full")
        assert full is not None
        calls, throttled = _calls(emu)
        ok = {k: calls[k] - throttled.get(k, 0) for k in calls}
        used, minimum = sum(calls.values()), sum(ok.values())
        busiest = max(ok, key=lambda k: ok[k])
        floor = ok[busiest] / QPS
        print(f"  records {full.items_seen:,}, status {full.status}; wall {wall:.1f} s")
        print(f"  floor {floor:.1f} s ({ok[busiest]} calls to {busiest} ÷ {QPS}/s) → wall/floor {wall / floor:.2f} (target ≤ 1.15)")
        print(f"  calls used {used:,} vs minimum {minimum:,} → {used / max(minimum, 1):.3f} (target ≤ 1.05); throttled answers {sum(throttled.values())}")
        top = sorted(ok.items(), key=lambda kv: -kv[1])[:5]
        print("  busiest APIs: " + "; ".join(f"{k} {v}" for k, v in top))

        total_items = full.items_seen
        changes = max(1, round(total_items * 0.005))
        emu.post("mutate", {"op": "random", "count": changes, "seed": 3})
        emu.post("stats/reset")
        print(f"\n(c) incremental after {changes} random changes (0.5% of {total_items:,} records)  [{load()}]")
        inc, inc_wall = backup(home, "incremental")
        assert inc is not None
        calls, throttled = _calls(emu)
        used = sum(calls.values())
        t = inc.totals()
        changed = t["new"] + t["changed"] + t["deleted"]
        print(f"  items new/changed/deleted: {t['new']}/{t['changed']}/{t['deleted']} ({changed} changed items); unchanged re-listed {t['unchanged']}")
        print(f"  API calls {used:,} = changed items {changed} + listing and other calls {used - changed:,}")
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        print("  calls by API: " + "; ".join(f"{k} {v}" for k, v in top))
        print(f"  time {inc_wall:.1f} s vs full {wall:.1f} s → {100 * inc_wall / wall:.1f}% (target ≤ 5%)")
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="medium", help="company for (a), limits off")
    parser.add_argument("--limits-profile", default="small", help="company for (b) and (c), realistic limits")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop (a) after this long (0 = run to the end)")
    parser.add_argument("--large-seconds", type=float, default=0, help="also run the large company this long")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: a,b")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"bench/backup.py on {os.cpu_count()} CPUs; {load()}")
    if "a" not in skip:
        scenario_a(args.profile, args.max_seconds)
    if args.large_seconds > 0:
        scenario_large(args.large_seconds)
    if "b" not in skip:
        scenarios_b_c(args.limits_profile)
    print(f"\nend; {load()}")


if __name__ == "__main__":
    main()
