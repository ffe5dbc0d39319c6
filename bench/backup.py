"""Backup engine benchmark: the whole product path (connector → engine → vault + catalog).

    .venv/bin/python bench/backup.py [--profile medium] [--limits-profile small] [--max-seconds 0]
                                     [--large-seconds 0] [--skip a,b,c] [--families=-files]

The emulator runs as a separate process (`dingtalk-emulator serve`) so it does not share this
process's interpreter lock; everything is on loopback. Three scenarios, each printing figures:

(a) limits off, `--profile` (default medium): a full backup into a fresh home: records/s, MB/s of
    content downloaded, peak RSS of this process. Targets: ≥ 5,000 records/s, RSS < 400 MB.
    `--large-seconds N` also runs the large company for N seconds (then stops the run) and prints
    its peak RSS: memory must not grow with the organisation's size. `--families` narrows (a) and
    (a') to some families (`files,todo`) or all but some (`--families=-files`), to tell where a difference is.
(b) realistic limits (20 calls/s per API), `--limits-profile` (default small): a full backup's wall
    time against the floor set by DingTalk's limits — max over APIs of (calls needed ÷ 20 s⁻¹),
    APIs in parallel — target ≤ 1.15×; and the calls used against the minimum — target ≤ 1.05×.
    "Calls needed" / "minimum" are the calls the emulator answered successfully (each one returned
    data the backup used); "used" adds every throttled answer, i.e. the waste of hitting the limit.
(e) `--engine-records N`: the engine alone — a synthetic collector yields N approval-like records
    (~1 KB of JSON with Chinese text, 100 per page) into a real vault and SQLite catalog; no HTTP.
    This is the ceiling the storage side puts on (a).
(c) incremental after a 0.5% change (random mutations at the source) on the same company: calls
    against (changed items + listing pages), and time against the full run's (target ≤ 5%).

Figures and the exact command go in bench/RESULTS.md, section "Backup".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from dingvault.backup.session import init_home, open_session
from dingvault.backup.stats import RunStats
from dingvault.cli.pacing import pacing_line
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
        "known_chat_ids": sorted(
            {g["chatId"] for g in groups if g.get("origin") == "api" and g.get("chatId")}
        )
    }
    settings.backup["client"] = client
    home.save_settings(settings)
    with open_session(home, PASSPHRASE) as s:
        asyncio.run(s.connect(emu.org["appKey"], emu.org["appSecret"], api_base=emu.base, oapi_base=emu.base))
    return home


async def _run_capped(s: Any, mode: str, seconds: float, kinds: list[str] | None = None) -> RunStats | None:
    task = asyncio.ensure_future(s.backup(mode, kinds=kinds))
    if seconds <= 0:
        return await task
    try:
        return await asyncio.wait_for(task, timeout=seconds)
    except TimeoutError:
        return None


def backup(
    home: Any, mode: str, seconds: float = 0, kinds: list[str] | None = None
) -> tuple[RunStats | None, float]:
    with open_session(home, PASSPHRASE) as s:
        started = time.monotonic()
        stats = asyncio.run(_run_capped(s, mode, seconds, kinds))
        return stats, time.monotonic() - started


def memory_breakdown() -> dict[str, float]:
    """What the RSS is made of, in MB: glibc malloc (in use / free but kept), SQLite's own count,
    anonymous vs file-backed pages, Python's allocated blocks, threads. For --memory-report."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                "fordblks", "keepcost",
            )
        ]  # fmt: skip

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    mi = libc.mallinfo2()
    # The same libsqlite3 the sqlite3 module uses (dlopen returns the loaded copy): memory held by
    # every connection's page cache and statements together.
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    cur, hi = ctypes.c_int64(), ctypes.c_int64()
    sqlite.sqlite3_status64(0, ctypes.byref(cur), ctypes.byref(hi), 0)  # SQLITE_STATUS_MEMORY_USED
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    kb = lambda key: int(status[key].split()[0]) * 1024 / 1e6  # noqa: E731
    return {
        "rss": kb("VmRSS"),
        "anon": kb("RssAnon"),
        "file": kb("RssFile"),
        "malloc_in_use": (mi.uordblks + mi.hblkhd) / 1e6,
        "malloc_free_kept": mi.fordblks / 1e6,
        "malloc_mmapped": mi.hblkhd / 1e6,
        "sqlite": cur.value / 1e6,
        "py_blocks_M": sys.getallocatedblocks() / 1e6,
        "threads": float(len(os.listdir("/proc/self/task"))),
    }


