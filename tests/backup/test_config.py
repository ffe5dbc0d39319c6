"""Home folder, config TOML, sealed secrets and passphrase sources."""

import os
import stat

import pytest

from dingvault.config.passphrase import PassphraseError, read_passphrase
from dingvault.config.secrets import SecretError, SecretStore
from dingvault.home import HomeError, open_home, resolve_home


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DINGVAULT_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "flag") == (tmp_path / "flag").resolve()
    assert resolve_home(None) == (tmp_path / "env").resolve()
    monkeypatch.delenv("DINGVAULT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert resolve_home(None).name == ".dingvault"


def test_settings_round_trip_and_private_home(tmp_path):
    from dingvault.config.settings import Settings

    home = open_home(tmp_path / "h")
    with pytest.raises(HomeError, match="dingvault init"):
        home.load_settings()
    s = Settings(
        vault_url=home.default_vault_url, catalog_url=home.default_catalog_url, scope={"kinds": ["approval"]}
    )
    s.dingtalk.app_key = "dingabc"
    home.save_settings(s)
    assert stat.S_IMODE(os.stat(home.path).st_mode) == 0o700
    loaded = home.load_settings()
    assert loaded.dingtalk.app_key == "dingabc" and loaded.scope == {"kinds": ["approval"]}
    assert "secret" not in home.config_file.read_text()


def test_sealed_secret_never_plaintext_and_bound_to_key(tmp_path):
    store = SecretStore(tmp_path / "secrets", b"k" * 32)
    store.put("app_secret", "GT-very-secret-值")
    raw = (tmp_path / "secrets" / "app_secret.sealed").read_bytes()
    assert b"GT-very-secret" not in raw
    assert stat.S_IMODE(os.stat(tmp_path / "secrets" / "app_secret.sealed").st_mode) == 0o600
    assert store.get("app_secret") == "GT-very-secret-值"
    with pytest.raises(SecretError, match="another vault"):
        SecretStore(tmp_path / "secrets", b"x" * 32).get("app_secret")
    # a sealed file copied under another secret's name does not open as that secret
    (tmp_path / "secrets" / "other.sealed").write_bytes(raw)
    with pytest.raises(SecretError):
        store.get("other")
    (tmp_path / "secrets" / "app_secret.sealed").write_bytes(b"{not json")
    with pytest.raises(SecretError, match="damaged"):
        store.get("app_secret")
    with pytest.raises(SecretError, match="dingvault connect"):
        store.get("missing")


def test_passphrase_sources(tmp_path, monkeypatch):
    f = tmp_path / "pp"
    f.write_text("from-file\n")
    monkeypatch.setenv("DINGVAULT_PASSPHRASE", "from-env")
    assert read_passphrase(f) == "from-file"
    assert read_passphrase(None) == "from-env"
    monkeypatch.delenv("DINGVAULT_PASSPHRASE")
    with pytest.raises(PassphraseError, match="--passphrase-file"):
        read_passphrase(None, interactive=False)
    answers = iter(["a", "b"])
    with pytest.raises(PassphraseError, match="differ"):
        read_passphrase(None, confirm=True, interactive=True, prompt=lambda _: next(answers))
    (tmp_path / "empty").write_text("")
    with pytest.raises(PassphraseError, match="empty"):
        read_passphrase(tmp_path / "empty")


def test_temp_on_disk_setting_reaches_the_engine_options():
    from dingvault.backup.scope import ScopeError
    from dingvault.backup.session import engine_settings

    assert engine_settings({}) == {}  # the engine's own default (512 MiB) applies
    assert engine_settings({"temp_on_disk": "2GiB"}) == {"max_spool_on_disk": 2 << 30}
    assert engine_settings({"temp_on_disk": 10_000_000}) == {"max_spool_on_disk": 10_000_000}
    # The caller's own options win over the config's.
    assert engine_settings({"temp_on_disk": "2GiB"}, {"max_spool_on_disk": 5}) == {"max_spool_on_disk": 5}
    with pytest.raises(ScopeError, match=r"backup\.temp_on_disk 'lots'"):
        engine_settings({"temp_on_disk": "lots"})
