"""`dingvault catalog rebuild`: recreate the catalog from the vault alone."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dingvault.config.cli_common import clear_errors, fail, home_option, out, passphrase_file_option

catalog_app = typer.Typer(
    help="The catalog (metadata index): rebuild it from the vault.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.command("rebuild")
def rebuild(
    export_id: str = typer.Option(
        None, "--export", help="A catalog export id (default: the newest in the vault)."
    ),
    to: str = typer.Option(None, "--to", help="Target database URL (default: the configured catalog)."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Move an existing SQLite catalog aside (renamed, not deleted) and rebuild in its place.",
    ),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """Recreate the catalog from the newest catalog export stored in the vault.

    The target must be empty (a new SQLite file or an empty PostgreSQL database); with --replace an
    existing SQLite catalog is renamed to <name>.replaced-<time> first.
    """
    from dingvault.backup.catalog_restore import RebuildError, rebuild_from_vault
    from dingvault.config.passphrase import read_passphrase
    from dingvault.home import open_home
    from dingvault.vault import Vault, from_url

    with clear_errors():
        h = open_home(home)
        settings = h.load_settings()
        passphrase = read_passphrase(passphrase_file)
        vault = Vault.open(from_url(settings.vault_url), passphrase, cache_dir=h.cache_dir)
        try:
            result = rebuild_from_vault(
                vault, to or settings.catalog_url, export_id=export_id, replace=replace
            )
        except RebuildError as exc:
            fail(str(exc))
        finally:
            vault.close()
    if result["moved_aside"]:
        out.print(f"previous catalog moved to {result['moved_aside']}")
    table = Table(title=f"Catalog rebuilt from export {result['export_id'][:16]} ({result['time']})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in result["rows"].items():
        table.add_row(name, f"{n:,}")
    out.print(table)
