"""The `dingvault` command: a thin typer app; each command group lives in its own module.

Command modules register themselves here so that `main.py` stays a table of contents.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="dingvault",
    help="Self-hosted backup, archiving and compliance for DingTalk (钉钉).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# One module per command (group), listed in the order `--help` shows them. Each module keeps its
# heavy imports inside its command functions, so `dingvault --help` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "init_cmd",
    "connect_cmd",
    "backup_cmd",
    "status_cmd",
    "snapshots_cmd",
    "coverage_cmd",
    "serve_cmd",
    "vault_cmd",
    "catalog_cmd",
    "demo_cmd",
)


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"dingvault.cli.{name}").register(app)


_register()

if __name__ == "__main__":
    app()
