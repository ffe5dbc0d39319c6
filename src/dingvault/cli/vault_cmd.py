"""`dingvault vault ...`: a thin CLI over ``dingvault.vault``.

Vault location: ``--repo PATH_OR_URL`` (default ``$DINGVAULT_HOME/vault``). Passphrase: from
``--passphrase-file``, else ``$DINGVAULT_PASSPHRASE``, else a prompt. Exit status: 0 when all is
well, 1 when verify/repair found damage, 2 on any other error (message on stderr).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

ENV_PASSPHRASE = "DINGVAULT_PASSPHRASE"

vault_app = typer.Typer(
    help="The encrypted vault: init, verify, repair, prune, keys, replicas.", no_args_is_help=True
)
key_app = typer.Typer(help="Key slots: passphrases and restricted keys.", no_args_is_help=True)
vault_app.add_typer(key_app, name="key")

# soft_wrap: long object names stay on one line, so scripts can grep the output.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app, name="vault")


@dataclass
class _Opts:
    repo: str | None
    passphrase_file: Path | None
    cache_dir: Path | None


@vault_app.callback()
def _main(
    ctx: typer.Context,
    repo: str = typer.Option(None, "--repo", help="Vault path or URL (default $DINGVAULT_HOME/vault)."),
    passphrase_file: Path = typer.Option(
        None, "--passphrase-file", help="Read the passphrase from this file."
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Local index cache (default $DINGVAULT_HOME/cache/vault)."
    ),
) -> None:
    ctx.obj = _Opts(repo, passphrase_file, cache_dir)


def _home() -> Path:
    from dingvault.home import resolve_home

    return resolve_home()


def _repo_url(opts: _Opts) -> str:
    """--repo, else the vault URL of an initialised home's config.toml, else <home>/vault."""
    if opts.repo:
        return opts.repo
    from dingvault.home import open_home

    home = open_home()
    if home.is_initialised():
        try:
            return home.load_settings().vault_url
        except Exception as exc:  # a broken config must not hide which vault is meant
            _fail(f"cannot read {home.config_file}: {exc}; pass --repo")
    return str(home.path / "vault")


def _passphrase(opts: _Opts, *, confirm: bool = False, prompt: str = "Vault passphrase") -> str:
    if opts.passphrase_file is not None:
        try:
            text = opts.passphrase_file.read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot read the passphrase file {opts.passphrase_file}: {exc.strerror}")
        return text.rstrip("\r\n")
    env = os.environ.get(ENV_PASSPHRASE)
    if env:
        return env
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    from dingvault.vault import VaultError
    from dingvault.vault.backends import BackendError

    try:
        yield
    except (VaultError, BackendError) as exc:
        _fail(str(exc))


def _backend(opts: _Opts) -> Any:
    from dingvault.vault.backends import from_url

    return from_url(_repo_url(opts))


@contextmanager
def _open(ctx: typer.Context) -> Iterator[Any]:
    from dingvault.vault import Vault

    opts: _Opts = ctx.obj
    with _errors():
        backend = _backend(opts)
        vault = Vault.open(backend, _passphrase(opts), cache_dir=opts.cache_dir)
        try:
            yield vault
        finally:
            vault.close()


class _RateColumn(TransferSpeedColumn):
    """Bytes per second for read-data phases (their totals are bytes), items per second otherwise."""

    def render(self, task: Any) -> Any:
        if task.description.startswith("read-data"):
            return super().render(task)
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.0f}/s" if speed else "?/s", style="progress.data.speed")


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one rich bar per phase (with rate and ETA)."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        _RateColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total or 1)
            bar.update(tasks[phase], completed=done, total=total or 1)

        yield update


# ---------------------------------------------------------------------------- commands


