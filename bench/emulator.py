"""Emulator benchmark: start-up time, peak memory and requests/s for a 50-record page, per profile.

    .venv/bin/python bench/emulator.py                          # all profiles, wrk if installed
    .venv/bin/python bench/emulator.py --profiles demo,large --duration 10 --record
    .venv/bin/python bench/emulator.py --mix --profiles medium     # CPU per call of a backup's mix

For each profile the emulator runs in its own process (`dingtalk-emulator serve --limits off`, so the
figure is the server's capacity rather than DingTalk's 20 calls/s) and is measured from the outside:

* start-up: from spawning the process until it answers HTTP;
* memory: the process's peak resident set (VmHWM) after start-up and after the load run;
* throughput: a `wrk` run (or, without wrk, a concurrent httpx client) against one page of 50 records —
  the first of `GET /v1.0/storage/spaces/{spaceId}/dentries maxResults=50` (fullest folder),
  `topapi/v2/user/list size=50` (fullest department, as GET with query parameters) and
  `POST /attendance/list limit=50` (50 users x 7 days) whose page really holds 50 records in the
  profile — checked once before the run; the server's own stats then confirm the calls succeeded.

`--mix` instead replays the calls that dominate a full backup (issue #4): approval details, each
attachment's download URL and download, then storage `downloadInfos` and the signed download of
each file, with 16 connections; it prints the server's CPU seconds (user + system, from /proc) per
1,000 calls and the download megabytes per CPU second, per phase.  CPU time rather than wall time:
the load generator shares the machine, and CPU per call is what bounds a backup's rate.

Targets (DESIGN/brief): >= 2,000 requests/s on 2 cores; the large profile starts in < 10 s and stays
under 500 MB.  `--record` writes the table into the "Emulator" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Emulator"


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the server if this benchmark dies (no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: Server.stop() in a finally block still cleans up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, field: str) -> int:
    """A /proc/PID/status memory field in bytes (VmHWM = peak RSS, VmRSS = current)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    startup_s: float

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_server(profile: str, timeout: float = 120.0) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    # The emulator exactly as users run it: `dingtalk-emulator serve` (one uvicorn worker).
    cmd = [sys.executable, "-m", "dingtalk_emulator.cli", "serve", "--profile", profile, "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--limits", "off"], env=env, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    base = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator ({profile}) exited with {proc.returncode} during start-up")
        try:
            if httpx.get(base + "/_emulator/stream/stats", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise RuntimeError(f"emulator ({profile}) did not answer within {timeout} s")
        time.sleep(0.01)
    return Server(proc, base, time.perf_counter() - t0)


@dataclass
class Target:
    label: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    records: int


def _attendance_target(base: str, token: str, users: list[dict[str, Any]]) -> Target:
    # 50 users x 7 days x 2 check points: a full page of `limit=50` whatever the profile.
    now = time.time()
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 8 * 86400))
    end = time.strftime("%Y-%m-%d", time.gmtime(now - 2 * 86400))
    body = json.dumps(
        {
            "workDateFrom": f"{day} 00:00:00",
            "workDateTo": f"{end} 00:00:00",
            "userIdList": [u["id"] for u in users[:50]],
            "offset": 0,
            "limit": 50,
        }
    )
    url = f"{base}/attendance/list?access_token={token}"
    headers = {"Content-Type": "application/json"}
    reply = httpx.post(url, content=body, headers=headers).json()
    if reply.get("errcode") != 0:
        raise RuntimeError(f"attendance/list failed: {reply}")
    return Target("POST /attendance/list limit=50", "POST", url, headers, body, len(reply["recordresult"]))


def _users_target(base: str, token: str, users: list[dict[str, Any]]) -> Target:
    members: dict[int, int] = {}
    for u in users:
        for d in u.get("dept_id_list", []):
            members[d] = members.get(d, 0) + 1
    dept = max(members, key=lambda d: members[d])
    url = f"{base}/topapi/v2/user/list?access_token={token}&dept_id={dept}&cursor=0&size=50"
    body = httpx.get(url).json()
    if body.get("errcode") != 0:
        raise RuntimeError(f"user/list failed: {body}")
    return Target("topapi/v2/user/list size=50", "GET", url, {}, None, len(body["result"]["list"]))