class RssSampler:
    """Peak RSS of this process during one scenario (ru_maxrss would carry over between scenarios).

    With ``report``, a memory breakdown is taken whenever the peak grows by 2 MB, so the one of
    the peak itself can be printed (what held the memory then)."""

    def __init__(self, every: float = 0.1, report: bool = False, tmp_dir: Path | None = None) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._report = report
        self._started = time.monotonic()
        self.at_peak: dict[str, float] = {}
        self.peak_fds = 0  # open file descriptors (spooled downloads waiting for the writer, sockets)
        # Bytes of the open files under tmp_dir (downloads spooled to disk; unnamed, so counted
        # through this process's descriptors): how much room a run needs for its temporary files.
        self._tmp_dir = str(tmp_dir.resolve()) if tmp_dir is not None else None
        self.peak_tmp = 0
        # Every sample's RSS: a peak is one moment (a pack built during a burst of parsing), while
        # the median says what the run held most of the time; the two can move apart.
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        next_line = 15.0
        ticks = 0
        while not self._stop.wait(every):
            ticks += 1
            rss = self._proc.memory_info().rss
            t = time.monotonic() - self._started
            if self._report and rss > self.at_peak.get("rss", 0) * 1e6 + 2e6:
                self.at_peak = memory_breakdown() | {"t": t}
            if self._report and t >= next_line:  # how it grows: one line every 15 s
                next_line += 15.0
                m = memory_breakdown()
                print(
                    f"  {t:5.0f} s: rss {m['rss']:.0f}, malloc in use {m['malloc_in_use']:.0f} "
                    f"(SQLite {m['sqlite']:.0f}), free kept {m['malloc_free_kept']:.0f}, "
                    f"Python blocks {m['py_blocks_M']:.2f} M",
                    flush=True,
                )
            self.peak = max(self.peak, rss)
            self.samples.append(rss)
            with contextlib.suppress(OSError):
                self.peak_fds = max(self.peak_fds, self._proc.num_fds())
            if self._report and self._tmp_dir is not None and ticks % 5 == 0:
                self.peak_tmp = max(self.peak_tmp, self._tmp_bytes())

    def _tmp_bytes(self) -> int:
        total = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(f"/proc/self/fd/{fd}").startswith(self._tmp_dir + "/"):
                    st = os.stat(f"/proc/self/fd/{fd}")
                    total += st.st_blocks * 512
        return total

    def over_the_run(self) -> str:
        """Median and 90th percentile of the RSS samples, in MB."""
        if len(self.samples) < 2:
            return "too short a run for RSS percentiles"
        deciles = statistics.quantiles(self.samples, n=10)
        return f"median {deciles[4] / 1e6:,.0f} MB, 90th percentile {deciles[8] / 1e6:,.0f} MB"

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        if self._report:
            print(
                "  memory at the peak: "
                + ", ".join(f"{k} {v:,.1f}" for k, v in self.at_peak.items())
                + f"; at the end: {', '.join(f'{k} {v:,.1f}' for k, v in memory_breakdown().items())}"
            )
            print(f"  open files at most: {self.peak_fds:,}")
            if self._tmp_dir is not None:
                print(f"  temporary files on disk at most: {self.peak_tmp / 1e6:,.1f} MB")
        return self.peak / 1e6