@vault_app.command()
def init(ctx: typer.Context) -> None:
    """Create a vault; prints the recovery key once."""
    from dingvault.vault import Vault

    opts: _Opts = ctx.obj
    with _errors():
        backend = _backend(opts)
        passphrase = _passphrase(opts, confirm=True, prompt="New vault passphrase")
        vault, recovery = Vault.init(backend, passphrase, cache_dir=opts.cache_dir)
        vault.close()
    out.print(f"Created vault {vault.vault_id} at {backend.url}")
    out.print(
        "\n[bold]Recovery key[/bold] (shown once; store it offline - it opens the vault if the passphrase is lost):\n"
    )
    out.print(f"    [bold yellow]{recovery}[/bold yellow]\n", highlight=False)


@vault_app.command()
def info(ctx: typer.Context) -> None:
    """Vault id, levels, sizes, snapshot count."""
    with _open(ctx) as vault:
        data = vault.info()
    by_level = data.pop("by_level", {})
    table = Table(show_header=False)
    for k, v in data.items():
        table.add_row(k, ", ".join(v) if isinstance(v, list) else str(v))
    out.print(table)
    if by_level:
        levels = Table("class", "packs", "bytes", "blobs")
        for name, st in sorted(by_level.items()):
            levels.add_row(name, str(st["packs"]), str(st["pack_bytes"]), str(st["blobs"]))
        out.print(levels)


@vault_app.command()
def snapshots(ctx: typer.Context) -> None:
    """Snapshots, oldest first."""
    with _open(ctx) as vault:
        found = vault.snapshots()
    table = Table("time", "records", "tags")
    table.add_column("id", overflow="fold")
    for s in found:
        table.add_row(s.time, str(s.records), ",".join(s.tags), s.snapshot_id)
    out.print(table)


def _parse_subset(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        _fail(f"--subset takes a percentage such as 10% (got {text!r})")
    if not 0 < value <= 1:
        _fail(f"--subset must be between 0% and 100% (got {text!r})")
    return value


def _replica_targets(names: list[str]) -> list[Any]:
    from dingvault.vault import ReplicaTarget
    from dingvault.vault.replicas import ReplicaRegistry, open_replica_backend

    registry = ReplicaRegistry.in_home(_home())
    chosen = registry.list() if names == ["all"] else [registry.get(n) for n in names]
    return [ReplicaTarget(r.name, open_replica_backend(r), tuple(r.levels)) for r in chosen]


@vault_app.command()
def verify(
    ctx: typer.Context,
    read_data: bool = typer.Option(False, "--read-data", help="Download, decrypt and hash every blob."),
    subset: str = typer.Option(
        None, "--subset", help="With --read-data: check only this share of packs, e.g. 10%."
    ),
    replica: list[str] = typer.Option(
        [], "--replica", help="Verify only these replicas (repeat; default: every registered replica)."
    ),
    no_replicas: bool = typer.Option(False, "--no-replicas", help="Check the primary only."),
) -> None:
    """Check the vault and its replicas; exit status 1 when anything is damaged or unreachable."""
    from dingvault.vault import verify as run_verify

    fraction = _parse_subset(subset)
    with _open(ctx) as vault, _errors():
        targets = [] if no_replicas else _replica_targets(replica or ["all"])
        with _progress() as progress:
            report = run_verify(
                vault, read_data=read_data, subset=fraction, replicas=targets, progress=progress
            )
    for w in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(str(w))}", highlight=False)
    for e in report.errors:
        err.print(f"[red]damaged:[/red] {escape(str(e))}", highlight=False)
    summary = escape(", ".join(f"{k}={v}" for k, v in sorted(report.counters.items())))
    if report.ok:
        out.print(f"[green]vault OK[/green] ({summary})")
    else:
        out.print(f"[red]{len(report.errors)} problem(s) found[/red] ({summary})")
        raise typer.Exit(1)


