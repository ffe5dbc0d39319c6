"""Fixtures for the emulator's contract tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_support import Emu, make_emu


@pytest.fixture
def emu() -> Iterator[Emu]:
    e = make_emu()
    yield e
    e.client.close()
