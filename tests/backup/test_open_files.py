"""The open-files limit a backup run raises: spooled downloads waiting for the writer are open files
(over 1,000 at once on the emulator's large company), more than a default soft limit of 1,024."""

from __future__ import annotations

import subprocess
import sys

import pytest

resource = pytest.importorskip("resource", reason="no resource limits on this platform")

_CHILD = """
import resource, sys
from dingvault.backup.open_files import raise_open_files_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, ({start}, hard))
now = raise_open_files_limit({wanted})
print(now, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def _run(start: int, wanted: int) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(start=start, wanted=wanted)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def test_a_low_soft_limit_is_raised_towards_what_a_run_needs() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise")
    returned, now, _ = _run(256, 2048)
    assert returned == now == 2048


def test_the_limit_is_never_lowered_nor_raised_past_the_hard_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 600:
        pytest.skip(f"needs a finite hard limit of at least 600 (here {hard})")
    returned, now, _ = _run(600, 300)  # already above what is wanted: left alone
    assert returned == now == 600
    returned, now, _ = _run(256, hard + 1_000_000)  # more than allowed: up to the hard limit
    assert returned == now == hard


_BACKUP = """
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
sys.path.insert(0, {tests!r})
from backup.fakes import MemoryStore, ScriptedCollector, att, make_item
from dingvault.backup import engine as engine_mod
if {keep_low}:
    engine_mod.raise_open_files_limit = lambda: None
# One page of 600 records, each with a 20 KB attachment: the page is stored once all its records are
# prepared, so past the in-memory spool budget its downloads wait as open temporary files.
items = [make_item("file", f"s/{{i}}", "1", attachments=[att(f"f{{i}}")]) for i in range(600)]
contents = {{f"f{{i}}": bytes([i % 251]) * 20_000 for i in range(600)}}
store = MemoryStore()
coll = ScriptedCollector("files", "files", [items], contents=contents)
stats = asyncio.run(engine_mod.BackupEngine(store, [coll], tmp_dir={tmp!r}).run("full"))
print(sum(stats.failed.values()), stats.attachments_downloaded)
"""


def _backup_with_a_low_limit(tmp_path, keep_low: bool) -> tuple[int, int]:
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1])
    code = _BACKUP.format(tests=tests, tmp=str(tmp_path), keep_low=keep_low)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    failed, downloaded = out.stdout.split()
    return int(failed), int(downloaded)


def test_a_run_started_under_a_low_limit_stores_every_download(tmp_path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise")
    failed, downloaded = _backup_with_a_low_limit(tmp_path, keep_low=False)
    assert (failed, downloaded) == (0, 600)
    # The same run kept at 128 open files runs out of descriptors: what the raise is for.
    failed_low, _ = _backup_with_a_low_limit(tmp_path, keep_low=True)
    assert failed_low > 0
