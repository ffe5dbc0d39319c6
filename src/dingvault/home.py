"""The dingvault home folder: where one installation keeps its config, vault, catalog and secrets.

Layout (``<home>`` = ``--home``, else ``$DINGVAULT_HOME``, else ``~/.dingvault``)::

    <home>/config.toml            settings (no secrets): connection, vault/catalog URLs, scope
    <home>/vault/                 the default local vault (any backend URL may replace it)
    <home>/catalog.db             the default SQLite catalog
    <home>/secrets/app_secret.sealed   the DingTalk app secret, AES-256-GCM sealed (see config.secrets)
    <home>/tmp/                   spill files for downloads in flight (same filesystem as the vault)
    <home>/cache/vault/           the vault's local index cache (rebuilt from the vault when lost)

The home is created with mode 0700 because it holds sealed secrets and the catalog (metadata that is
itself personal data under PDPA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dingvault.config.settings import Settings, load_settings, save_settings

ENV_HOME = "DINGVAULT_HOME"


class HomeError(Exception):
    """The home folder is missing, not initialised, or unusable; the message says how to fix it."""


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The home path from an explicit value, ``$DINGVAULT_HOME`` or ``~/.dingvault``, in that order."""
    if home:
        return Path(home).expanduser().resolve()
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".dingvault").resolve()


@dataclass(frozen=True)
class Home:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def secrets_dir(self) -> Path:
        return self.path / "secrets"

    @property
    def tmp_dir(self) -> Path:
        return self.path / "tmp"

    @property
    def cache_dir(self) -> Path:
        """The vault's local index cache (a rebuildable copy of the vault's index files)."""
        return self.path / "cache" / "vault"

    @property
    def default_vault_url(self) -> str:
        return (self.path / "vault").as_uri()

    @property
    def default_catalog_url(self) -> str:
        return f"sqlite:///{self.path / 'catalog.db'}"

    def is_initialised(self) -> bool:
        return self.config_file.exists()

    def create(self) -> None:
        """Make the folders (mode 0700); idempotent."""
        for d in (self.path, self.secrets_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)

    def load_settings(self) -> Settings:
        if not self.is_initialised():
            raise HomeError(
                f"{self.path} is not a dingvault home (no config.toml). "
                "Run `dingvault init` first, or pass --home / set DINGVAULT_HOME."
            )
        return load_settings(self.config_file)

    def save_settings(self, settings: Settings) -> None:
        self.create()
        save_settings(self.config_file, settings)


def open_home(home: str | os.PathLike[str] | None = None) -> Home:
    return Home(resolve_home(home))
