"""What the installation's CLI commands share: the --home/--passphrase-file options, opening a
session with clear error messages, and a rich progress display for backup runs.

Exit codes: 0 success, 1 the command ran but found a problem (a partial backup, a damaged item),
2 it could not run (not initialised, wrong passphrase, bad config, DingTalk refused the app).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console()
err = Console(stderr=True)

HOME_HELP = "dingvault home folder (default: $DINGVAULT_HOME, else ~/.dingvault)."
PASSPHRASE_FILE_HELP = "Read the vault passphrase from this file (else $DINGVAULT_PASSPHRASE, else a prompt)."


def home_option() -> Any:
    return typer.Option(None, "--home", help=HOME_HELP, envvar=None, show_default=False)


def passphrase_file_option() -> Any:
    return typer.Option(None, "--passphrase-file", help=PASSPHRASE_FILE_HELP, exists=False, dir_okay=False)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from dingvault.backup.engine import BackupError
    from dingvault.backup.scope import ScopeError
    from dingvault.backup.session import SetupError
    from dingvault.catalog import CatalogError
    from dingvault.config.passphrase import PassphraseError
    from dingvault.config.secrets import SecretError
    from dingvault.config.settings import SettingsError
    from dingvault.home import HomeError
    from dingvault.source.errors import DingTalkError
    from dingvault.vault import VaultError
    from dingvault.vault.backends.base import BackendError

    return (
        BackupError,
        ScopeError,
        SetupError,
        CatalogError,
        PassphraseError,
        SecretError,
        SettingsError,
        HomeError,
        DingTalkError,
        VaultError,
        BackendError,
    )


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the product's own exceptions into one red line and exit code 2 (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except _expected_errors() as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        fail("interrupted; committed work is kept and the next run resumes from it", 130)


@contextlib.contextmanager
def session(home: Path | None, passphrase_file: Path | None) -> Iterator[Any]:
    from dingvault.backup.session import open_session
    from dingvault.config.passphrase import read_passphrase
    from dingvault.home import open_home

    with clear_errors():
        h = open_home(home)
        if not h.is_initialised():
            fail(f"{h.path} is not a dingvault home; run `dingvault init` first (or pass --home).")
        passphrase = read_passphrase(passphrase_file)
        s = open_session(h, passphrase)
        try:
            yield s
        finally:
            s.close()


class RichBackupProgress:
    """The engine's Progress protocol on a rich display: items per family with rate and ETA.

    The ETA needs a total: ``expected`` (family -> items the previous runs saw, from the catalog)
    gives one; a first run has none and shows a pulsing bar. A family that lists more than
    expected simply raises its total.
    """

    def __init__(self, progress: Progress, expected: dict[str, int] | None = None) -> None:
        self._progress = progress
        self._expected = expected or {}
        self._tasks: dict[str, TaskID] = {}

    def family_started(self, family: str) -> None:
        if family not in self._tasks:
            total = self._expected.get(family) or None
            self._tasks[family] = self._progress.add_task(family, total=total, rate="", mb=0.0)

    def advance(self, family: str, items: int, nbytes: int) -> None:
        task = self._tasks.get(family)
        if task is None:
            return
        t = self._progress.tasks[task]
        done = t.completed + items
        elapsed = t.elapsed or 0.0
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0.5 else ""
        total = t.total if t.total is None or done <= t.total else done
        self._progress.update(
            task, completed=done, total=total, rate=rate, mb=t.fields.get("mb", 0.0) + nbytes / 1e6
        )

    def family_done(self, family: str, ok: bool) -> None:
        task = self._tasks.get(family)
        if task is not None:
            mark = "[green]done[/]" if ok else "[red]stopped[/]"
            self._progress.update(
                task, description=f"{family} {mark}", total=self._progress.tasks[task].completed
            )


def backup_progress(console: Console | None = None) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<18}"),
        MofNCompleteColumn(),
        TextColumn("items {task.fields[rate]:>8}"),
        BarColumn(bar_width=20),
        TimeRemainingColumn(),
        TextColumn("{task.fields[mb]:>8.1f} MB"),
        TimeElapsedColumn(),
        console=console or err,
        transient=False,
    )


__all__ = [
    "RichBackupProgress",
    "backup_progress",
    "clear_errors",
    "err",
    "fail",
    "home_option",
    "out",
    "passphrase_file_option",
    "session",
]
