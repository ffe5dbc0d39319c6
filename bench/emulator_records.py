"""Emulator records families: start-up, peak memory and in-process cost of one page, per profile.

    .venv/bin/python bench/emulator_records.py                 # demo, small, medium, large
    .venv/bin/python bench/emulator_records.py --profiles large --requests 500
    .venv/bin/python bench/emulator_records.py --truth-walk large  # walk time and peak memory

Each profile runs in a fresh subprocess (so peak RSS is the profile's own). The page rates call the
ASGI app directly (no socket, no HTTP parser): they are the handler's cost — contacts, approvals,
attendance, calendar, todo and reports — and bound what the HTTP server can reach. The HTTP figure
(requests/s over a socket) is `bench/emulator.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any


def _asgi_call(
    app: Any, method: str, path: str, query: bytes = b"", body: Any = None, headers: tuple = ()
) -> Any:
    import orjson

    raw = orjson.dumps(body) if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    done = False

    async def receive() -> dict:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    out: list[dict] = []

    async def send(msg: dict) -> None:
        out.append(msg)

    async def run() -> list[dict]:
        await app(scope, receive, send)
        return out

    return run


def one(profile: str, requests: int) -> dict[str, Any]:
    from dingtalk_emulator.company.seeding import local_datetime
    from dingtalk_emulator.server import create_app
    from dingtalk_emulator.state import EmulatorConfig

    t0 = time.perf_counter()
    app, st = create_app(EmulatorConfig(profile=profile, limits="off"))
    startup = time.perf_counter() - t0
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tok = st.tokens.app_token().value
    q = f"access_token={tok}".encode()
    h = ((b"x-acs-dingtalk-access-token", tok.encode()),)
    now = st.now_ms()
    people = st.org.people
    dept = max(people.departments[1:], key=lambda d: len(people.members(d.dept_id))).dept_id
    code = st.org.approvals.templates[0]["processCode"]
    unionid = people.users[3].unionid
    pages = {
        "user/list size≤50": (
            "POST",
            "/topapi/v2/user/list",
            q,
            {"dept_id": dept, "cursor": 0, "size": 50},
            (),
        ),
        "attendance/list limit 50": (
            "POST",
            "/attendance/list",
            q,
            {
                "workDateFrom": local_datetime(now - 7 * 86_400_000),
                "workDateTo": local_datetime(now),
                "userIdList": [u.userid for u in people.users[:10]],
                "offset": 0,
                "limit": 50,
            },
            (),
        ),
        "instanceIds maxResults 20": (
            "POST",
            "/v1.0/workflow/processes/instanceIds/query",
            b"",
            {"processCode": code, "startTime": now - 100 * 86_400_000, "maxResults": 20},
            h,
        ),
        "approval detail (varying ids)": None,
        "calendar events maxResults 50": (
            "GET",
            f"/v1.0/calendar/users/{unionid}/calendars/primary/events",
            b"maxResults=50",
            None,
            h,
        ),
        "todo query (page of 20)": (
            "POST",
            f"/v1.0/todo/users/{unionid}/org/tasks/query",
            b"",
            {"nextToken": "0"},
            h,
        ),
        "report/list size 20": (
            "POST",
            "/topapi/report/list",
            q,
            {"start_time": now - 100 * 86_400_000, "end_time": now, "cursor": 0, "size": 20},
            (),
        ),
    }
    rates: dict[str, float] = {}
    book = st.org.approvals

    async def measure() -> None:
        for name, spec in pages.items():
            t = time.perf_counter()
            for n in range(requests):
                if spec is None:  # a different instance each time: measures generation, not the cache
                    pid = book.instance_id((n * 7919) % book.n)
                    call = _asgi_call(
                        app,
                        "GET",
                        "/v1.0/workflow/processInstances",
                        f"processInstanceId={pid}".encode(),
                        None,
                        h,
                    )
                else:
                    call = _asgi_call(app, *spec)
                out = await call()
                assert out[0]["status"] == 200, (name, out)
            rates[name] = requests / (time.perf_counter() - t)

    asyncio.run(measure())
    t = time.perf_counter()
    walked = 0
    from dingtalk_emulator.api.approvals import truth_item

    for i in range(min(book.n, 1000)):
        truth_item(book, book.get(i))
        walked += 1
    truth_rate = walked / (time.perf_counter() - t)
    counts = {
        k: st.counts[k](st)
        for k in ("approval", "attendance", "calendar_event", "todo", "report")
        if k in st.counts
    }
    return {
        "profile": profile,
        "startup_s": round(startup, 3),
        "rss_after_start_mb": round(rss_start),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "records": sum(counts.values()),
        "users": len(people.users),
        "page_rates": {k: round(v) for k, v in rates.items()},
        "approval_truth_per_s": round(truth_rate),
    }


def truth_walk(profile: str) -> dict[str, Any]:
    """Walk the ground truth of the lazily generated kinds once: time and peak RSS (bounded caches)."""
    from dingtalk_emulator.server import create_app
    from dingtalk_emulator.state import EmulatorConfig

    _, st = create_app(EmulatorConfig(profile=profile, limits="off"))
    out: dict[str, Any] = {"profile": profile, "kinds": {}}
    for kind in ("attendance", "calendar_event", "todo", "report", "user"):
        t = time.perf_counter()
        n = sum(1 for _ in st.truth[kind](st))
        out["kinds"][kind] = {"items": n, "seconds": round(time.perf_counter() - t, 1)}
    out["rss_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", default="demo,small,medium,large")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--truth-walk", metavar="PROFILE", help="walk the truth of the generated kinds instead")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.requests)))
        return
    if args.truth_walk:
        print(f"load average before: {os.getloadavg()}")
        r = truth_walk(args.truth_walk)
        for kind, k in r["kinds"].items():
            print(f"  {kind:16} {k['items']:>9,} items in {k['seconds']} s")
        print(f"  peak RSS {r['rss_peak_mb']} MB")
        print(f"load average after: {os.getloadavg()}")
        return
    print(f"load average before: {os.getloadavg()}")
    for profile in args.profiles.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--one", profile, "--requests", str(args.requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"\n{profile}: start-up {r['startup_s']} s, RSS after start {r['rss_after_start_mb']} MB, peak {r['rss_peak_mb']} MB, "
            f"{r['records']:,} records (approvals, attendance, events, todos, reports), {r['users']} users"
        )
        for name, rate in r["page_rates"].items():
            print(f"  {name:32} {rate:>7,} pages/s in-process")
        print(
            f"  approval truth (with attachment digests) {r['approval_truth_per_s']:,} items/s (first 1,000, cold)"
        )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
