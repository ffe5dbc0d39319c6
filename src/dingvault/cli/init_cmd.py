"""`dingvault init`: create the home folder, its config, the encrypted vault and the catalog."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.panel import Panel

from dingvault.config.cli_common import clear_errors, fail, home_option, out, passphrase_file_option


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
    vault: str = typer.Option(
        None, "--vault", help="Vault location: a path or an s3:// URL (default <home>/vault)."
    ),
    catalog: str = typer.Option(
        None,
        "--catalog",
        help="Catalog database URL (default sqlite:///<home>/catalog.db; or postgresql+psycopg://...).",
    ),
) -> None:
    """Create a dingvault home: config.toml, an encrypted vault and an empty catalog.

    The vault passphrase comes from --passphrase-file, $DINGVAULT_PASSPHRASE, or a prompt (asked
    twice). A recovery key is shown ONCE: write it down and keep it offline; it opens the vault if
    the passphrase is lost.
    """
    from dingvault.backup.session import init_home
    from dingvault.config.passphrase import read_passphrase
    from dingvault.home import open_home

    with clear_errors():
        h = open_home(home)
        if h.is_initialised():
            fail(f"{h.path} is already a dingvault home; use another --home or remove it first.")
        passphrase = read_passphrase(passphrase_file, confirm=True)
        recovery_key = init_home(h, passphrase, vault_url=vault, catalog_url=catalog)
    out.print(f"[green]Initialised[/] dingvault home at [bold]{h.path}[/]")
    if recovery_key:
        out.print(
            Panel(
                f"[bold]{recovery_key}[/]\n\nThis recovery key opens the vault if the passphrase is lost.\n"
                "It is shown only now: write it down and keep it offline, away from this machine.",
                title="Recovery key",
                border_style="yellow",
            )
        )
    out.print("Next: [bold]dingvault connect --app-key <Client ID> --app-secret-file <file>[/]")
