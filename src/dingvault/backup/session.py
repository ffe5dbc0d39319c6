"""One installation opened for work: home + settings + vault + catalog + sealed secrets.

The CLI commands, the demo and the tests all go through here, so "what does `dingvault backup`
do" has exactly one answer::

    recovery_key = init_home(home, passphrase)                   # dingvault init
    with open_session(home, passphrase) as s:
        report = asyncio.run(s.connect(app_key, app_secret, api_base=..., oapi_base=...))
        stats = asyncio.run(s.backup("full", kinds=None, depts=None, progress=None))

The app secret is sealed with a key derived from the vault's master key (``config.secrets``), so
it is only usable by whoever can open the vault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dingvault.backup.engine import BackupEngine, Progress
from dingvault.backup.memory import release_free_memory
from dingvault.backup.scope import Scope, parse_size
from dingvault.backup.stats import RunStats
from dingvault.backup.vault_store import VaultCatalogStore
from dingvault.catalog import Catalog
from dingvault.config.secrets import SecretStore
from dingvault.config.settings import Settings
from dingvault.home import Home, HomeError
from dingvault.vault import Vault, from_url
from dingvault.vault import crypto as vault_crypto

APP_SECRET = "app_secret"
# A purpose string of its own, so the sealing key can never equal any key the vault itself uses.
_SECRETS_CONTEXT = "dingvault 2026-11 sealed installation secrets v1"


class SetupError(Exception):
    """The installation is not ready for this command; the message says which command fixes it."""


def secrets_key(vault: Vault) -> bytes:
    return vault_crypto.derive(vault.material.master, _SECRETS_CONTEXT)


def init_home(
    home: Home,
    passphrase: str,
    *,
    vault_url: str | None = None,
    catalog_url: str | None = None,
    kdf: Any = None,
) -> str | None:
    """Create the home, the vault and the catalog; returns the vault's recovery key (show it once)."""
    if home.is_initialised():
        raise SetupError(f"{home.path} is already a dingvault home (config.toml exists)")
    home.create()
    settings = Settings(
        vault_url=vault_url or home.default_vault_url,
        catalog_url=catalog_url or home.default_catalog_url,
    )
    backend = from_url(settings.vault_url)
    options: dict[str, Any] = {"cache_dir": home.cache_dir}
    if kdf is not None:
        options["kdf"] = kdf
    vault, recovery_key = Vault.init(backend, passphrase, **options)
    vault.close()
    Catalog.open(settings.catalog_url).close()
    # The config is written last: a home with a config.toml is a complete one.
    home.save_settings(settings)
    return recovery_key