class CpuMeter:
    """CPU seconds used by this process (every thread) and by the emulator during a scenario: on
    two cores shared by both, their sum over the wall time says whether the run was CPU-bound."""

    def __init__(self, emu: Emulator) -> None:
        import psutil

        self._me, self._emu = psutil.Process(), psutil.Process(emu.proc.pid)
        self._start = (self._cpu(self._me), self._cpu(self._emu))
        self._sys0 = self._me.cpu_times().system

    @staticmethod
    def _cpu(proc: Any) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    def report(self, wall: float) -> str:
        me = self._cpu(self._me) - self._start[0]
        emu = self._cpu(self._emu) - self._start[1]
        system = self._me.cpu_times().system - self._sys0
        return (
            f"  CPU: backup process {me:,.1f} s ({100 * me / wall:.0f}% of one core; system {system:,.1f} s), "
            f"emulator {emu:,.1f} s ({100 * emu / wall:.0f}%), over {wall:,.1f} s wall"
        )


def peak_rss_mb() -> float:
    """Lifetime peak of this process (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


MEMORY_REPORT = False  # --memory-report
FAMILIES = ""  # --families: which families (a) and (a') back up; "" = all
CONCURRENCY = 32  # --concurrency: the client's max_concurrency in (a) and (a')
FETCH_ONLY = False  # --fetch-only: (a) with a store that keeps nothing
NO_FILE_REUSE = False  # --no-file-reuse: a new temporary file for every download spooled to disk


def kinds_of(spec: str) -> list[str] | None:
    """The kinds of the families named in ``spec`` ("files,todo"), or of all but those named with
    a leading minus ("-files"); None for every kind."""
    from dingvault.source.collectors import COLLECTOR_CLASSES

    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        return None
    by_family = {c.family: list(c.kinds) for c in COLLECTOR_CLASSES}
    unknown = {n.lstrip("-") for n in names} - set(by_family)
    if unknown:
        raise SystemExit(f"--families: unknown {', '.join(sorted(unknown))}; known: {', '.join(by_family)}")
    excluded = {n[1:] for n in names if n.startswith("-")}
    chosen = [n for n in names if not n.startswith("-")] or [f for f in by_family if f not in excluded]
    return [k for f in chosen if f not in excluded for k in by_family[f]]


def families_label() -> str:
    return f", families {FAMILIES}" if FAMILIES else ""


def print_pacing(home: Any, stats: RunStats | None) -> None:
    """What set the pace of the run, and the records it held in flight (the run's "pipeline"
    statistics): from its stats, or for a run stopped by --max-seconds / --large-seconds from the
    catalog, which records them even then."""
    if stats is not None:
        pipeline: dict[str, Any] | None = stats.pipeline()
    else:
        with open_session(home, PASSPHRASE) as s:
            runs = s.catalog.list_runs(limit=1)
        pipeline = runs[0].stats.get("pipeline") if runs else None
    if pipeline:
        print(f"  {pacing_line(pipeline)}")


class NullStore:
    """A store that keeps nothing (--fetch-only): every record is new, every blob dropped unread.

    With it, (a) measures the fetch side alone (HTTP, collectors, change detection, downloads,
    spooling) against the same emulator: how fast a run could go if storing cost the process
    nothing, e.g. with the vault and catalog writes in a process of their own."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self._runs = 0

    def start_run(self, mode: str, families: Any) -> int:
        self._runs += 1
        return self._runs

    def load_cursors(self) -> dict[Any, Any]:
        return {}

    def known(self, kind: str, source_ids: list[str]) -> dict[str, Any]:
        return {}

    def put_attachment(self, stream: Any, level: str, size: int | None = None) -> list[str]:
        return ["0" * 64]

    def put_version(self, payload: bytes, level: str) -> str:
        return "0" * 64

    def durable(self) -> None:
        pass

    def commit(self, run_id: int, commit: Any) -> Any:
        from dingvault.backup.store_api import CommitResult

        new: dict[str, int] = {}
        for version in commit.versions:
            new[version.kind] = new.get(version.kind, 0) + 1
        return CommitResult(new=new)

    def finish_run(self, run_id: int, stats: Any) -> None:
        pass

    def commit_snapshot(self, run_id: int) -> str:
        return ""

    def export_catalog(self, run_id: int) -> None:
        return None

    def close(self) -> None:
        pass


