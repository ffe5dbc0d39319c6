"""Recovery point objective of `dingvault serve`: event time -> durable locally -> durable on the replica.

Runs the service in process against the emulator (demo profile, rate limits off: the figure is
the service's own latency, not DingTalk's quotas) with one replica (moto S3 on loopback by
default, or a local directory), and measures for every event:

* local   - from the event's time (``eventBornTime``; robot messages: ``createAt``) to the moment
            the event-driven run that captured it committed (vault durable, catalog written);
* replica - from the event's time to the moment that run's snapshot is on the replica (a snapshot
            is shipped after its packs and index, so it is then durable there).

Two phases: a steady stream of ``--rate`` events/s for ``--seconds`` seconds, then bursts of
``--burst`` mutations sent as fast as the emulator's control API takes them. The mix is the
event types the service fetches directly (approvals, robot messages) plus family incrementals
(todo, calendar). Targets (issue #5): p99 <= 10 s local, <= 60 s on the replica.

    .venv/bin/python bench/rpo.py [--rate 20] [--seconds 30] [--burst 500] [--bursts 1] [--replica s3|local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from backup.emulator_env import FAST_CLIENT, PASSPHRASE, install, start_emulator  # noqa: E402
from dingvault.service.app import ServiceApp  # noqa: E402
from dingvault.service.config import ServiceConfig  # noqa: E402
from dingvault.vault.replicas import Replica, ReplicaRegistry  # noqa: E402

MIX = (("approval.start", 4), ("robot.message", 4), ("todo.update", 1), ("calendar.update", 1))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<34} (no samples)"
    return (
        f"{label:<34} n={len(values):>5}  p50={pct(values, 50):6.2f} s  p95={pct(values, 95):6.2f} s  "
        f"p99={pct(values, 99):6.2f} s  max={max(values):6.2f} s  mean={statistics.fmean(values):6.2f} s"
    )


def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20.0, help="steady events per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the steady phase")
    ap.add_argument("--burst", type=int, default=500, help="mutations per burst")
    ap.add_argument("--bursts", type=int, default=1)
    ap.add_argument("--replica", choices=("s3", "local"), default="s3")
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="rpo-"))
    moto = None
    emu = start_emulator()
    try:
        inst = install(emu, tmp)
        t = time.time()
        inst.backup("full")
        print(f"first full backup: {time.time() - t:.1f} s")
        if args.replica == "s3":
            for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                         "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():  # fmt: skip
                os.environ[k] = v
            import boto3
            from moto.server import ThreadedMotoServer

            port = _free_port()
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            moto.start()
            endpoint = f"http://127.0.0.1:{port}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="rpo")
            url = f"s3://rpo/vault?endpoint_url={endpoint}&region=us-east-1"
        else:
            url = str(tmp / "replica")
        ReplicaRegistry.in_home(inst.home_path).add(Replica("r1", url))
        org = httpx.get(f"{emu.base_url}/_emulator/org?counts=false").json()
        config = ServiceConfig(listen="127.0.0.1:0", jitter_seconds=0, batch_seconds=0.2,
                               replication_interval=1.0, extra={"corp_id": org["corpId"]})  # fmt: skip
        session = inst.session()
        app = ServiceApp(session, config, client_overrides=FAST_CLIENT)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=lambda: loop.run_until_complete(app.run(ready=lambda _a: ready.set()))
        )
        thread.start()
        ready.wait(120)
        _wait_idle(app)
        assert app.replication.wait_in_sync(120), "initial replication did not finish"
        rng = random.Random(1)
        ops = [op for op, w in MIX for _ in range(w)]
        http = httpx.Client(base_url=emu.base_url, timeout=60)

        def send(op: str) -> None:
            extra = {"msgtype": "text"} if op == "robot.message" else {}
            http.post("/_emulator/mutate", json={"op": op, "rand": rng.randrange(2**31), **extra})

        phases: dict[str, tuple[int, int]] = {}
        # -- steady
        start_local, start_rep = len(app.coordinator.latencies), len(app.replication.latencies)
        t0 = time.monotonic()
        n = int(args.rate * args.seconds)
        for i in range(n):
            due = t0 + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send(rng.choice(ops))
        sent_for = time.monotonic() - t0
        _wait_idle(app)
        app.replication.wait_in_sync(120)
        _wait_replica_observed(app)
        phases["steady"] = (start_local, start_rep)
        print(f"steady: {n} mutations in {sent_for:.1f} s ({n / sent_for:.1f}/s)")
        # -- bursts
        burst_marks = (len(app.coordinator.latencies), len(app.replication.latencies))
        for b in range(args.bursts):
            t1 = time.monotonic()
            for _ in range(args.burst):
                send(rng.choice(ops))
            print(f"burst {b + 1}: {args.burst} mutations sent in {time.monotonic() - t1:.1f} s")
            _wait_idle(app)
            app.replication.wait_in_sync(180)
            _wait_replica_observed(app)
        phases["burst"] = burst_marks
        print(f"load average at end: {os.getloadavg()}")
        print()
        local = list(app.coordinator.latencies)
        rep = list(app.replication.latencies)
        ends = {"steady": (burst_marks[0], burst_marks[1]), "burst": (len(local), len(rep))}
        for phase, (ls, rs) in phases.items():
            le, re_ = ends[phase]
            print(summary(f"{phase}: event -> durable locally", [v for _t, v in local[ls:le]]))
            print(summary(f"{phase}: event -> on the replica", [v for _r, v in rep[rs:re_]]))
        by_type: dict[str, list[float]] = {}
        for typ, v in local:
            by_type.setdefault(typ, []).append(v)
        for typ, vs in sorted(by_type.items()):
            print(summary(f"  local, {typ}", vs))
        print(f"inbox: {app.state.counts()}  runs: {len(app.coordinator.runs)}")
        loop.call_soon_threadsafe(app.stop)
        thread.join(120)
        session.close()
    finally:
        emu.stop()
        if moto is not None:
            moto.stop()
    _ = PASSPHRASE


def _wait_idle(app: ServiceApp, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    calm = None
    while time.monotonic() < deadline:
        c = app.coordinator
        if not app.state.pending(1) and not c.catchup_pending and not c.lock.locked():
            calm = calm or time.monotonic()
            if time.monotonic() - calm > 1.0:
                return
        else:
            calm = None
        time.sleep(0.05)
    raise SystemExit("the service did not become idle")


def _wait_replica_observed(app: ServiceApp, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while app.replication._tracked and time.monotonic() < deadline:
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
