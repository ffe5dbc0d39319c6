"""Emulator files world benchmark: start-up cost, metadata generation, content generation speed.

    .venv/bin/python bench/emulator_files.py                    # all profiles + generators
    .venv/bin/python bench/emulator_files.py --profiles demo,medium --big-mb 128

Per profile (each in its own process, so memory figures are not shared):
* `create_app` + files world build time and peak RSS (the world is built on first use);
* time to generate every space's dentries (what a first full listing or truth call costs),
  the number of files and the sum of their current sizes, and peak RSS afterwards.

Generators (in this process): MB/s for one big file per format, first pass (includes the one-off
CRC/Adler pass a ZIP/PNG needs) and second pass (checksums cached), sha256 over the stream, and
the latency of a 1 KiB Range read at the end of the big file.

Targets (brief): large profile starts in < 10 s and < 500 MB RSS; big-file generation >= 200 MB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time

PROFILE_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from dingtalk_emulator.server import create_app
    from dingtalk_emulator.state import EmulatorConfig
    from dingtalk_emulator.files.world import world
    app, state = create_app(EmulatorConfig(profile=sys.argv[1], seed=1, limits="off"))
    t1 = time.perf_counter()
    w = world(state)
    t2 = time.perf_counter()
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    files = size = 0
    for space in list(w.storage.spaces.values()):
        for d in w.storage.all_dentries(space):
            if d.type == "FILE" and d.driver != "ALIDOC":
                files += 1
                size += d.current.size
    t3 = time.perf_counter()
    print(json.dumps({
        "app_s": round(t1 - t0, 2), "world_s": round(t2 - t1, 3), "rss_start_mb": rss_start,
        "spaces": len(w.storage.spaces), "groups": len(w.groups.groups), "workspaces": len(w.workspaces),
        "metadata_s": round(t3 - t2, 2), "files": files, "bytes": size,
        "rss_after_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))
    """
)


def profile_figures(profile: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROFILE_PROBE, profile],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def generator_figures(big_mb: int) -> list[dict[str, object]]:
    from dingtalk_emulator.files.render import ContentSpec, render

    rows = []
    for ext in ("docx", "xlsx", "pdf", "png", "csv"):
        size = big_mb * 1_000_000 if ext != "csv" else 2_000_000
        spec = ContentSpec(f"bench/{ext}/{time.time_ns()}", ext, 2, size, "invoice", "zh-Hant")
        timings = []
        for _ in range(2):
            t = time.perf_counter()
            n = sum(len(c) for c in render(spec).chunks())
            timings.append(time.perf_counter() - t)
            assert n == size
        t = time.perf_counter()
        h = hashlib.sha256()
        for c in render(spec).chunks():
            h.update(c)
        sha_s = time.perf_counter() - t
        fresh = ContentSpec(spec.key + "/fresh", ext, 2, size, "invoice", "zh-Hant")
        t = time.perf_counter()
        tail = b"".join(render(fresh).iter_range(size - 1024, size))
        tail_cold = time.perf_counter() - t
        t = time.perf_counter()
        b"".join(render(fresh).iter_range(size - 1024, size))
        tail_warm = time.perf_counter() - t
        assert len(tail) == 1024
        rows.append(
            {
                "ext": ext,
                "mb": size / 1e6,
                "first_mb_s": round(size / 1e6 / timings[0]),
                "second_mb_s": round(size / 1e6 / timings[1]),
                "sha256_mb_s": round(size / 1e6 / sha_s),
                "tail_range_cold_s": round(tail_cold, 3),
                "tail_range_warm_s": round(tail_warm, 4),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", default="demo,small,medium,large")
    ap.add_argument("--big-mb", type=int, default=256)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(
        "| profile | app start s | files world s | RSS at start MB | spaces | groups | workspaces | all dentries s | files | bytes | RSS after MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for profile in args.profiles.split(","):
        f = profile_figures(profile)
        print(
            f"| {profile} | {f['app_s']} | {f['world_s']} | {f['rss_start_mb']} | {f['spaces']} | {f['groups']} | {f['workspaces']} "
            f"| {f['metadata_s']} | {f['files']} | {int(f['bytes']) / 1e9:.2f} GB | {f['rss_after_mb']} |"
        )
    print()
    print(
        "| format | size MB | 1st pass MB/s | 2nd pass MB/s | sha256 MB/s | 1 KiB tail Range cold s | warm s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in generator_figures(args.big_mb):
        print(
            f"| {r['ext']} | {r['mb']:.0f} | {r['first_mb_s']} | {r['second_mb_s']} | {r['sha256_mb_s']} "
            f"| {r['tail_range_cold_s']} | {r['tail_range_warm_s']} |"
        )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