def scenario_a(profile: str, max_seconds: float) -> None:
    variant = ", fetch only (nothing stored)" if FETCH_ONLY else ""
    variant += ", a new temporary file per download" if NO_FILE_REUSE else ""
    print(f"\n(a) limits off, {profile} company{families_label()}{variant}, full backup  [{load()}]")
    emu = Emulator(profile, "off")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = new_home(emu, root, {"rate_per_api": 100_000, "max_concurrency": CONCURRENCY})
        cpu = CpuMeter(emu)
        sampler = RssSampler(report=MEMORY_REPORT, tmp_dir=open_home(root / "home").tmp_dir)
        if NO_FILE_REUSE:
            import dingvault.backup.engine
            from dingvault.backup.spool import TempFilePool

            # The engine builds its pool by this name: one that keeps no file creates one per download.
            dingvault.backup.engine.TempFilePool = lambda tmp_dir: TempFilePool(tmp_dir, max_files=0)  # type: ignore[assignment,misc]
        if FETCH_ONLY:
            import dingvault.backup.session

            # The session builds its store by this name: the run then stores nothing.
            dingvault.backup.session.VaultCatalogStore = NullStore  # type: ignore[assignment,misc]
        stats, wall = backup(home, "full", max_seconds, kinds_of(FAMILIES))
        rss = sampler.stop()
        print(cpu.report(wall))
        if stats is None:
            print(f"  stopped after {wall:.0f} s (--max-seconds); figures below are for the part done")
            with open_session(home, PASSPHRASE) as s:
                records = sum(c.versions for c in s.catalog.counts_per_kind().values())
            print(f"  records stored: {records:,} → {records / wall:,.0f} records/s")
        else:
            records = stats.items_seen
            print(
                f"  records: {records:,} in {wall:.1f} s → {records / wall:,.0f} records/s (target ≥ 5,000)"
            )
            print(
                f"  content downloaded: {stats.bytes_downloaded / 1e6:,.1f} MB → {stats.bytes_downloaded / 1e6 / wall:,.1f} MB/s; "
                f"stored (plaintext) {stats.bytes_stored / 1e6:,.1f} MB; API calls {sum(stats.api_calls.values()):,}"
            )
            if stats.family_failures or stats.failed:
                print(
                    f"  problems: {[f.to_dict() for f in stats.family_failures]} failed items {dict(stats.failed)}"
                )
        print_pacing(home, stats)
        vault_bytes = sum(f.stat().st_size for f in (root / "home" / "vault").rglob("*") if f.is_file())
        print(
            f"  vault on disk: {vault_bytes / 1e6:,.1f} MB; peak RSS during the run: {rss:,.0f} MB (target < 400); "
            f"{sampler.over_the_run()}"
        )
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


def scenario_large(seconds: float) -> None:
    print(
        f"\n(a') limits off, large company{families_label()}, full backup stopped after {seconds:.0f} s  [{load()}]"
    )
    emu = Emulator("large", "off")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = new_home(emu, root, {"rate_per_api": 100_000, "max_concurrency": CONCURRENCY})
        cpu = CpuMeter(emu)
        sampler = RssSampler(report=MEMORY_REPORT, tmp_dir=open_home(root / "home").tmp_dir)
        stats, wall = backup(home, "full", seconds, kinds_of(FAMILIES))
        rss = sampler.stop()
        print(cpu.report(wall))
        with open_session(home, PASSPHRASE) as s:
            records = sum(c.versions for c in s.catalog.counts_per_kind().values())
        print(
            f"  records stored in {wall:.0f} s: {records:,}; peak RSS during the run: {rss:,.0f} MB; "
            f"{sampler.over_the_run()}"
        )
        print_pacing(home, stats)
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


