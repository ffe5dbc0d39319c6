"""`dingvault backup`: one full or incremental backup run, with progress and a summary."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

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
    pipeline = data.get("pipeline")
    if pipeline and pipeline.get("in_flight_limit"):
        out.print(pacing_line(pipeline), highlight=False)
    for f in data["family_failures"]:
        out.print(f"[red]family {f['family']} stopped[/]: {f['error']}: {f['message']}", highlight=False)
    for f in data["item_failures"][:20]:
        out.print(
            f"[red]failed[/] {f['kind']}/{f['source_id']}: {f['error']}: {f['message']}", highlight=False
        )
    if len(data["item_failures"]) > 20:
        out.print(f"... and {len(data['item_failures']) - 20} more (see `dingvault status --json`)")


# Shares of a run (see `RunStats.pipeline`) beyond which one side is said to have set the pace.
STORAGE_IDLE = 0.1  # the storage side waited for records this much of the run
FETCH_WAIT = 0.5  # fetching waited for room this much of the run


def pacing(pipeline: dict) -> str:
    """What set the run's pace, from its "pipeline" statistics.

    The storage side waiting for records: DingTalk's answers (rate limits, network, downloads).
    Fetching waiting for records ahead of it to be stored: storage, and the catalog when most of
    that was waiting for its commits. Neither waiting: both sides kept up with each other, and
    what limited them is what they share, the processor."""
    if pipeline["storage_idle_share"] >= STORAGE_IDLE:
        return "DingTalk's answers set the pace (rate limits, network)"
    if pipeline["fetch_wait_share"] >= FETCH_WAIT:
        if pipeline["commit_wait_share"] >= pipeline["fetch_wait_share"] / 2:
            return "the catalog's commits set the pace (its database's disk or network)"
        return "storage set the pace (the vault's disk, compression and encryption)"
    return "fetching and storing kept up with each other: the processor set the pace"


def pacing_line(pipeline: dict) -> str:
    """One line for the summary: what set the pace, what each side waited, the records in flight."""
    return (
        f"{pacing(pipeline)}; storage waited {pipeline['storage_idle_share']:.0%} of the run, "
        f"fetching {pipeline['fetch_wait_share']:.0%}, commits {pipeline['commit_wait_share']:.0%}; "
        f"records in flight: mean {pipeline['in_flight_mean']:,.0f}, "
        f"peak {pipeline['in_flight_peak']:,} of {pipeline['in_flight_limit']:,}"
    )
