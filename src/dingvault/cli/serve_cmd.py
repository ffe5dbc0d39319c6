"""`dingvault serve`: the always-on service (events, schedules, replication, alerts, /metrics)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from dingvault.config.cli_common import err, fail, home_option, passphrase_file_option, session


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    listen: str = typer.Option(
        None, "--listen", help="host:port of /healthz and /metrics (default 127.0.0.1:8870)."
    ),
    config_file: Path = typer.Option(
        None, "--config", help="Service settings (default: <home>/service.toml; see docs/operations.md)."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    home: Path = home_option(),
    passphrase_file: Path = passphrase_file_option(),
) -> None:
    """Run the service until SIGTERM/Ctrl-C: capture events within seconds, run the schedules,
    ship to the replicas, send alerts. Meant to run under systemd (deploy/dingvault.service)."""
    from dingvault.service.app import ServiceApp
    from dingvault.service.config import ServiceConfigError, load_service_config

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with session(home, passphrase_file) as s:
        try:
            config = load_service_config(config_file or s.home.path / "service.toml")
            if listen:
                config.listen = listen
                config.listen_address()
        except ServiceConfigError as exc:
            fail(str(exc))
        app = ServiceApp(s, config)

        def ready(a: ServiceApp) -> None:
            port = a.http.port if a.http else 0
            err.print(f"dingvault serve: running; health on {config.listen_address()[0]}:{port}/healthz")

        try:
            asyncio.run(app.run(ready=ready))
        except OSError as exc:
            fail(f"cannot serve: {exc}")