def _calls(emu: Emulator) -> tuple[dict[str, int], int]:
    """Calls the emulator received per API template (throttled ones included), and how many of all
    calls it answered with a throttling error (the emulator counts those by reason, not by API)."""
    st = emu.get("stats")
    return {k: int(v) for k, v in st["calls"].items()}, int(st.get("throttled") or 0)


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
        used = sum(calls.values())
        minimum = used - throttled
        busiest = max(calls, key=lambda k: calls[k])
        # Calls to the busiest API (its few throttled answers included: a slight over-estimate).
        floor = calls[busiest] / QPS
        print(f"  records {full.items_seen:,}, status {full.status}; wall {wall:.1f} s")
        print(
            f"  floor {floor:.1f} s ({calls[busiest]} calls to {busiest} ÷ {QPS}/s) → wall/floor {wall / floor:.2f} (target ≤ 1.15)"
        )
        print(
            f"  calls used {used:,} vs minimum {minimum:,} → {used / max(minimum, 1):.3f} (target ≤ 1.05); throttled answers {throttled}"
        )
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:5]
        print("  busiest APIs: " + "; ".join(f"{k} {v}" for k, v in top))
        print_pacing(home, full)

        total_items = full.items_seen
        changes = max(1, round(total_items * 0.005))
        emu.post("mutate", {"op": "random", "count": changes, "seed": 3})
        emu.post("stats/reset")
        print(
            f"\n(c) incremental after {changes} random changes (0.5% of {total_items:,} records)  [{load()}]"
        )
        inc, inc_wall = backup(home, "incremental")
        assert inc is not None
        calls, _throttled = _calls(emu)
        used = sum(calls.values())
        t = inc.totals()
        changed = t["new"] + t["changed"] + t["deleted"]
        print(
            f"  items new/changed/deleted: {t['new']}/{t['changed']}/{t['deleted']} ({changed} changed items); unchanged re-listed {t['unchanged']}"
        )
        print(f"  API calls {used:,} = changed items {changed} + listing and other calls {used - changed:,}")
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        print("  calls by API: " + "; ".join(f"{k} {v}" for k, v in top))
        print(f"  time {inc_wall:.1f} s vs full {wall:.1f} s → {100 * inc_wall / wall:.1f}% (target ≤ 5%)")
    finally:
        emu.stop()
        shutil.rmtree(root, ignore_errors=True)


class SyntheticCollector:
    name = "synthetic"
    family = "approvals"
    kinds = ("approval",)

    def __init__(self, n: int, page: int = 100) -> None:
        self.n, self.page = n, page

    async def collect(self, *, mode: str, cursors: Any, scope: Any) -> Any:
        from dingvault.source.items import Batch, CursorUpdate, Item

        for start in range(0, self.n, self.page):
            items = []
            for i in range(start, min(self.n, start + self.page)):
                detail = {
                    "processInstanceId": f"pi-{i:09d}",
                    "title": f"陳大文提交的報銷申請 #{i}",
                    "status": "COMPLETED",
                    "result": "agree",
                    "originatorUserId": f"user{i % 300:04d}",
                    "formComponentValues": [
                        {"name": "報銷金額", "value": str(100 + i % 9000)},
                        {"name": "事由", "value": "澳門客戶拜訪交通費及午餐 pagamento de despesas " * 3},
                    ],
                    "operationRecords": [
                        {"userId": f"user{(i + k) % 300:04d}", "type": "EXECUTE_TASK_NORMAL"}
                        for k in range(3)
                    ],
                }
                items.append(
                    Item(
                        "approval",
                        detail["processInstanceId"],
                        {"detail": detail},
                        {"title": detail["title"], "owner": detail["originatorUserId"]},
                        version_key=f"v{i}",
                        container="PROC-BENCH/2026-11",
                    )
                )
            yield Batch(items=items, cursor=CursorUpdate(self.name, "", {"next": start + self.page}))

    async def open_attachment(self, ref: Any) -> Any:
        yield b""