@vault_app.command()
def repair(
    ctx: typer.Context,
    from_replica: str = typer.Option(
        None,
        "--from",
        help="Replica name or backend URL to repair from (default: every registered replica, in order).",
    ),
    read_data: bool = typer.Option(
        True, "--read-data/--no-read-data", help="Read every pack to find damage."
    ),
) -> None:
    """Replace damaged or missing packs from a replica; rebuild lost indexes from pack headers."""
    from dingvault.vault import repair as run_repair
    from dingvault.vault.backends import from_url

    with _open(ctx) as vault, _errors():
        if not from_replica:
            source: Any = [t.backend for t in _replica_targets(["all"])]
        elif "/" in from_replica or ":" in from_replica:
            source = from_url(from_replica)
        else:
            source = _replica_targets([from_replica])[0].backend
        with _progress() as progress:
            report = run_repair(vault, source, read_data=read_data, progress=progress)
    for a in report.actions:
        out.print(f"repaired: {escape(a)}", highlight=False)
    for u in report.unrepaired:
        err.print(f"[red]not repaired:[/red] {escape(u)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    out.print("[green]vault OK after repair[/green]")


@vault_app.command()
def prune(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed."),
    max_unused: float = typer.Option(
        0.0, "--max-unused", help="Keep packs with at most this unused fraction (0-1)."
    ),
) -> None:
    """Remove data no snapshot, catalog export or hold needs (rewrites partly-used packs)."""
    from dingvault.vault import prune as run_prune

    holds = _holds()
    with _open(ctx) as vault, _errors(), _progress() as progress:
        report = run_prune(vault, holds, dry_run=dry_run, max_unused=max_unused, progress=progress)
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"{verb} {report.blobs_removed} blob(s): {report.packs_deleted} pack(s) deleted, "
        f"{report.packs_rewritten} rewritten, {report.unindexed_deleted} leftover(s); "
        f"{report.bytes_before} -> {report.bytes_after} bytes"
    )


def _holds() -> Any:
    """Holds come from governance when it is installed, and from the service (offboarding holds)."""
    from dingvault.catalog.errors import CatalogError
    from dingvault.service.state import service_holds_in_home

    try:
        service = service_holds_in_home(_home())
    except CatalogError as exc:
        # Without the holds prune could remove held data: refuse, and say why.
        _fail(f"cannot read the holds from the catalog, so nothing was pruned: {exc}")
    providers = [p for p in (_governance_holds(), service) if p is not None]
    return providers or None


def _governance_holds() -> Any:
    try:
        from dingvault.governance import holds as gov_holds  # type: ignore[attr-defined]
    except ImportError:
        return None
    factory = getattr(gov_holds, "vault_hold_provider", None)
    return factory() if callable(factory) else None


@vault_app.command()
def replicate(
    ctx: typer.Context,
    name: list[str] = typer.Argument(None, help="Replica names (default: every registered replica)."),
) -> None:
    """Ship what each replica lacks (ciphertext only; no passphrase needed)."""
    from dingvault.vault.replicas import ReplicaRegistry
    from dingvault.vault.replication import replicate as run_replicate

    opts: _Opts = ctx.obj
    failed = False
    with _errors():
        backend = _backend(opts)
        registry = ReplicaRegistry.in_home(_home())
        replicas = [registry.get(n) for n in name] if name else registry.list()
        if not replicas:
            _fail("no replicas registered; add one with `dingvault vault replica add NAME URL`")
        for rep in replicas:
            result = run_replicate(backend, rep)
            status = "[green]ok[/green]" if result.ok else f"[red]failed: {result.error}[/red]"
            out.print(
                f"{rep.name}: copied {result.copied} object(s), {result.copied_bytes} bytes; "
                f"{result.pending} pending; {status}",
                highlight=False,
            )
            for c in result.corrupt:
                err.print(f"[red]damaged on primary (not shipped):[/red] {escape(c)}", highlight=False)
            failed |= not result.ok or bool(result.corrupt)
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- keys


