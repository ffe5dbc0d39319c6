"""Benchmark: the dingvault vault against restic on the same data, in the same run.

    .venv/bin/python bench/vault.py            # 200k records + ~2 GB of file versions
    .venv/bin/python bench/vault.py --small    # 20k records + ~200 MB, a quick look

Measures, for both tools: ingest time (records/s for small JSON records, MB/s for files),
repository size, full read-verify time (``restic check --read-data`` vs ``verify --read-data``)
and restore time; prints the ratios. Then the vault's peak RSS while ingesting 1M blobs (disk-
backed index). restic comes from the Debian package and is installed if missing.

What "restore" means: restic restores each record as the file it was backed up from; the vault
streams every record of the snapshot (key and raw JSON) into one JSON-lines file, as dingvault's
JSONL export does. For files both write the files of the last version to a directory.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vault_data
from dingvault.vault import Vault, verify
from dingvault.vault.backends import LocalBackend

PASSWORD = "bench passphrase 基準"


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def ensure_restic() -> str | None:
    exe = shutil.which("restic")
    if exe:
        return exe
    print("restic not found: installing the Debian package ...", flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y", "restic"], check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"could not install restic ({exc}); vault figures only", flush=True)
        return None
    return shutil.which("restic")


class Restic:
    def __init__(self, exe: str, repo: Path) -> None:
        self.exe = exe
        self.repo = repo
        self.env = {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": str(repo.parent / "restic-cache"),
        }

    def run(self, *args: str, cwd: Path | None = None) -> float:
        t = time.perf_counter()
        subprocess.run(
            [self.exe, "-r", str(self.repo), "--quiet", *args],
            check=True,
            env=self.env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


# ------------------------------------------------------------------------------ records


def bench_records(work: Path, n: int, restic: str | None) -> dict[str, float]:
    print(f"\n== {n} small JSON records ==", flush=True)
    records = list(vault_data.records(n))
    raw_bytes = sum(len(r[1]) for r in records)
    print(f"data: {n} records, {mb(raw_bytes)} (mean {raw_bytes / n:.0f} bytes)", flush=True)
    res: dict[str, float] = {"records": n, "raw_bytes": raw_bytes}

    if restic:
        src = work / "records-src"
        for key, data in records:
            p = src / f"{key}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        r = Restic(restic, work / "restic-records")
        r.run("init")
        res["restic_ingest"] = r.run("backup", ".", cwd=src)
        res["restic_size"] = du(r.repo)
        res["restic_verify"] = r.run("check", "--read-data")
        target = work / "restic-records-restore"
        res["restic_restore"] = r.run("restore", "latest", "--target", str(target))
        # (Left for the final cleanup: deleting 400k small files is slow on discard-mounted disks.)
        print(
            f"restic: ingest {res['restic_ingest']:.2f} s, size {mb(res['restic_size'])}, "
            f"verify {res['restic_verify']:.2f} s, restore {res['restic_restore']:.2f} s",
            flush=True,
        )

    repo = work / "vault-records"
    v, _ = Vault.init(LocalBackend(repo), PASSWORD, cache_dir=work / "vault-cache")

    def ingest() -> str:
        with v.writer() as w:
            manifest = [(key, [w.put_blob(data, "internal")]) for key, data in records]
            return w.commit_snapshot(manifest, tags=["records"])

    res["vault_ingest"], sid = timed(ingest)
    v.close()
    res["vault_size"] = du(repo)
    v = Vault.open(LocalBackend(repo), PASSWORD, cache_dir=work / "vault-cache")
    res["vault_verify"], report = timed(lambda: verify(v, read_data=True))
    assert report.ok, report.errors

    def restore() -> int:
        out = work / "vault-records-restore.jsonl"
        count = 0
        with open(out, "wb") as f:
            for rec in v.records(sid):
                f.write(rec.key.encode() + b"\t")
                for b in rec.blobs:
                    f.write(v.get_blob(b))
                f.write(b"\n")
                count += 1
        os.remove(out)
        return count

    res["vault_restore"], count = timed(restore)
    assert count == n
    v.close()
    print(
        f"vault:  ingest {res['vault_ingest']:.2f} s, size {mb(res['vault_size'])}, "
        f"verify {res['vault_verify']:.2f} s, restore {res['vault_restore']:.2f} s",
        flush=True,
    )
    return res


# ------------------------------------------------------------------------------ files


def bench_files(work: Path, total: int, restic: str | None) -> dict[str, float]:
    print(f"\n== ~{mb(total)} of files in 3 versions ==", flush=True)
    root = work / "files-src"
    versions = vault_data.write_files(root, total)
    logical = sum(p.stat().st_size for files in versions for p in files)
    print(f"data: {sum(len(f) for f in versions)} files, {mb(logical)} over 3 versions", flush=True)
    res: dict[str, float] = {"logical_bytes": logical}
    subprocess.run(["sync"], check=False)

    if restic:
        r = Restic(restic, work / "restic-files")
        r.run("init")
        res["restic_ingest"] = sum(r.run("backup", ".", cwd=root / f"v{i}") for i in (1, 2, 3))
        res["restic_size"] = du(r.repo)
        res["restic_verify"] = r.run("check", "--read-data")
        target = work / "restic-files-restore"
        res["restic_restore"] = r.run("restore", "latest", "--target", str(target))
        shutil.rmtree(target)
        print(
            f"restic: ingest {res['restic_ingest']:.2f} s, size {mb(res['restic_size'])}, "
            f"verify {res['restic_verify']:.2f} s, restore {res['restic_restore']:.2f} s",
            flush=True,
        )

    repo = work / "vault-files"
    v, _ = Vault.init(LocalBackend(repo), PASSWORD, cache_dir=work / "vault-cache")

    def ingest() -> list[str]:
        sids = []
        for files in versions:
            with v.writer() as w:
                manifest = []
                for p in files:
                    with open(p, "rb") as f:
                        manifest.append((f"file/{p.name}", w.put_stream(f, "confidential")))
                sids.append(w.commit_snapshot(manifest, tags=["files"]))
        return sids

    res["vault_ingest"], sids = timed(ingest)
    v.close()
    res["vault_size"] = du(repo)
    v = Vault.open(LocalBackend(repo), PASSWORD, cache_dir=work / "vault-cache")
    res["vault_verify"], report = timed(lambda: verify(v, read_data=True))
    assert report.ok, report.errors

    def restore() -> None:
        target = work / "vault-files-restore"
        target.mkdir()
        for rec in v.records(sids[-1]):
            with open(target / rec.key.split("/", 1)[1], "wb") as f:
                for b in rec.blobs:
                    f.write(v.get_blob(b))
        shutil.rmtree(target)

    res["vault_restore"], _ = timed(restore)
    v.close()
    shutil.rmtree(root)
    print(
        f"vault:  ingest {res['vault_ingest']:.2f} s ({logical / res['vault_ingest'] / 1e6:.0f} MB/s), "
        f"size {mb(res['vault_size'])}, verify {res['vault_verify']:.2f} s, restore {res['vault_restore']:.2f} s",
        flush=True,
    )
    return res


# ------------------------------------------------------------------------------ RSS

RSS_CHILD = r"""
import sys, time
from dingvault.vault import Vault
from dingvault.vault.backends import LocalBackend
from dingvault.vault.keys import FAST_KDF_FOR_TESTS
n, repo, cache = int(sys.argv[1]), sys.argv[2], sys.argv[3]
v, _ = Vault.init(LocalBackend(repo), "pw", kdf=FAST_KDF_FOR_TESTS, cache_dir=cache)
t = time.perf_counter()
with v.writer() as w:
    ids = (( f"event/{i:08d}", [w.put_blob(b'{"msgId":"%d","conversationId":"cid%d","text":"\xe6\x94\xb6\xe5\x88\xb0"}' % (i, i % 977), "internal")]) for i in range(n))
    sid = w.commit_snapshot(ids)
