"""`dingvault snapshots`: the point-in-time snapshots in the vault, newest first."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dingvault.config.cli_common import home_option, out, passphrase_file_option, session


def register(app: typer.Typer) -> None:
    app.command("snapshots")(snapshots)


def snapshots(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    limit: int = typer.Option(50, "--limit", help="How many to show."),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """List snapshots: every backup run leaves one, complete and independent of the others.

    Read from the vault itself (the source of truth), with the catalog's per-kind counts when the
    catalog knows the snapshot.
    """
    with session(home, passphrase_file) as s:
        rows = []
        for info in reversed(s.vault.snapshots()[-limit:] if limit > 0 else s.vault.snapshots()):
            known = s.catalog.get_snapshot(info.snapshot_id)
            rows.append(
                {
                    "id": info.snapshot_id,
                    "time": info.time,
                    "tags": list(info.tags),
                    "items": info.records,
                    "run_id": (info.meta or {}).get("run_id"),
                    "counts": known.counts if known else None,
                }
            )
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table(title="Snapshots (newest first)")
    for col in ("id", "time", "run", "tags", "items"):
        table.add_column(col, justify="right" if col == "items" else "left")
    for r in rows:
        table.add_row(r["id"][:16], r["time"], str(r["run_id"] or ""), ",".join(r["tags"]), f"{r['items']:,}")
    out.print(table)