def _levels_option(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [x.strip() for x in text.split(",") if x.strip()]


@key_app.command("add")
def key_add(
    ctx: typer.Context,
    label: str = typer.Option("", "--label", help="A note shown by `key list`."),
    levels: str = typer.Option(
        None, "--levels", help="Restrict the new key to these levels, e.g. public,internal."
    ),
    new_passphrase_file: Path = typer.Option(
        None, "--new-passphrase-file", help="Read the new passphrase from a file."
    ),
) -> None:
    """Add a key slot (another passphrase, optionally restricted to some levels)."""
    with _open(ctx) as vault, _errors():
        new = _new_passphrase(new_passphrase_file)
        slot = vault.add_key(new, label=label, levels=_levels_option(levels))
    out.print(f"added key slot {slot.slot_id} (levels: {', '.join(slot.levels)})")


def _new_passphrase(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            _fail(f"cannot read {path}: {exc.strerror}")
    return typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True)


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    """Key slots (the one in use is marked)."""
    with _open(ctx) as vault:
        slots = vault.list_keys()
        current = vault.slot.slot_id if vault.slot else None
    table = Table("", "kind", "label", "levels", "created")
    table.add_column("id", no_wrap=True, min_width=32)
    for s in slots:
        table.add_row(
            "*" if s.slot_id == current else "", s.kind, s.label, ",".join(s.levels), s.created, s.slot_id
        )
    out.print(table)


@key_app.command("remove")
def key_remove(
    ctx: typer.Context, slot_id: str = typer.Argument(..., help="Slot id (or a unique prefix).")
) -> None:
    """Remove a key slot (never the one in use, never the last one holding every level)."""
    with _open(ctx) as vault, _errors():
        vault.remove_key(slot_id)
    out.print(f"removed key slot {slot_id}")


@key_app.command("passwd")
def key_passwd(
    ctx: typer.Context,
    new_passphrase_file: Path = typer.Option(
        None, "--new-passphrase-file", help="Read the new passphrase from a file."
    ),
) -> None:
    """Change the passphrase of the slot in use (no data is rewritten)."""
    with _open(ctx) as vault, _errors():
        slot = vault.change_passphrase(_new_passphrase(new_passphrase_file))
    out.print(f"passphrase changed (new key slot {slot.slot_id})")


# ---------------------------------------------------------------------------- replicas


def register_replica_commands(parent: typer.Typer) -> None:
    """`vault replica add|list|remove`: the registry lives in ``<home>/replicas.json`` (replicas module)."""
    replica_app = typer.Typer(
        help="Replica registry: where copies of the vault are shipped.", no_args_is_help=True
    )
    parent.add_typer(replica_app, name="replica")

    def registry() -> Any:
        from dingvault.vault.replicas import ReplicaRegistry

        return ReplicaRegistry.in_home(_home())

    @contextmanager
    def replica_errors() -> Iterator[None]:
        from dingvault.vault.replicas import ReplicaError

        with _errors():
            try:
                yield
            except ReplicaError as exc:
                _fail(str(exc))

    @replica_app.command("add")
    def replica_add(
        name: str = typer.Argument(...),
        url: str = typer.Argument(
            ..., help="Backend URL, e.g. s3://bucket/prefix?endpoint_url=...&region=..."
        ),
        region: str = typer.Option(
            "", "--region", help="Where the replica lives (residency reports), e.g. mo, hk."
        ),
        levels: str = typer.Option("public,internal,confidential", "--levels", help="Levels it may hold."),
    ) -> None:
        from dingvault.vault.replicas import Replica

        with replica_errors():
            rep = Replica(name=name, url=url, region=region, levels=tuple(_levels_option(levels) or ()))
            registry().add(rep)
        out.print(f"added replica {name} ({', '.join(rep.levels)})")

    @replica_app.command("list")
    def replica_list() -> None:
        with replica_errors():
            reps = registry().list()
        table = Table("name", "url", "region", "levels")
        for r in reps:
            table.add_row(r.name, r.url, r.region, ",".join(r.levels))
        out.print(table)

    @replica_app.command("remove")
    def replica_remove(name: str = typer.Argument(...)) -> None:
        with replica_errors():
            registry().remove(name)
        out.print(f"removed replica {name}")


register_replica_commands(vault_app)