def _dentries_target(base: str, token: str, admin: str) -> Target:
    # Walk the org drive through the API (breadth first, bounded) for a folder holding 50 entries;
    # the truth listing of every file is too slow a way to find one in big profiles.
    headers = {"x-acs-dingtalk-access-token": token}
    spaces = httpx.get(
        f"{base}/v1.0/drive/spaces",
        params={"unionId": admin, "spaceType": "org", "maxResults": 50},
        headers=headers,
        timeout=60,
    ).json()["spaces"]
    queue = [(str(sp["spaceId"]), "0") for sp in spaces]
    best: tuple[int, str] = (-1, "")
    for _ in range(300):
        if not queue:
            break
        space, parent = queue.pop(0)
        url = f"{base}/v1.0/storage/spaces/{space}/dentries?parentId={parent}&unionId={admin}&maxResults=50"
        reply = httpx.get(url, headers=headers, timeout=60)
        if reply.status_code != 200:
            raise RuntimeError(f"dentries failed: {reply.status_code} {reply.text[:200]}")
        entries = reply.json()["dentries"]
        best = max(best, (len(entries), url))
        if len(entries) >= 50:
            break
        queue.extend((space, str(d["id"])) for d in entries if d["type"] == "FOLDER")
    return Target("storage dentries maxResults=50", "GET", best[1], headers, None, best[0])


def pick_target(server: Server, endpoint: str) -> Target:
    """A page of (ideally) 50 records, verified once.  `auto`: the first of dentries, user list,
    attendance whose page really holds 50 records in this profile."""
    base = server.base
    org = httpx.get(base + "/_emulator/org", timeout=120).json()
    token = httpx.post(
        base + "/v1.0/oauth2/accessToken", json={"appKey": org["appKey"], "appSecret": org["appSecret"]}
    ).json()["accessToken"]
    users = httpx.get(base + "/_emulator/truth", params={"kind": "user"}, timeout=120).json()["items"]
    admin = next(u for u in users if u["id"] == org["adminUserId"])["unionid"]
    makers = {
        "dentries": lambda: _dentries_target(base, token, admin),
        "users": lambda: _users_target(base, token, users),
        "attendance": lambda: _attendance_target(base, token, users),
    }
    if endpoint != "auto":
        return makers[endpoint]()
    best: Target | None = None
    for make in makers.values():
        target = make()
        if target.records >= 50:
            return target
        if best is None or target.records > best.records:
            best = target
    assert best is not None
    return best


