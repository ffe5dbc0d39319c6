"""The `dingvault vault` CLI: a thin layer, exit statuses that scripts can rely on."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dingvault.cli.main import app
from dingvault.vault import Vault
from dingvault.vault.backends import LocalBackend

runner = CliRunner()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DINGVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DINGVAULT_PASSPHRASE", "cli passphrase 澳門")
    path = tmp_path / "repo"
    result = runner.invoke(app, ["vault", "--repo", str(path), "--cache-dir", str(tmp_path / "c"), "init"])
    assert result.exit_code == 0, result.output
    assert "Recovery key" in result.output
    return path


def vault_cmd(repo: Path, *args: str, **kw: object):  # type: ignore[no-untyped-def]
    return runner.invoke(
        app, ["vault", "--repo", str(repo), "--cache-dir", str(repo.parent / "c"), *args], **kw
    )


def add_data(repo: Path) -> None:
    v = Vault.open(LocalBackend(repo), "cli passphrase 澳門", cache_dir=repo.parent / "c")
    with v.writer() as w:
        ids = [w.put_blob(f"record {i} 記錄".encode() * 20, "internal") for i in range(100)]
        w.commit_snapshot([(f"item/{i}", [b]) for i, b in enumerate(ids)])
    v.put_catalog_export("catalog", io.BytesIO(b"catalog dump"))
    v.close()


def test_info_verify_and_exit_status_on_damage(repo: Path) -> None:
    add_data(repo)
    info = vault_cmd(repo, "info")
    assert info.exit_code == 0 and "snapshots" in info.output
    listed = vault_cmd(repo, "snapshots")
    assert listed.exit_code == 0 and "100" in listed.output  # one snapshot of 100 records
    ok = vault_cmd(repo, "verify", "--read-data")
    assert ok.exit_code == 0, ok.output
    assert "vault OK" in ok.output
    pack = next(p for p in (repo / "data" / "internal").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x10
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    assert vault_cmd(repo, "verify").exit_code == 0  # structure cannot see inside packs
    bad = vault_cmd(repo, "verify", "--read-data")
    assert bad.exit_code == 1
    assert f"[primary] data/internal/{pack.name[:2]}/{pack.name}" in bad.output
    sub = vault_cmd(repo, "verify", "--read-data", "--subset", "150%")
    assert sub.exit_code == 2 and "subset" in sub.output


def test_wrong_passphrase_and_missing_vault(repo: Path, tmp_path: Path) -> None:
    wrong = vault_cmd(repo, "info", env={"DINGVAULT_PASSPHRASE": "nope"})
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output
    none = runner.invoke(app, ["vault", "--repo", str(tmp_path / "nothing"), "info"])
    assert none.exit_code == 2 and "no vault" in none.output


def test_passphrase_file_and_key_commands(repo: Path, tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    new.write_text("second passphrase\n")
    added = vault_cmd(
        repo, "key", "add", "--label", "auditor", "--levels", "public", "--new-passphrase-file", str(new)
    )
    assert added.exit_code == 0, added.output
    assert "levels: public" in added.output
    listed = vault_cmd(repo, "--passphrase-file", str(new), "key", "list")
    assert listed.exit_code == 0 and "auditor" in listed.output
    third = tmp_path / "third.txt"
    third.write_text("third passphrase")
    assert vault_cmd(repo, "key", "passwd", "--new-passphrase-file", str(third)).exit_code == 0
    assert vault_cmd(repo, "info").exit_code == 2  # the old passphrase no longer opens it
    assert vault_cmd(repo, "--passphrase-file", str(third), "info").exit_code == 0


def test_prune_and_repair_commands(repo: Path) -> None:
    add_data(repo)
    dry = vault_cmd(repo, "prune", "--dry-run")
    assert dry.exit_code == 0 and "would remove 0 blob" in dry.output
    index = next((repo / "index").iterdir())
    index.unlink()
    broken = vault_cmd(repo, "verify")
    assert broken.exit_code == 1
    fixed = vault_cmd(repo, "repair")
    assert fixed.exit_code == 0, fixed.output
    assert "rebuilt from their headers" in fixed.output
    assert vault_cmd(repo, "verify", "--read-data").exit_code == 0


def test_replica_registry_commands(repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "replica"
    added = vault_cmd(
        repo, "replica", "add", "offsite", str(target), "--region", "hk", "--levels", "public,internal"
    )
    assert added.exit_code == 0, added.output
    listed = vault_cmd(repo, "replica", "list")
    assert "offsite" in listed.output and "hk" in listed.output
    add_data(repo)
    shipped = vault_cmd(repo, "replicate")
    assert shipped.exit_code == 0, shipped.output
    assert not (target / "data" / "confidential").exists()
    verified = vault_cmd(repo, "verify", "--read-data", "--replica", "offsite")
    assert verified.exit_code == 0, verified.output
    assert vault_cmd(repo, "replica", "remove", "offsite").exit_code == 0


def test_default_vault_comes_from_the_home_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dingvault.config.settings import Settings
    from dingvault.home import open_home

    home = tmp_path / "home"
    monkeypatch.setenv("DINGVAULT_HOME", str(home))
    monkeypatch.setenv("DINGVAULT_PASSPHRASE", "cli passphrase 澳門")
    elsewhere = tmp_path / "configured-vault"
    open_home(home).save_settings(Settings(vault_url=elsewhere.as_uri(), catalog_url="sqlite:///x.db"))
    assert runner.invoke(app, ["vault", "init"]).exit_code == 0
    assert (elsewhere / "config").exists()
    assert not (home / "vault").exists()


def test_verify_checks_registered_replicas_by_default(repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "replica"
    assert vault_cmd(repo, "replica", "add", "copy", str(target)).exit_code == 0
    add_data(repo)
    assert vault_cmd(repo, "replicate").exit_code == 0
    assert vault_cmd(repo, "verify", "--read-data").exit_code == 0
    pack = next(p for p in (target / "data" / "internal").rglob("*") if p.is_file())
    pack.chmod(0o600)
    data = bytearray(pack.read_bytes())
    data[-20] ^= 1
    pack.write_bytes(bytes(data))
    bad = vault_cmd(repo, "verify", "--read-data")
    assert bad.exit_code == 1 and f"[copy] data/internal/{pack.name[:2]}/{pack.name}" in bad.output
    assert vault_cmd(repo, "verify", "--read-data", "--no-replicas").exit_code == 0


def test_unreachable_replica_is_reported_not_fatal(mem_vault) -> None:
    from dingvault.vault import ReplicaTarget, verify
    from dingvault.vault.backends import BackendError, MemoryBackend

    class Down(MemoryBackend):
        def list(self, prefix: str = ""):  # type: ignore[no-untyped-def, override]
            raise BackendError("S3 unreachable at http://127.0.0.1:9")

    report = verify(mem_vault, replicas=[ReplicaTarget("offsite", Down("down"))])
    assert not report.ok
    assert [p.where for p in report.errors] == ["offsite"]
    assert "unreachable" in report.errors[0].message


def test_prune_refuses_when_the_holds_cannot_be_read(repo: Path, tmp_path: Path) -> None:
    """Holds live in the catalog: a catalog that cannot be opened stops prune with a message, not a
    traceback, and nothing is removed."""
    from dingvault.config.settings import Settings
    from dingvault.home import open_home

    add_data(repo)
    packs_before = sorted(p.name for p in (repo / "data").rglob("*") if p.is_file())
    assert packs_before
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/test"
    open_home(tmp_path / "home").save_settings(Settings(vault_url=repo.as_uri(), catalog_url=unreachable))
    result = vault_cmd(repo, "prune")
    assert result.exit_code == 2
    assert "cannot read the holds" in result.output and "nothing was pruned" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (repo / "data").rglob("*") if p.is_file()) == packs_before
