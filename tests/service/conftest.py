"""Service test fixtures: the backends' moto S3 server (imported once, here) and an emulator +
installation with a first full backup, shared by a module's tests where they do not mutate it."""

from __future__ import annotations

import sys
from pathlib import Path

_VAULT_TESTS = str(Path(__file__).resolve().parent.parent / "vault")
if _VAULT_TESTS not in sys.path:
    sys.path.insert(0, _VAULT_TESTS)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from s3fixture import moto_s3  # noqa: E402, F401  (the fixture, re-exported for this directory)

from backup.emulator_env import Installation, install, start_emulator  # noqa: E402


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """One emulated organisation and one installation with a first full backup, for every service
    test: the tests run one service at a time on it, and each checks its own changes against
    the emulator's truth (changes accumulate; nothing here depends on a pristine company)."""
    emu = start_emulator()
    try:
        inst = install(emu, tmp_path_factory.mktemp("service"))
        inst.backup("full")
        yield inst
    finally:
        emu.stop()
