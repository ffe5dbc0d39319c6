"""Acceptance: a backup killed with SIGKILL at random points resumes; nothing is missing or duplicated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from .emulator_env import PASSPHRASE, assert_complete, install, start_emulator

KILLS = 10


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_loses_and_duplicates_nothing(tmp_path):
    emu = start_emulator()
    try:
        inst = install(emu, tmp_path)
        inst.refresh_known_chats()
        from dingvault.home import open_home

        home = open_home(inst.home_path)
        settings = home.load_settings()
        settings.backup["client"] = {"rate_per_api": 1000}
        home.save_settings(settings)
        env = {**os.environ, "DINGVAULT_PASSPHRASE": PASSPHRASE, "DINGVAULT_HOME": str(inst.home_path)}
        cmd = [sys.executable, "-m", "dingvault.cli.main", "backup", "--incremental", "--json"]
        rng = random.Random(20261129)
        # Ten runs really killed mid-run. Each killed run leaves less work for the next, so a run
        # that finishes before its kill shrinks the window the later kill points are drawn from
        # (the machine's speed decides how long a run lasts, not the test).
        killed, attempts, latest = 0, 0, 7.0
        while killed < KILLS and attempts < 3 * KILLS:
            attempts += 1
            started = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = started + rng.uniform(1.0, latest)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                latest = max(1.2, 0.8 * (time.monotonic() - started))
            proc.wait(timeout=60)
        assert killed == KILLS, f"only {killed} of {attempts} runs were killed mid-run"
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert final.returncode == 0, final.stderr[-2000:]
        with inst.session() as s:
            assert_complete(inst, s)
            # nothing changed at the source: every item has exactly one version
            for kind, c in s.catalog.counts_per_kind().items():
                assert c.versions == c.live + c.deleted, f"{kind}: duplicate versions after kills"
            # every version the catalog names is in the vault
            for v in s.catalog.iter_latest_versions():
                assert s.vault.has_blob(bytes.fromhex(v.content_hash))
            from dingvault.vault import verify

            assert verify(s.vault, read_data=True).ok
            statuses = [r.status for r in s.catalog.list_runs(limit=20)]
            assert "interrupted" in statuses and statuses[0] == "succeeded"
    finally:
        emu.stop()
