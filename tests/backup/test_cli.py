"""The installation's CLI end to end against the emulator: init, connect, backup, status, snapshots,
catalog rebuild; and the clear errors a user meets when something is missing or wrong."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dingvault.cli.main import app

from .emulator_env import control, start_emulator


@pytest.fixture(scope="module")
def emulator():
    emu = start_emulator()
    yield emu
    emu.stop()


def _run(runner: CliRunner, *args: str, env: dict[str, str]) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_from_init_to_catalog_rebuild(emulator, tmp_path):
    runner = CliRunner()
    home = tmp_path / "home"
    env = {"DINGVAULT_HOME": str(home), "DINGVAULT_PASSPHRASE": "cli passphrase 澳門", "COLUMNS": "250"}
    org = control(emulator, "GET", "org")

    code, out = _run(runner, "backup", env=env)
    assert code == 2 and "dingvault init" in out

    code, out = _run(runner, "init", env=env)
    assert code == 0, out
    assert "Recovery key" in out and (home / "config.toml").exists()
    code, out = _run(runner, "init", env=env)
    assert code == 2 and "already a dingvault home" in out

    code, out = _run(runner, "backup", env=env)
    assert code == 2 and "dingvault connect" in out

    secret_file = tmp_path / "secret"
    secret_file.write_text("not-the-secret\n")
    connect = [
        "connect",
        "--app-key",
        org["appKey"],
        "--app-secret-file",
        str(secret_file),
        "--api-base",
        emulator.base_url,
        "--oapi-base",
        emulator.base_url,
    ]
    code, out = _run(runner, *connect, env=env)
    assert code == 2 and "AuthenticationError" in out
    assert not (home / "secrets" / "app_secret.sealed").exists()

    secret_file.write_text(org["appSecret"] + "\n")
    code, out = _run(runner, *connect, env=env)
    assert code == 0, out
    assert "secret stored sealed" in out
    sealed = (home / "secrets" / "app_secret.sealed").read_bytes()
    assert org["appSecret"].encode() not in sealed
    assert org["appSecret"] not in (home / "config.toml").read_text()

    code, out = _run(
        runner, "backup", "--full", "--kinds", "department,user,approval_template", "--json", env=env
    )
    assert code == 0, out
    stats = json.loads(out)
    assert stats["status"] == "ok" and set(stats["per_kind"]) == {"department", "user", "approval_template"}
    assert stats["totals"]["new"] > 50

    code, out = _run(runner, "status", "--json", env=env)
    assert code == 0, out
    status = json.loads(out)
    assert status["connected"] and status["runs"][0]["status"] == "succeeded"
    assert status["runs"][0]["pipeline"]["in_flight_limit"] == 3000 == stats["pipeline"]["in_flight_limit"]
    code, out = _run(runner, "status", env=env)
    assert code == 0, out
    assert "last run: " in out and "set the pace" in out and "records in flight" in out
    users_live = status["counts"]["user"]["live"]
    assert users_live == stats["per_kind"]["user"]["new"]

    code, out = _run(runner, "snapshots", "--json", env=env)
    snaps = json.loads(out)
    assert code == 0 and len(snaps) == 1 and snaps[0]["items"] == stats["totals"]["new"]

    # the catalog is lost; the vault alone brings it back
    code, out = _run(runner, "catalog", "rebuild", env=env)
    assert code == 2 and "already holds catalog tables" in out
    code, out = _run(runner, "catalog", "rebuild", "--replace", env=env)
    assert code == 0, out
    assert list(home.glob("catalog.db.replaced-*"))
    code, out = _run(runner, "status", "--json", env=env)
    rebuilt = json.loads(out)
    assert rebuilt["counts"] == status["counts"]
    assert rebuilt["runs"][0]["status"] == "succeeded"

    code, out = _run(runner, "status", env={**env, "DINGVAULT_PASSPHRASE": "wrong"})
    assert code == 2 and "passphrase" in out.lower()


def test_cli_help_explains_commands():
    runner = CliRunner()
    result = runner.invoke(app, ["backup", "--help"])
    assert result.exit_code == 0
    for option in ("--full", "--incremental", "--kinds", "--dept", "--json"):
        assert option in result.output


def test_coverage_says_what_the_api_cannot_give():
    result = CliRunner().invoke(app, ["coverage", "--json"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    families = {f["family"] for f in data["families"]}
    assert {"contacts", "approvals", "files"} <= families
    assert any("group" in c["what"].lower() and "chat" in c["what"].lower() for c in data["not_captured"])


def test_backup_progress_counts_items_and_uses_previous_totals_for_the_eta():
    import io

    from rich.console import Console

    from dingvault.config.cli_common import RichBackupProgress, backup_progress

    progress = backup_progress(Console(file=io.StringIO(), width=200))
    view = RichBackupProgress(progress, {"approvals": 100})
    view.family_started("approvals")
    view.family_started("files")  # never seen before: no total, no ETA
    view.advance("approvals", 60, 0)
    view.advance("files", 5, 2_000_000)
    view.advance("files", 0, 1_000_000)
    approvals, files = progress.tasks
    assert (approvals.completed, approvals.total) == (60, 100)
    assert files.completed == 5 and files.total is None and files.fields["mb"] == 3.0
    view.advance("approvals", 70, 0)  # more than expected: the total follows
    assert approvals.completed == approvals.total == 130
    view.family_done("files", ok=False)
    assert "stopped" in files.description and files.total == 5


def test_the_summary_says_what_set_the_pace():
    from dingvault.cli.pacing import pacing_line

    base = {
        "storage_idle_share": 0.0,
        "fetch_wait_share": 0.0,
        "commit_wait_share": 0.0,
        "in_flight_limit": 3000,
        "in_flight_peak": 2900,
        "in_flight_mean": 1770.4,
    }
    line = pacing_line(base)
    assert "the processor set the pace" in line and "mean 1,770, peak 2,900 of 3,000" in line
    waiting = base | {"storage_idle_share": 0.4, "fetch_wait_share": 0.6}
    assert "DingTalk's answers set the pace" in pacing_line(waiting | {"cpu_cores": 0.3})
    assert "fetching set the pace, with the processor busy" in pacing_line(waiting | {"cpu_cores": 0.99})
    assert "storage set the pace" in pacing_line(base | {"fetch_wait_share": 0.8, "commit_wait_share": 0.1})
    commits = pacing_line(base | {"fetch_wait_share": 0.8, "commit_wait_share": 0.5})
    assert "the catalog's commits set the pace" in commits and "fetching 80%, commits 50%" in commits
