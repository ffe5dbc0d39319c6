"""`dingvault connect`: check a DingTalk app's credentials and store them (secret sealed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from dingvault.config.cli_common import err, fail, home_option, out, passphrase_file_option, session


def register(app: typer.Typer) -> None:
    app.command("connect")(connect)


def connect(
    app_key: str = typer.Option(..., "--app-key", help="The internal app's Client ID (AppKey)."),
    app_secret: str = typer.Option(
        None, "--app-secret", help="The Client Secret (prefer --app-secret-file: arguments show in `ps`)."
    ),
    app_secret_file: Path = typer.Option(
        None, "--app-secret-file", help="Read the Client Secret from this file."
    ),
    api_base: str = typer.Option(
        None, "--api-base", help="New API base URL (default https://api.dingtalk.com)."
    ),
    oapi_base: str = typer.Option(
        None, "--oapi-base", help="Legacy API base URL (default https://oapi.dingtalk.com)."
    ),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """Connect dingvault to an organisation's DingTalk internal app.

    Checks the credentials against DingTalk, stores the Client Secret encrypted with a key derived
    from the vault's master key (never in plain text), and reports which data families the app's
    granted permission scopes allow.
    """
    if (app_secret is None) == (app_secret_file is None):
        fail("give exactly one of --app-secret or --app-secret-file")
    if app_secret_file is not None:
        try:
            app_secret = app_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"cannot read {app_secret_file}: {exc.strerror}")
        if not app_secret:
            fail(f"{app_secret_file} is empty")
    else:
        err.print(
            "[yellow]note:[/] a secret on the command line is visible to other local users; prefer --app-secret-file"
        )
    assert app_secret is not None
    with session(home, passphrase_file) as s:
        report = asyncio.run(s.connect(app_key, app_secret, api_base=api_base, oapi_base=oapi_base))
    out.print(
        f"[green]Connected[/] app [bold]{app_key}[/] ({s.settings.dingtalk.api_base}); secret stored sealed."
    )
    table = Table(title="What the granted scopes allow", show_lines=False)
    table.add_column("family")
    table.add_column("status")
    for family, status in report.items():
        text = str(status)
        style = (
            "green" if text == "ok" else ("yellow" if "unknown" in text or "unavailable" in text else "red")
        )
        table.add_row(family, f"[{style}]{text}[/]")
    out.print(table)
