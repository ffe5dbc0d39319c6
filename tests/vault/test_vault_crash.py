"""Crash safety: a writer killed with SIGKILL at random moments leaves a vault that opens,
verifies (reading every blob) and still holds everything that was reported committed."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from vault_helpers import PASSPHRASE

from dingvault.vault import Vault, verify
from dingvault.vault.backends import LocalBackend
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

TRIALS = 24
CHILD = Path(__file__).with_name("crash_child.py")


def run_trial(repo: Path, cache: Path, seed: int, kill_after: float) -> list[dict]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(repo), str(cache), str(seed), PASSPHRASE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first and orjson.loads(first) == {"ready": True}, proc.stderr.read() if proc.stderr else first
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    rest, errors = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, errors.decode()[-2000:]
    # The kill can land in the middle of a report line: only newline-terminated lines were
    # reported (the child acts on a step only after its line is flushed whole).
    complete = rest[: rest.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in complete.splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_during_writes_loses_nothing_committed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    cache = tmp_path / "cache"
    v, _ = Vault.init(LocalBackend(repo), PASSPHRASE, kdf=FAST_KDF_FOR_TESTS, cache_dir=cache)
    v.close()
    rng = random.Random(20261129)
    expected: dict[str, dict[str, str]] = {}
    optional: set[str] = set()
    exports: dict[str, str] = {}
    for trial in range(TRIALS):
        events = run_trial(repo, cache, seed=trial, kill_after=rng.uniform(0.0, 1.2))
        for ev in events:
            if "committed" in ev:
                expected[ev["committed"]] = ev["items"]
            elif "forgetting" in ev:
                optional.add(ev["forgetting"])
            elif "export" in ev:
                exports[ev["export"]] = ev["sha256"]
        # The vault must open (same cache as the killed writer), verify and hold every commit.
        vault = Vault.open(LocalBackend(repo), PASSPHRASE, cache_dir=cache)
        try:
            report = verify(vault, read_data=True)
            assert report.ok, f"trial {trial}: {[str(e) for e in report.errors]}"
            present = set(vault.snapshot_ids())
            for sid, items in expected.items():
                if sid in optional:
                    continue
                assert sid in present, f"trial {trial}: committed snapshot {sid} is gone"
                got = {
                    r.key: hashlib.sha256(b"".join(vault.get_blob(b) for b in r.blobs)).hexdigest()
                    for r in vault.records(sid)
                }
                assert got == items, f"trial {trial}: snapshot {sid} differs from what was committed"
            for eid, digest in exports.items():
                assert hashlib.sha256(vault.open_catalog_export(eid).read()).hexdigest() == digest
        finally:
            vault.close()
    committed = len([s for s in expected if s not in optional])
    assert committed >= TRIALS // 4, f"only {committed} commits in {TRIALS} trials: the kills came too early"
    # And the vault stays usable: a fresh cache rebuilds from the backend alone.
    fresh = Vault.open(LocalBackend(repo), PASSPHRASE, cache_dir=tmp_path / "fresh-cache")
    assert verify(fresh, read_data=True).ok
    fresh.close()
    print(
        f"{TRIALS} kills: {committed} snapshots kept, {len(optional)} forgotten+pruned, {len(exports)} exports"
    )
