"""`dingvault backup`: one full or incremental backup run, with progress and a summary."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from dingvault.cli.pacing import pacing_line
from dingvault.config.cli_common import (
    RichBackupProgress,
    backup_progress,
    clear_errors,
    home_option,
    out,
    passphrase_file_option,
    session,
)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def backup(
    full: bool = typer.Option(
        False,
        "--full",
        help="Re-list everything: finds deletions and gaps (unchanged content is not downloaded again).",
    ),
    incremental: bool = typer.Option(
        False, "--incremental", help="Fetch only what changed since the last run's cursors (the default)."
    ),
    kinds: list[str] = typer.Option(
        None, "--kinds", help="Only these kinds, e.g. --kinds approval,file (see `dingvault coverage`)."
    ),
    dept: list[str] = typer.Option(
        None, "--dept", help="Only this department id and its subtree (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's statistics as JSON."),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """Back up the connected organisation into the vault.

    Families (contacts, approvals, files, ...) run concurrently within DingTalk's rate limits.
    Progress is committed after every stored page, so an interrupted run resumes where it stopped.
    Exit status 1 when some items or families could not be backed up (they are listed).
    """
    if full and incremental:
        raise typer.BadParameter("choose --full or --incremental, not both")
    mode = "full" if full else "incremental"
    with session(home, passphrase_file) as s, clear_errors():
        if as_json:
            stats = asyncio.run(s.backup(mode, kinds=_split(kinds), depts=_split(dept)))
        else:
            with backup_progress() as progress:
                stats = asyncio.run(
                    s.backup(
                        mode,
                        kinds=_split(kinds),
                        depts=_split(dept),
                        progress=RichBackupProgress(progress, s.expected_items()),
                    )
                )
    data = stats.to_dict()
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        print_summary(data)
    raise typer.Exit(0 if stats.status == "ok" else 1)


def print_summary(data: dict) -> None:
    table = Table(title=f"{data['mode']} backup: {data['status']} in {data['seconds']:.1f} s")
    for col in ("kind", "new", "changed", "unchanged", "deleted", "failed"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in data["per_kind"].items():
        table.add_row(kind, *(str(c[k]) for k in ("new", "changed", "unchanged", "deleted", "failed")))
    t = data["totals"]
    table.add_row(
        "[bold]total", *(f"[bold]{t[k]}" for k in ("new", "changed", "unchanged", "deleted", "failed"))
    )
    out.print(table)
    out.print(
        f"API calls: {data['api_calls_total']:,}   downloaded: {data['bytes_downloaded'] / 1e6:,.1f} MB "
        f"({data['attachments_downloaded']} files, {data['attachments_reused']} reused)   "
        f"snapshot: {(data['snapshot_id'] or '-')[:16]}"
    )
    out.print(pacing_line(data["pipeline"]), highlight=False)
    for f in data["family_failures"]:
        out.print(f"[red]family {f['family']} stopped[/]: {f['error']}: {f['message']}", highlight=False)
    for f in data["item_failures"][:20]:
        out.print(
            f"[red]failed[/] {f['kind']}/{f['source_id']}: {f['error']}: {f['message']}", highlight=False
        )
    if len(data["item_failures"]) > 20:
        out.print(f"... and {len(data['item_failures']) - 20} more (see `dingvault status --json`)")
