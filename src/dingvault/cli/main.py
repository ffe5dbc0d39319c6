"""The `dingvault` command: a thin typer app; each command group lives in its own module.

Command modules register themselves here so that `main.py` stays a table of contents.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dingvault",
    help="Self-hosted backup, archiving and compliance for DingTalk (钉钉).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here, not at module top, so that `dingvault --help` stays fast and a
    # broken optional group never stops the others from loading.
    from dingvault.cli import demo_cmd

    demo_cmd.register(app)
    from dingvault.cli import vault_cmd

    vault_cmd.register(app)
    from dingvault.cli import init_cmd

    init_cmd.register(app)
    from dingvault.cli import connect_cmd

    connect_cmd.register(app)
    from dingvault.cli import backup_cmd

    backup_cmd.register(app)
    from dingvault.cli import status_cmd

    status_cmd.register(app)
    from dingvault.cli import snapshots_cmd

    snapshots_cmd.register(app)
    from dingvault.cli import coverage_cmd

    coverage_cmd.register(app)
    from dingvault.cli import catalog_cmd

    catalog_cmd.register(app)
    from dingvault.cli import serve_cmd

    serve_cmd.register(app)


_register()

if __name__ == "__main__":
    app()