def engine_settings(backup: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The engine's options from the config's ``[backup]`` table, then the caller's ``overrides``.

    ``temp_on_disk``: how much room downloads waiting for the writer may take in the home's
    ``tmp/`` (default 512MiB; see `dingvault.backup.spool.DISK_BUDGET`)."""
    out: dict[str, Any] = {}
    temp = parse_size(backup.get("temp_on_disk"), "backup.temp_on_disk")
    if temp is not None:
        out["max_spool_on_disk"] = temp
    return {**out, **(overrides or {})}


@dataclass
class Session:
    home: Home
    settings: Settings
    vault: Vault
    catalog: Catalog

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.home.secrets_dir, secrets_key(self.vault))

    def close(self) -> None:
        self.catalog.close()
        self.vault.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- connection -------------------------------------------------------------------------
    def client_config(self, **overrides: Any) -> Any:
        from dingvault.source.client import ClientConfig

        dt = self.settings.dingtalk
        if not dt.app_key or not self.secrets.has(APP_SECRET):
            raise SetupError(
                "no DingTalk app connected yet: run `dingvault connect --app-key ... --app-secret-file ...`"
            )
        values: dict[str, Any] = {
            "app_key": dt.app_key,
            "app_secret": self.secrets.get(APP_SECRET),
            "api_base": dt.api_base,
            "oapi_base": dt.oapi_base,
        }
        values.update(self.settings.backup.get("client", {}))
        values.update(overrides)
        return ClientConfig(**values)

    async def connect(
        self, app_key: str, app_secret: str, *, api_base: str | None = None, oapi_base: str | None = None
    ) -> dict[str, Any]:
        """Check the credentials, then store them (secret sealed); returns the per-family probe report."""
        from dingvault.source.client import ClientConfig, DingTalkClient

        dt = dataclasses.replace(self.settings.dingtalk, app_key=app_key)
        if api_base:
            dt.api_base = api_base.rstrip("/")
        if oapi_base:
            dt.oapi_base = oapi_base.rstrip("/")
        config = ClientConfig(
            app_key=app_key, app_secret=app_secret, api_base=dt.api_base, oapi_base=dt.oapi_base
        )
        async with DingTalkClient(config) as client:
            report = await probe_families(client)  # raises AuthenticationError on bad credentials
        self.secrets.put(APP_SECRET, app_secret)
        self.settings.dingtalk = dt
        self.home.save_settings(self.settings)
        return report

    # ---- backup -----------------------------------------------------------------------------
    def scope(self, kinds: Iterable[str] | None = None, depts: Iterable[str] | None = None) -> Scope:
        scope = Scope.from_config(self.settings.scope)
        if kinds or depts:
            scope = scope.narrowed(kinds=list(kinds or []) or None, depts=list(depts or []) or None)
        return scope

    def expected_items(self) -> dict[str, int]:
        """family -> items the catalog holds for its kinds: what a run will list again (for ETAs)."""
        from dingvault.source.collectors import COLLECTOR_CLASSES

        counts = self.catalog.counts_per_kind()
        out: dict[str, int] = {}
        for cls in COLLECTOR_CLASSES:
            n = sum(counts[k].live for k in cls.kinds if k in counts)
            if n:
                out[cls.family] = out.get(cls.family, 0) + n
        return out

    async def backup(
        self,
        mode: str = "incremental",
        *,
        kinds: Iterable[str] | None = None,
        depts: Iterable[str] | None = None,
        progress: Progress | None = None,
        client_overrides: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> RunStats:
        from dingvault.source.client import DingTalkClient
        from dingvault.source.collectors import COLLECTOR_CLASSES, CollectorSettings, build_collectors

        scope = self.scope(kinds, depts)
        families = [c.family for c in COLLECTOR_CLASSES if any(scope.includes_kind(k) for k in c.kinds)]
        if scope.needs_tree and "contacts" not in families:
            families.insert(0, "contacts")  # the tree is resolved from this run's contacts
        collector_settings = CollectorSettings(**self.settings.backup.get("collectors", {}))
        store = VaultCatalogStore(self.vault, self.catalog, tmp_dir=self.home.tmp_dir)
        try:
            async with DingTalkClient(self.client_config(**(client_overrides or {}))) as client:
                collectors = build_collectors(client, families=families, settings=collector_settings)
                engine = BackupEngine(
                    store,
                    collectors,
                    scope,
                    tmp_dir=self.home.tmp_dir,
                    progress=progress,
                    api_call_counts=lambda: client.calls,
                    api_error_counts=lambda: {**client.errors, "(retries)": client.retries},
                    **engine_settings(self.settings.backup, engine_options),
                )
                return await engine.run(mode)
        finally:
            store.close()
            # What the run freed, malloc would otherwise keep for the rest of a long-lived process
            # (the service's scheduler runs one backup after another).
            release_free_memory()


def open_session(home: Home, passphrase: str, *, cache_dir: Path | None = None) -> Session:
    try:
        settings = home.load_settings()
    except HomeError as exc:
        raise SetupError(str(exc)) from exc
    vault = Vault.open(from_url(settings.vault_url), passphrase, cache_dir=cache_dir or home.cache_dir)
    try:
        catalog = Catalog.open(settings.catalog_url)
    except BaseException:
        vault.close()
        raise
    return Session(home, settings, vault, catalog)


async def probe_families(client: Any) -> dict[str, Any]:
    """Which families the granted scopes allow: the connector's probe when present.

    Without it, at least the credentials are checked (a token is fetched) and every family is
    reported as "unknown".
    """
    try:
        from dingvault.source.probe import probe  # type: ignore[import-not-found]
    except ImportError:
        from dingvault.source.collectors import FAMILIES

        await client._tokens.get()  # raises AuthenticationError on bad credentials
        return {f: "unknown (the connector's probe is not available)" for f in FAMILIES}
    return dict(await probe(client))