dt = time.perf_counter() - t
count = sum(1 for _ in v.records(sid))
# VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the (larger) parent's size.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(f"{n} {count} {dt:.2f} {hwm}")
"""


def bench_rss(work: Path, n: int) -> dict[str, float]:
    print(f"\n== peak RSS with {n} blobs ==", flush=True)
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(n), str(work / "vault-rss"), str(work / "vault-rss-cache")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    blobs, count, seconds, rss_kib = int(out[0]), int(out[1]), float(out[2]), int(out[3])
    assert count == blobs
    print(
        f"vault: {blobs} blobs + a {count}-record snapshot in {seconds:.1f} s; peak RSS {rss_kib / 1024:.0f} MiB",
        flush=True,
    )
    return {"blobs": blobs, "seconds": seconds, "rss_mib": rss_kib / 1024}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="20k records and ~200 MB of files")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--files-bytes", type=int, default=None)
    ap.add_argument("--rss-blobs", type=int, default=None)
    ap.add_argument("--no-restic", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    n = args.records or (20_000 if args.small else 200_000)
    total = args.files_bytes or (200_000_000 if args.small else 2_000_000_000)
    rss_n = args.rss_blobs or (200_000 if args.small else 1_000_000)
    restic = None if args.no_restic else ensure_restic()
    if restic:
        print(subprocess.run([restic, "version"], capture_output=True, text=True).stdout.strip())
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="dingvault-bench-", dir=args.workdir))
    try:
        rec = bench_records(work, n, restic)
        fil = bench_files(work, total, restic)
        rss = bench_rss(work, rss_n)
        report(rec, fil, rss)
    finally:
        print(f"removing {work} ...", flush=True)
        shutil.rmtree(work, ignore_errors=True)


def report(rec: dict[str, float], fil: dict[str, float], rss: dict[str, float]) -> None:
    print("\n== summary ==")
    print(f"records: vault {rec['records'] / rec['vault_ingest']:.0f} records/s", end="")
    if "restic_ingest" in rec:
        print(
            f", restic {rec['records'] / rec['restic_ingest']:.0f} records/s "
            f"(vault ingest rate {ratio(rec['restic_ingest'], rec['vault_ingest'])} restic's)"
        )
        print(
            f"  size: vault {mb(rec['vault_size'])}, restic {mb(rec['restic_size'])} "
            f"(vault/restic {ratio(rec['vault_size'], rec['restic_size'])})"
        )
        print(
            f"  read-verify: vault {rec['vault_verify']:.2f} s, restic {rec['restic_verify']:.2f} s "
            f"(vault speed {ratio(rec['restic_verify'], rec['vault_verify'])} restic's)"
        )
        print(
            f"  restore: vault {rec['vault_restore']:.2f} s, restic {rec['restic_restore']:.2f} s "
            f"(vault speed {ratio(rec['restic_restore'], rec['vault_restore'])} restic's)"
        )
    else:
        print()
    lb = fil["logical_bytes"]
    print(f"files: vault {lb / fil['vault_ingest'] / 1e6:.0f} MB/s", end="")
    if "restic_ingest" in fil:
        print(
            f", restic {lb / fil['restic_ingest'] / 1e6:.0f} MB/s "
            f"(vault {ratio(fil['restic_ingest'], fil['vault_ingest'])} restic's)"
        )
        print(
            f"  size: vault {mb(fil['vault_size'])}, restic {mb(fil['restic_size'])} "
            f"(vault/restic {ratio(fil['vault_size'], fil['restic_size'])})"
        )
        print(
            f"  read-verify: vault {fil['vault_verify']:.2f} s, restic {fil['restic_verify']:.2f} s "
            f"(vault speed {ratio(fil['restic_verify'], fil['vault_verify'])} restic's)"
        )
        print(
            f"  restore: vault {fil['vault_restore']:.2f} s, restic {fil['restic_restore']:.2f} s "
            f"(vault speed {ratio(fil['restic_restore'], fil['vault_restore'])} restic's)"
        )
    else:
        print()
    print(
        f"RSS: {rss['rss_mib']:.0f} MiB peak with {rss['blobs']} blobs ({rss['blobs'] / rss['seconds']:.0f} blobs/s)"
    )
    print(f"load average after: {os.getloadavg()}")
    print(
        f"bench harness peak RSS (holds the generated data): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
