"""`dingvault demo`: the main job on embedded defaults, against the emulator."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    port: int = typer.Option(0, help="Port for the emulator (0 = pick a free one)."),
) -> None:
    """Start the DingTalk emulator with the demo company and show what it serves."""
    from dingvault.cli.demo_run import run_demo

    raise typer.Exit(run_demo(port=port))
