"""`dingvault demo`: the main job on embedded defaults, against the emulator."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    port: int = typer.Option(0, help="Port for the emulator (0 = pick a free one)."),
    home: Path = typer.Option(
        None, "--home", help="Keep the demo's home here (default: a temporary home, removed at the end)."
    ),
    passphrase_file: Path = typer.Option(
        None,
        "--passphrase-file",
        help="Vault passphrase for --home (else $DINGVAULT_PASSPHRASE, else a prompt).",
    ),
    limits: str = typer.Option(
        "realistic", help="Emulated rate limits: realistic (20 calls/s per API) or off."
    ),
    mutations: int = typer.Option(50, help="Random changes made at the source between the two backups."),
) -> None:
    """Run the real job against an emulated DingTalk, end to end.

    init, connect, full backup, changes at the source, incremental backup, vault verify, and a
    summary against the emulator's ground truth.
    """
    from dingvault.cli.demo_run import run_demo
    from dingvault.config.cli_common import clear_errors

    passphrase = None
    with clear_errors():
        if home is not None:
            from dingvault.config.passphrase import read_passphrase

            passphrase = read_passphrase(passphrase_file, confirm=not (home / "config.toml").exists())
        code = run_demo(port=port, home=home, passphrase=passphrase, limits=limits, mutations=mutations)
    raise typer.Exit(code)