def scenario_engine(n: int) -> None:
    from dingvault.backup.engine import BackupEngine
    from dingvault.backup.vault_store import VaultCatalogStore

    print(f"\n(e) the engine alone: {n:,} synthetic ~1 KB records into vault + SQLite catalog  [{load()}]")
    root = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        home = open_home(root / "home")
        init_home(home, PASSPHRASE, kdf=FAST_KDF_FOR_TESTS)
        with open_session(home, PASSPHRASE) as s:
            store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=home.tmp_dir)
            cpu0, started = time.process_time(), time.monotonic()
            sampler = RssSampler()
            stats = asyncio.run(BackupEngine(store, [SyntheticCollector(n)]).run("full"))
            wall, cpu = time.monotonic() - started, time.process_time() - cpu0
            rss = sampler.stop()
            store.close()
        print(
            f"  {stats.items_seen:,} records in {wall:.1f} s → {stats.items_seen / wall:,.0f} records/s "
            f"(CPU {cpu:.1f} s → {stats.items_seen / cpu:,.0f} records per CPU-second); peak RSS {rss:,.0f} MB"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="medium", help="company for (a), limits off")
    parser.add_argument("--limits-profile", default="small", help="company for (b) and (c), realistic limits")
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="stop (a) after this long (0 = run to the end)"
    )
    parser.add_argument("--large-seconds", type=float, default=0, help="also run the large company this long")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: a,b")
    parser.add_argument(
        "--engine-records", type=int, default=0, help="also run (e), the engine alone, with N records"
    )
    parser.add_argument(
        "--memory-report",
        action="store_true",
        help="(a, a') print what the memory was made of at the peak (malloc, SQLite, anon/file pages) and the most files open at once",
    )
    parser.add_argument(
        "--families",
        default="",
        help="(a, a') back up only these families (files,todo) or all but some (-files): which "
        "family a memory or speed difference comes from (write the minus form as --families=-files)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="(a, a') API requests in flight at once, all APIs together (the client's max_concurrency)",
    )
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="(a) store nothing (a null store): the fetch side's own speed, what a run could reach "
        "if storing cost this process nothing",
    )
    parser.add_argument(
        "--no-file-reuse",
        action="store_true",
        help="(a) a new temporary file for every download spooled to disk, as before the pool of "
        "reused files: what the pool saves",
    )
    parser.add_argument("--only", choices=("a", "engine", "large", "b"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MEMORY_REPORT, FAMILIES, CONCURRENCY, FETCH_ONLY, NO_FILE_REUSE
    MEMORY_REPORT = args.memory_report
    NO_FILE_REUSE = args.no_file_reuse
    FETCH_ONLY = args.fetch_only
    CONCURRENCY = args.concurrency
    FAMILIES = args.families
    kinds_of(FAMILIES)  # an unknown family stops here, before any emulator starts
    if args.only:
        # One scenario in this process (the parent runs each in a fresh one, so the peak RSS of a
        # scenario never includes what an earlier one left on the heap).
        {
            "a": lambda: scenario_a(args.profile, args.max_seconds),
            "engine": lambda: scenario_engine(args.engine_records),
            "large": lambda: scenario_large(args.large_seconds),
            "b": lambda: scenarios_b_c(args.limits_profile),
        }[args.only]()
        return
    skip = set(filter(None, args.skip.split(",")))
    print(f"bench/backup.py on {os.cpu_count()} CPUs; {load()}", flush=True)
    wanted = [x for x in ("a", "engine", "large", "b") if x not in skip]
    if args.engine_records <= 0:
        wanted.remove("engine")
    if args.large_seconds <= 0:
        wanted.remove("large")
    for name in wanted:
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", name], check=False)
    print(f"\nend; {load()}")


if __name__ == "__main__":
    main()