def run_wrk(target: Target, duration: int, connections: int) -> dict[str, Any]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in target.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if target.body is not None:
            script.write(f"wrk.method = {json.dumps(target.method)}\nwrk.body = {json.dumps(target.body)}\n")
            script.flush()
            cmd += ["-s", script.name]
        out = subprocess.run([*cmd, target.url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    dist = out.split("Latency Distribution", 1)[-1]
    p50 = re.search(r"^\s*50%\s+(\S+)", dist, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", dist, re.M)
    return {
        "rps": rps,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
        "tool": f"wrk -t2 -c{connections} -d{duration}s",
    }


async def _httpx_load(target: Target, duration: int, connections: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    done = bad = 0
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=limits, headers=target.headers, timeout=30) as client:
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal done, bad
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.request(target.method, target.url, content=target.body)
                latencies.append(time.perf_counter() - t)
                done += 1
                bad += r.status_code >= 300

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rps": done / elapsed,
        "non2xx": bad,
        "socket_errors": "",
        "p50": f"{latencies[len(latencies) // 2] * 1000:.2f}ms",
        "p99": f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f}ms",
        "tool": f"httpx asyncio c={connections} {duration}s",
    }


def measure(
    profile: str, endpoints: list[str], duration: int, connections: int, tool: str
) -> list[dict[str, Any]]:
    """One server per profile; one load run per endpoint; memory read after all of them."""
    server = start_server(profile)
    try:
        rss_start = proc_status(server.proc.pid, "VmHWM")
        rows = []
        for endpoint in endpoints:
            target = pick_target(server, endpoint)
            if target.records != 50:
                print(f"  note: {target.label} holds {target.records} records, not 50", file=sys.stderr)
            httpx.post(server.base + "/_emulator/stats/reset")
            if tool == "wrk":
                load = run_wrk(target, duration, connections)
            else:
                load = asyncio.run(_httpx_load(target, duration, connections))
            served = httpx.get(server.base + "/_emulator/stats").json()
            rows.append(
                {
                    "profile": profile,
                    "endpoint": target.label,
                    "records": target.records,
                    "startup_s": server.startup_s,
                    "rss_start_mb": rss_start / 2**20,
                    "served_calls": served["total"],
                    "failed_calls": served["failed"],
                    **load,
                }
            )
        peak = proc_status(server.proc.pid, "VmHWM") / 2**20
        for row in rows:
            row["rss_peak_mb"] = peak
        return rows
    finally:
        server.stop()


def guard_overhead(calls: int = 20_000) -> dict[str, float]:
    """Microseconds the Guard adds per API call, in process (no sockets): a bare Starlette route
    against the same route behind `Guard` with realistic limits (never reached) and faults off."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from dingtalk_emulator.guard import Guard

    async def page(request: Any) -> Response:
        return Response(b'{"errcode":0,"errmsg":"ok","result":{"list":[]}}', media_type="application/json")

    def build() -> Any:
        return Starlette(routes=[Route("/v1.0/storage/spaces/{spaceId}/dentries", page)])

    async def drive(app: Any) -> float:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        t0 = time.perf_counter()
        for i in range(calls):
            scope = {
                "type": "http",
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": f"/v1.0/storage/spaces/{i % 500}/dentries",
                "raw_path": b"",
                "root_path": "",
                "query_string": b"",
                "headers": [],
                "client": (f"10.0.{i % 4}.1", 5000),
                "server": ("127.0.0.1", 80),
            }
            await app(scope, receive, send)
        return (time.perf_counter() - t0) / calls * 1e6

    # Best of five interleaved runs: the minimum is the least disturbed by other load on the machine.
    bare, guarded = [], []
    for _ in range(5):
        bare.append(asyncio.run(drive(build())))
        guarded.append(asyncio.run(drive(Guard(qps=10**9, ip_ban_threshold=10**9).wrap(build()))))
    return {"bare_us": min(bare), "guarded_us": min(guarded), "overhead_us": min(guarded) - min(bare)}


DAY_MS = 86_400_000


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _mix_inputs(client: httpx.AsyncClient, org: dict[str, Any], instances: int, files: int) -> Any:
    """Token, admin unionId, approval ids spread over every template, and readable storage files."""
    token = (
        await client.post(
            "/v1.0/oauth2/accessToken", json={"appKey": org["appKey"], "appSecret": org["appSecret"]}
        )
    ).json()["accessToken"]
    headers = {"x-acs-dingtalk-access-token": token}
    me = await client.post(
        "/topapi/v2/user/get", params={"access_token": token}, json={"userid": org["adminUserId"]}
    )
    union = me.json()["result"]["unionid"]
    templates = (
        await client.get(
            "/v1.0/workflow/processes/managements/templates",
            params={"userId": org["adminUserId"]},
            headers=headers,
        )
    ).json()["result"]
    now = int(time.time() * 1000)
    per_template: list[list[str]] = []
    for t in templates:
        ids: list[str] = []
        for window in range(3):  # 120-day windows back to the 365-day limit
            end = now - window * 120 * DAY_MS
            start = max(end - 120 * DAY_MS + 1, now - 365 * DAY_MS + 1)
            cursor: Any = 0
            while cursor is not None and len(ids) < instances:
                body = {"processCode": t["processCode"], "startTime": start, "endTime": end}
                page = await client.post(
                    "/v1.0/workflow/processes/instanceIds/query",
                    headers=headers,
                    json={**body, "maxResults": 20, "nextToken": cursor},
                )
                result = page.json()["result"]
                ids += result["list"]
                cursor = result.get("nextToken")
        per_template.append(ids)
    mixed = [i for group in itertools.zip_longest(*per_template) for i in group if i][:instances]
    spaces = (await client.get("/_emulator/truth", params={"kind": "drive_space"}, timeout=120)).json()[
        "items"
    ]
    found: list[tuple[str, str]] = []
    for space in spaces:
        token_: str | None = None
        while len(found) < files:
            option = {"maxResults": 50, **({"nextToken": token_} if token_ else {})}
            page = await client.post(
                f"/v1.0/storage/spaces/{space['id']}/dentries/listAll",
                headers=headers,
                json={"unionId": union, "option": option},
            )
            if page.status_code != 200:  # a space the admin cannot read
                break
            reply = page.json()
            found += [
                (space["id"], d["id"])
                for d in reply["dentries"]
                if d["type"] == "FILE" and d.get("storageDriver") != "ALIDOC"
            ]
            token_ = reply.get("nextToken")
            if not token_:
                break
    return headers, union, mixed, found[:files]


async def _request(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One call, sent again if a kept-alive connection was closed under it (uvicorn closes idle
    connections after 5 s; on a loaded machine a pooled one can be picked just as that happens)."""
    for attempt in range(3):
        try:
            return await client.request(method, url, **kw)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _run_mix(base: str, pid: int, instances: int, files: int) -> list[dict[str, Any]]:
    org = httpx.get(base + "/_emulator/org", timeout=120).json()
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        headers, union, ids, found = await _mix_inputs(client, org, instances, files)
        gate = asyncio.Semaphore(16)
        counts = {"calls": 0, "bytes": 0, "downloads": 0}

        async def fetch(url: str, **kw: Any) -> None:
            reply = await _request(client, "GET", url, **kw)
            if reply.status_code != 200:
                raise RuntimeError(f"download failed: {reply.status_code} {url}")
            counts["calls"] += 1
            counts["downloads"] += 1
            counts["bytes"] += len(reply.content)

        async def approval(pid_: str) -> None:
            async with gate:
                reply = await _request(
                    client,
                    "GET",
                    "/v1.0/workflow/processInstances",
                    params={"processInstanceId": pid_},
                    headers=headers,
                )
                counts["calls"] += 1
                for field in reply.json()["result"].get("formComponentValues", []):
                    if field.get("componentType") != "DDAttachment" or not field.get("value"):
                        continue
                    for att in json.loads(field["value"]):
                        url = await _request(
                            client,
                            "POST",
                            "/v1.0/workflow/processInstances/spaces/files/urls/download",
                            headers=headers,
                            json={"processInstanceId": pid_, "fileId": att["fileId"]},
                        )
                        counts["calls"] += 1
                        await fetch(url.json()["result"]["downloadUri"])

        async def storage_file(space: str, dentry: str) -> None:
            async with gate:
                info = await _request(
                    client,
                    "POST",
                    f"/v1.0/storage/spaces/{space}/dentries/{dentry}/downloadInfos/query",
                    headers=headers,
                    json={"unionId": union},
                )
                counts["calls"] += 1
                signed = info.json()["headerSignatureInfo"]
                await fetch(signed["resourceUrls"][0], headers=signed["headers"])

        rows = []
        phases = [
            ("approvals: detail, attachment URL, download", [approval(i) for i in ids]),
            ("storage: downloadInfos, signed download", [storage_file(*f) for f in found]),
        ]
        for label, jobs in phases:
            counts.update(calls=0, bytes=0, downloads=0)
            cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
            await asyncio.gather(*jobs)
            cpu = _cpu_seconds(pid) - cpu0
            rows.append({"phase": label, **counts, "cpu_s": cpu, "wall_s": time.perf_counter() - t0})
        return rows


def backup_mix(profile: str, instances: int, files: int) -> list[dict[str, Any]]:
    server = start_server(profile)
    try:
        return asyncio.run(_run_mix(server.base, server.proc.pid, instances, files))
    finally:
        server.stop()


def mix_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| phase | calls | downloads | MB | server CPU s | CPU s / 1,000 calls | MB / CPU s | wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = {
        "phase": "all",
        **{k: sum(r[k] for r in rows) for k in ("calls", "downloads", "bytes", "cpu_s", "wall_s")},
    }
    for r in [*rows, total]:
        mb = r["bytes"] / 1e6
        lines.append(
            f"| {r['phase']} | {r['calls']:,} | {r['downloads']:,} | {mb:,.1f} | {r['cpu_s']:.2f} "
            f"| {1000 * r['cpu_s'] / max(1, r['calls']):.3f} | {mb / max(r['cpu_s'], 1e-9):,.0f} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| profile | page | start-up | RSS after start | peak RSS | req/s | p50 | p99 | non-2xx | failed (server) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['profile']} | {r['endpoint']} ({r['records']} records) | {r['startup_s']:.2f} s "
            f"| {r['rss_start_mb']:.0f} MB | {r['rss_peak_mb']:.0f} MB | {r['rps']:,.0f} | {r['p50']} | {r['p99']} "
            f"| {r['non2xx']} | {r['failed_calls']} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def record(text: str) -> None:
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    block = text.rstrip() + "\n\n"
    if pattern.search(existing):
        updated = pattern.sub(lambda _m: block, existing)
    else:
        updated = existing.rstrip() + "\n\n" + block
    RESULTS.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", default="demo,small,medium,large")
    parser.add_argument(
        "--endpoints",
        default="auto",
        help="comma list of auto, dentries, users, attendance (auto: the first giving a full 50-record page)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per profile")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--record", action="store_true", help="write the results into bench/RESULTS.md")
    parser.add_argument(
        "--mix", action="store_true", help="measure server CPU per call of a backup's heavy mix instead"
    )
    parser.add_argument("--mix-instances", type=int, default=3000, help="approval instances in --mix")
    parser.add_argument("--mix-files", type=int, default=1500, help="storage files in --mix")
    args = parser.parse_args(argv)
    if args.mix:
        for profile in args.profiles.split(","):
            print(f"\n{profile} profile, backup mix  [load average {load_average()}]")
            print(mix_table(backup_mix(profile.strip(), args.mix_instances, args.mix_files)))
        return 0
    tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    if tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --tool httpx")

    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = set(endpoints) - {"auto", "dentries", "users", "attendance"}
    if unknown or not endpoints:
        parser.error(f"unknown endpoints {sorted(unknown)}")
    load_before = load_average()
    rows = []
    for profile in args.profiles.split(","):
        print(f"profile {profile} ...", file=sys.stderr)
        rows.extend(measure(profile.strip(), endpoints, args.duration, args.connections, tool))
        print(json.dumps(rows[-1]), file=sys.stderr)
    overhead = guard_overhead()
    print(json.dumps(overhead), file=sys.stderr)
    load_after = load_average()

    cmd = "python bench/emulator.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{cmd.strip()}` — load generator: {rows[0]['tool']}, one uvicorn worker, `--limits off`.",
            f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before {load_before}, "
            f"after {load_after} (the machine is shared, so figures are lower bounds).",
            "",
            table(rows),
            "",
            f"Guard cost per API call (in process, best of 5 x 20,000 calls, realistic limits never reached, no faults): "
            f"{overhead['overhead_us']:.1f} µs ({overhead['bare_us']:.1f} µs bare Starlette route, "
            f"{overhead['guarded_us']:.1f} µs behind the Guard).",
            "",
            "Targets: >= 2,000 req/s on 2 cores; large profile start-up < 10 s and peak RSS < 500 MB. "
            "Start-up = spawn until the first HTTP answer; peak RSS = VmHWM of the server process.",
        ]
    )
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
