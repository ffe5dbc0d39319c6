"""`dingvault status`: what is backed up, the last runs, and what went wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dingvault.cli.pacing import pacing_line
from dingvault.config.cli_common import home_option, out, passphrase_file_option, session


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def _iso(value: object) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None  # type: ignore[attr-defined]


def collect_status(s: Any) -> dict[str, Any]:
    cat = s.catalog
    runs = cat.list_runs(limit=10)
    last = runs[0] if runs else None
    return {
        "home": str(s.home.path),
        "vault": s.settings.vault_url,
        "catalog": s.settings.catalog_url,
        "app_key": s.settings.dingtalk.app_key,
        "connected": bool(s.settings.dingtalk.app_key),
        "counts": {
            k: {"live": c.live, "deleted": c.deleted, "versions": c.versions}
            for k, c in sorted(cat.counts_per_kind().items())
        },
        "runs": [
            {
                "id": r.id,
                "kind": r.kind,
                "status": r.status,
                "started": _iso(r.started_at),
                "finished": _iso(r.finished_at),
                "items": (r.stats or {}).get("items", {}),
                "api_calls": sum(((r.stats or {}).get("api_calls") or {}).values()),
                # What set the run's pace (runs recorded before these figures existed have none).
                "pipeline": (r.stats or {}).get("pipeline"),
                "error": r.error,
            }
            for r in runs
        ],
        "last_successful": {
            f"{kind}/{family}": {"run": r.id, "finished": _iso(r.finished_at)}
            for (kind, family), r in sorted(cat.last_successful_runs().items())
        },
        "last_run_errors": [
            {"kind": e.kind, "source_id": e.source_id, "error": e.error_class, "message": e.message}
            for e in (cat.run_errors(last.id, limit=100) if last else [])
        ],
    }


def status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """Show what the catalog holds per kind, the last runs and the last run's errors."""
    with session(home, passphrase_file) as s:
        data = collect_status(s)
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    out.print(
        f"home [bold]{data['home']}[/]  vault {data['vault']}  app {data['app_key'] or '[red]not connected[/]'}"
    )
    counts = Table(title="Items in the catalog")
    for col in ("kind", "live", "deleted at source", "versions"):
        counts.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in data["counts"].items():
        counts.add_row(kind, str(c["live"]), str(c["deleted"]), str(c["versions"]))
    out.print(counts)
    runs = Table(title="Recent runs")
    for col in ("id", "kind", "status", "started", "new", "changed", "deleted", "failed", "API calls"):
        runs.add_column(col)
    for r in data["runs"]:
        i = r["items"]
        style = {"succeeded": "green", "partial": "yellow"}.get(r["status"], "red")
        runs.add_row(
            str(r["id"]),
            r["kind"],
            f"[{style}]{r['status']}[/]",
            r["started"] or "",
            *(str(i.get(k, 0)) for k in ("new", "changed", "deleted", "failed")),
            str(r["api_calls"]),
        )
    out.print(runs)
    pipeline = data["runs"][0]["pipeline"] if data["runs"] else None
    if pipeline and pipeline.get("in_flight_limit"):
        out.print(f"last run: {pacing_line(pipeline)}", highlight=False)
    for e in data["last_run_errors"][:20]:
        out.print(
            f"[red]error[/] {e['kind']}/{e['source_id'] or ''}: {e['error']}: {e['message']}", highlight=False
        )
