"""`dingvault coverage`: what is captured per data family, and what the DingTalk API cannot give."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer
from rich.table import Table

from dingvault.config.cli_common import fail, out


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage)


def _as_dict(entry: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        return dataclasses.asdict(entry)
    if isinstance(entry, dict):
        return dict(entry)
    return {k: getattr(entry, k) for k in dir(entry) if not k.startswith("_") and not callable(getattr(entry, k))}


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


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def coverage(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show what dingvault captures per data family and what no public DingTalk API exposes.

    Notably: ordinary group and person-to-person chat history cannot be backed up through the
    public API; only messages sent to the app's robot (1:1, or @-mentioning it in a group) can.
    """
    data = load_coverage()
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    families = data["families"]
    if families:
        columns = [k for k in families[0] if k not in ("notes",)]
        table = Table(title="Captured, per family", show_lines=True)
        for col in columns:
            table.add_column(col.replace("_", " "))
        for f in families:
            table.add_row(*(_text(f.get(c)) for c in columns))
        out.print(table)
    if data["not_captured"]:
        table = Table(title="Not available through the public DingTalk API", show_lines=True)
        columns = list(data["not_captured"][0])
        for col in columns:
            table.add_column(col.replace("_", " "))
        for c in data["not_captured"]:
            table.add_row(*(_text(c.get(k)) for k in columns))
        out.print(table)
