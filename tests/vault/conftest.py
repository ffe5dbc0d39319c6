"""Shared vault fixtures: a parametrised ``backend`` (memory, local, and s3 on moto when the
backends' ``s3fixture`` is importable) and an initialised ``vault`` on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vault_helpers import make_vault

from dingvault.vault import Vault
from dingvault.vault.backends import Backend, LocalBackend, MemoryBackend

try:  # owned by the backends work; optional so the vault tests run without moto
    from s3fixture import MotoS3, moto_s3  # noqa: F401  (fixture re-export)

    _HAVE_S3 = True
except ImportError:  # pragma: no cover - depends on the checkout
    _HAVE_S3 = False


_PARAMS = ["memory", "local"] + ([pytest.param("s3", marks=pytest.mark.s3)] if _HAVE_S3 else [])


@pytest.fixture(params=_PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        b: Backend = MemoryBackend("vault-test")
    elif request.param == "local":
        b = LocalBackend(tmp_path / "repo")
    else:
        server = request.getfixturevalue("moto_s3")
        b = server.backend(prefix="vault")
    yield b
    b.close()


@pytest.fixture
def mem_backend() -> MemoryBackend:
    return MemoryBackend("vault-mem")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def vault(backend: Backend, cache_dir: Path) -> Iterator[Vault]:
    v, _ = make_vault(backend, cache_dir)
    yield v
    v.close()


@pytest.fixture
def mem_vault(mem_backend: MemoryBackend, cache_dir: Path) -> Iterator[Vault]:
    v, _ = make_vault(mem_backend, cache_dir)
    yield v
    v.close()
