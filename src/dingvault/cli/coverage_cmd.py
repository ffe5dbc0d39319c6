"""`dingvault coverage`: what is captured per data family, and what the DingTalk API cannot give."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer

from dingvault.config.cli_common import fail, out


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage)


def _as_dict(entry: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        return dataclasses.asdict(entry)
    if isinstance(entry, dict):
        return dict(entry)
    return {
        k: getattr(entry, k) for k in dir(entry) if not k.startswith("_") and not callable(getattr(entry, k))
    }


def load_coverage() -> dict[str, Any]:
    """The connector's coverage data (``dingvault.source.coverage``), as plain dicts."""
    try:
        from dingvault.source import coverage as cov  # type: ignore[attr-defined]
    except ImportError:
        fail("the connector's coverage data (dingvault.source.coverage) is not available in this build")
    families = getattr(cov, "FAMILIES", None) or getattr(cov, "COVERAGE", None) or []
    if isinstance(families, dict):
        families = [{"family": k, **_as_dict(v)} for k, v in families.items()]
    cannot = getattr(cov, "NOT_CAPTURED", None) or getattr(cov, "CANNOT_CAPTURE", None) or []
    return {
        "families": [_as_dict(f) for f in families],
        "not_captured": [_as_dict(c) if not isinstance(c, str) else {"what": c} for c in cannot],
    }


def coverage(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show what dingvault captures per data family and what no public DingTalk API exposes.

    Notably: ordinary group and person-to-person chat history cannot be backed up through the
    public API; only messages sent to the app's robot (1:1, or @-mentioning it in a group) can.
    """
    data = load_coverage()
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    for f in data["families"]:
        kinds = ", ".join(f.get("kinds") or ())
        out.print(f"\n[bold]{f.get('family')}[/] — {f.get('title', '')}  [dim]({kinds})[/]", highlight=False)
        for line in f.get("captured") or ():
            out.print(f"  [green]✓[/] {line}", highlight=False)
        for line in f.get("not_available") or ():
            out.print(f"  [red]✗[/] {line}", highlight=False)
        if f.get("incremental"):
            out.print(f"  [cyan]incremental:[/] {f['incremental']}", highlight=False)
        for line in f.get("uncertain") or ():
            out.print(f"  [yellow]?[/] {line}", highlight=False)
    if data["not_captured"]:
        out.print("\n[bold red]Not available through any public DingTalk API[/]")
        for c in data["not_captured"]:
            out.print(f"  [red]✗[/] {c.get('what', c)}", highlight=False)
