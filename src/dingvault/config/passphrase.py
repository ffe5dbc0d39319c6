"""Where the vault passphrase comes from: ``--passphrase-file``, ``$DINGVAULT_PASSPHRASE``, or a prompt.

The order is deliberate: an explicit file beats the environment, which beats asking, so scripts
and the scheduler never block on a prompt they cannot answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

ENV_PASSPHRASE = "DINGVAULT_PASSPHRASE"


class PassphraseError(Exception):
    pass


def read_passphrase(
    passphrase_file: Path | None = None,
    *,
    confirm: bool = False,
    prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> str:
    """The passphrase, from the first source that has one; a clear error if none does."""
    if passphrase_file is not None:
        try:
            value = passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise PassphraseError(f"cannot read passphrase file {passphrase_file}: {exc}") from exc
        if not value:
            raise PassphraseError(f"passphrase file {passphrase_file} is empty")
        return value
    env = os.environ.get(ENV_PASSPHRASE)
    if env:
        return env
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise PassphraseError(
            f"no passphrase: pass --passphrase-file, set {ENV_PASSPHRASE}, or run in a terminal to be asked"
        )
    if prompt is None:
        import getpass

        prompt = getpass.getpass
    value = prompt("Vault passphrase: ")
    if not value:
        raise PassphraseError("empty passphrase")
    if confirm and prompt("Repeat passphrase: ") != value:
        raise PassphraseError("the two passphrases differ")
    return value
