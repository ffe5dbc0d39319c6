"""`dingvault serve` refuses clearly what it cannot run with (no traceback, exit 2)."""

from __future__ import annotations

from typer.testing import CliRunner

from dingvault.backup.session import init_home
from dingvault.cli.main import app
from dingvault.home import open_home
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

PASS = "serve cli passphrase"


def test_serve_on_a_home_that_is_not_initialised(tmp_path):
    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path / "none")], env={"DINGVAULT_PASSPHRASE": PASS}
    )
    assert result.exit_code == 2
    assert "dingvault init" in result.output


def test_serve_with_a_bad_service_toml_or_listen_address(tmp_path):
    home = open_home(tmp_path / "home")
    init_home(home, PASS, kdf=FAST_KDF_FOR_TESTS)
    (home.path / "service.toml").write_text('full_cron = "sometimes"\n')
    env = {"DINGVAULT_PASSPHRASE": PASS}
    result = CliRunner().invoke(app, ["serve", "--home", str(home.path)], env=env)
    assert result.exit_code == 2 and "full_cron" in result.output
    (home.path / "service.toml").unlink()
    result = CliRunner().invoke(app, ["serve", "--home", str(home.path), "--listen", "nowhere"], env=env)
    assert result.exit_code == 2 and "listen" in result.output


def test_serve_without_a_connected_app(tmp_path):
    home = open_home(tmp_path / "home")
    init_home(home, PASS, kdf=FAST_KDF_FOR_TESTS)
    result = CliRunner().invoke(
        app,
        ["serve", "--home", str(home.path), "--listen", "127.0.0.1:0"],
        env={"DINGVAULT_PASSPHRASE": PASS},
    )
    assert result.exit_code == 2 and "dingvault connect" in result.output


def test_vault_prune_honours_the_services_offboarding_holds(tmp_path):
    from dingvault.service.state import ServiceState

    home = open_home(tmp_path / "home")
    init_home(home, PASS, kdf=FAST_KDF_FOR_TESTS)
    env = {"DINGVAULT_PASSPHRASE": PASS, "DINGVAULT_HOME": str(home.path)}
    assert CliRunner().invoke(app, ["vault", "prune", "--dry-run"], env=env).exit_code == 0
    state = ServiceState.in_home(home.path)
    state.add_hold("offboarding", "user/u1", 4e9, ["ab" * 32], {"userid": "u1"})
    state.close()
    # The hold names a snapshot the vault does not have: prune refuses rather than guess.
    result = CliRunner().invoke(app, ["vault", "prune", "--dry-run"], env=env)
    assert result.exit_code != 0
    assert "ab" * 32 in result.output and "held" in result.output
