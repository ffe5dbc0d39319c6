"""The config file (``<home>/config.toml``): typed settings, read with tomllib, written with tomli-w.

It never holds a secret: the app secret is sealed in ``<home>/secrets/`` (see ``config.secrets``), and
the passphrase is asked for, read from ``DINGVAULT_PASSPHRASE`` or from ``--passphrase-file``.

Example::

    [dingtalk]
    app_key = "dingxxxxxxxx"
    api_base = "https://api.dingtalk.com"
    oapi_base = "https://oapi.dingtalk.com"

    [vault]
    url = "file:///home/it/.dingvault/vault"

    [catalog]
    url = "sqlite:////home/it/.dingvault/catalog.db"

    [scope]                       # empty = the whole organisation
    departments = [{ id = 12, subtree = true }, { id = 40, subtree = false }]
    users = ["manager01"]
    kinds = []                    # e.g. ["approval", "file"]; empty = every kind
    spaces = []                   # drive space ids; empty = every space
    exclude_extensions = [".mp4", ".iso"]
    max_file_size = "5GB"         # files above it are listed but not downloaded
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_API_BASE = "https://api.dingtalk.com"
DEFAULT_OAPI_BASE = "https://oapi.dingtalk.com"


class SettingsError(Exception):
    """The config file is unreadable or has a wrong value; the message names the key."""


@dataclass
class DingTalkSettings:
    app_key: str | None = None
    api_base: str = DEFAULT_API_BASE
    oapi_base: str = DEFAULT_OAPI_BASE


@dataclass
class Settings:
    vault_url: str
    catalog_url: str
    dingtalk: DingTalkSettings = field(default_factory=DingTalkSettings)
    scope: dict[str, Any] = field(default_factory=dict)
    backup: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        dt = {k: v for k, v in vars(self.dingtalk).items() if v is not None}
        return {
            "dingtalk": dt,
            "vault": {"url": self.vault_url},
            "catalog": {"url": self.catalog_url},
            "scope": self.scope,
            "backup": self.backup,
        }


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"[{name}] must be a table in the config file")
    return value


def load_settings(path: Path) -> Settings:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from exc
    vault = _table(doc, "vault")
    catalog = _table(doc, "catalog")
    if "url" not in vault or "url" not in catalog:
        raise SettingsError(f"{path}: [vault] url and [catalog] url are required")
    dt = _table(doc, "dingtalk")
    return Settings(
        vault_url=str(vault["url"]),
        catalog_url=str(catalog["url"]),
        dingtalk=DingTalkSettings(
            app_key=dt.get("app_key"),
            api_base=str(dt.get("api_base", DEFAULT_API_BASE)),
            oapi_base=str(dt.get("oapi_base", DEFAULT_OAPI_BASE)),
        ),
        scope=_table(doc, "scope"),
        backup=_table(doc, "backup"),
    )


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written config."""
    data = tomli_w.dumps(settings.to_toml())
    tmp = path.with_suffix(".toml.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
