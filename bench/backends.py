"""Vault backend and replication throughput. Prints figures; asserts nothing.

    .venv/bin/python bench/backends.py [--dir DIR] [--mib 256] [--small 2000] [--no-s3]

Measures, on the filesystem holding DIR (default: a temp dir under the current directory, so
the figures describe the disk the vault would live on, not a tmpfs):

* local large sequential writes: ``put_stream`` of 16 MiB objects (pack-sized), fsynced;
* local small objects: 4 KiB ``put`` with ``sync=True`` each, vs ``sync=False`` + one ``sync()``;
* local reads: whole-object and 4 KiB ranged ``get``;
* replication local -> local of the large objects (hash-checked streaming copy);
* S3 client path against a moto server on loopback (moto is an in-process Python emulator, so
  this is a lower bound dominated by moto, not a figure for a real store).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from dingvault.vault.backends import LocalBackend
from dingvault.vault.replicas import Replica
from dingvault.vault.replication import replicate

MiB = 1 << 20


def pack_key(level: str, data: bytes) -> str:
    h = hashlib.sha256(data).hexdigest()
    return f"data/{level}/{h[:2]}/{h}"


def timed(label: str, nbytes: int, n: int, fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    rate = f"{nbytes / MiB / dt:8.1f} MiB/s" if nbytes else ""
    print(f"  {label:<52} {dt:7.3f} s  {n / dt:9.0f} obj/s  {rate}")
    return dt


def bench_local(root: Path, total_mib: int, n_small: int) -> list[tuple[str, bytes]]:
    b = LocalBackend(root / "primary")
    rng = random.Random(1)
    blobs = [rng.randbytes(16 * MiB) for _ in range(max(1, total_mib // 16))]
    packs = [(pack_key("internal", d), d) for d in blobs]
    total = sum(len(d) for _, d in packs)
    print(f"local backend at {b.root}")
    timed(
        f"put_stream {len(packs)} x 16 MiB, sync=True",
        total,
        len(packs),
        lambda: [b.put_stream(k, io.BytesIO(d), len(d)) for k, d in packs],
    )
    small = [(pack_key("public", d), d) for d in (rng.randbytes(4096) for _ in range(n_small))]
    timed(
        f"put {n_small} x 4 KiB, sync=True each",
        4096 * n_small,
        n_small,
        lambda: [b.put(k, d) for k, d in small],
    )
    small2 = [(pack_key("public", d), d) for d in (rng.randbytes(4096) for _ in range(n_small))]

    def batched() -> None:
        for k, d in small2:
            b.put(k, d, sync=False)
        t0 = time.perf_counter()
        b.sync()
        print(f"    (of which the one sync(): {time.perf_counter() - t0:.3f} s)")

    timed(f"put {n_small} x 4 KiB, sync=False + one sync()", 4096 * n_small, n_small, batched)
    timed(f"get {len(packs)} x 16 MiB whole", total, len(packs), lambda: [b.get(k) for k, _ in packs])
    keys = [k for k, _ in packs]
    timed(
        "get 2000 x 4 KiB ranged from 16 MiB objects",
        2000 * 4096,
        2000,
        lambda: [b.get(keys[i % len(keys)], rng.randrange(16 * MiB - 4096), 4096) for i in range(2000)],
    )
    timed("list all objects", 0, 2 * n_small + len(packs), lambda: list(b.list()))
    return packs


def bench_replication(root: Path, packs: list[tuple[str, bytes]]) -> None:
    rep = Replica("bench", str(root / "replica"))
    primary = LocalBackend(root / "primary")
    listing = list(primary.list())
    n, total = len(listing), sum(i.size for i in listing)
    print("replication local -> local (every object is a content-addressed pack: all hash-checked)")
    result = None

    def run() -> None:
        nonlocal result
        result = replicate(primary, rep)

    timed(f"replicate {n} objects ({total // MiB} MiB)", total, n, run)
    assert result is not None and result.ok and result.copied == n, result


def bench_latency(root: Path, n: int = 20) -> None:
    """Continuous mode: seconds from a pack landing on the primary to it landing on the replica."""
    import statistics
    import threading

    from dingvault.vault.replication import Replicator

    primary = LocalBackend(root / "lat-primary")
    replica = LocalBackend(root / "lat-replica")
    rep = Replica("lat", str(root / "lat-replica"))
    print("continuous replication latency, local -> local, 1 MiB packs written every 0.2 s")
    for mode, interval, notify in (("writer calls notify()", 2.0, True), ("polling every 1 s", 1.0, False)):
        lat: list[float] = []
        with Replicator(primary, [rep], interval=interval) as r:
            r.wait_in_sync(30)
            for i in range(n):
                data = os.urandom(MiB) + f"{mode}{i}".encode()
                key = pack_key("internal", data)
                t0 = time.perf_counter()
                primary.put(key, data)
                if notify:
                    r.notify()
                while not replica.exists(key):
                    threading.Event().wait(0.005)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.2)
        lat.sort()
        print(
            f"  {mode:<52} median {statistics.median(lat):.3f} s  "
            f"p90 {lat[int(0.9 * (len(lat) - 1))]:.3f} s  max {lat[-1]:.3f} s  (n={n})"
        )


def bench_s3(packs: list[tuple[str, bytes]]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "vault"))
    from s3fixture import _DUMMY_ENV, MotoS3  # the test fixture's server helper

    os.environ.update(_DUMMY_ENV)
    server = MotoS3().start()
    try:
        b = server.backend(max_attempts=4, read_timeout=120)
        few = packs[: min(4, len(packs))]
        total = sum(len(d) for _, d in few)
        print(f"S3 backend against moto on {server.endpoint_url} (emulator-bound lower bound)")
        timed(
            f"put_stream {len(few)} x 16 MiB (multipart, conditional)",
            total,
            len(few),
            lambda: [b.put_stream(k, io.BytesIO(d), len(d)) for k, d in few],
        )
        timed(f"get {len(few)} x 16 MiB", total, len(few), lambda: [b.get(k) for k, _ in few])
        small = [(f"index/{i:064x}", os.urandom(4096)) for i in range(300)]
        timed("put 300 x 4 KiB (conditional PUT)", 300 * 4096, 300, lambda: [b.put(k, d) for k, d in small])
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--dir", default=None, help="where to write (default: a temp dir under the current directory)"
    )
    ap.add_argument("--mib", type=int, default=256, help="MiB of large objects to write")
    ap.add_argument("--small", type=int, default=2000, help="number of 4 KiB objects")
    ap.add_argument("--no-s3", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    root = Path(tempfile.mkdtemp(prefix="dingvault-bench-", dir=args.dir or os.getcwd()))
    try:
        packs = bench_local(root, args.mib, args.small)
        bench_replication(root, packs)
        bench_latency(root)
        if not args.no_s3:
            bench_s3(packs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
