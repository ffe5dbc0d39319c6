"""Failures: a backend that fails (disk full, S3 unreachable) gives a clear error and leaves the
vault consistent; locks keep maintenance away from writers."""

from __future__ import annotations

import errno
import os

import pytest
from vault_helpers import PASSPHRASE

from dingvault.vault import Vault, VaultError, VaultLocked, prune, verify
from dingvault.vault.backends import BackendError, MemoryBackend
from dingvault.vault.locks import RepoLock


class FlakyBackend(MemoryBackend):
    """Fails every write whose key starts with ``fail_prefix`` while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__("flaky")
        self.failing = False
        self.fail_prefix = ""

    def put(self, key: str, data: bytes, *, overwrite: bool = False, sync: bool = True) -> None:
        if self.failing and key.startswith(self.fail_prefix):
            err = BackendError(f"disk full while writing {key}")
            err.errno = errno.ENOSPC  # type: ignore[attr-defined]
            raise err
        super().put(key, data, overwrite=overwrite, sync=sync)


@pytest.fixture(params=[False, True], ids=["uploader-thread", "inline"])
def flaky(cache_dir, request: pytest.FixtureRequest) -> tuple[FlakyBackend, Vault]:
    """Both ways the writer stores packs: an uploader thread (remote backends) or inline (local)."""
    from vault_helpers import make_vault

    b = FlakyBackend()
    b.stores_inline = request.param  # type: ignore[attr-defined]
    v, _ = make_vault(b, cache_dir)
    return b, v


@pytest.mark.parametrize("prefix", ["data/", "index/", "snapshots/"])
def test_failed_write_is_a_clear_error_and_the_vault_stays_consistent(flaky, prefix: str) -> None:
    backend, vault = flaky
    with vault.writer() as w:
        good = w.put_blob(b"committed before the disk filled", "internal")
        sid = w.commit_snapshot([("item/ok", [good])])
    backend.failing, backend.fail_prefix = True, prefix
    w = vault.writer(max_pack_age=None)
    with pytest.raises(VaultError, match="disk full"):
        for i in range(50):
            w.put_blob(os.urandom(20_000) + bytes([i]), "confidential")
        w.commit_snapshot([("item/new", [w.put_blob(b"new", "internal")])])
    if prefix != "snapshots/":
        # A writer whose packs or index could not be stored refuses further work.
        with pytest.raises(VaultError, match="failed earlier"):
            w.put_blob(b"more", "internal")
    w.close(flush=False)
    backend.failing = False
    report = verify(vault, read_data=True)
    assert report.ok, [str(e) for e in report.errors]
    assert vault.snapshot_ids() == [sid]
    assert [r.key for r in vault.records(sid)] == ["item/ok"]
    # And it works again once space is back.
    with vault.writer() as w2:
        sid2 = w2.commit_snapshot([("item/later", [w2.put_blob(b"later", "public")])])
    assert sid2 in vault.snapshot_ids()


@pytest.mark.parametrize("inline", [False, True])
def test_packs_are_stored_inline_only_for_a_backend_that_says_so(cache_dir, inline: bool) -> None:
    """A local backend's packs are stored on the writer's own thread (no pack waits in a queue);
    other backends' on the uploader thread, overlapping the network with packing."""
    import threading

    from vault_helpers import make_vault

    stored_by: list[str] = []

    class Recording(MemoryBackend):
        stores_inline = inline

        def put_stream(self, key, stream, size=None, *, overwrite=False, sync=True):  # type: ignore[no-untyped-def]
            if key.startswith("data/"):
                stored_by.append(threading.current_thread().name)
            super().put_stream(key, stream, size, overwrite=overwrite, sync=sync)

    vault, _ = make_vault(Recording("recording"), cache_dir)
    threads_before = {t.name for t in threading.enumerate()}
    with vault.writer(max_pack_age=None, pack_target=64 * 1024) as w:
        uploader_running = any(t.name == "dingvault-pack-upload" for t in threading.enumerate())
        ids = [w.put_blob(os.urandom(40_000), "internal") for _ in range(10)]
        sid = w.commit_snapshot([("item/x", ids)])
    assert "dingvault-pack-upload" not in threads_before
    assert uploader_running is not inline
    assert len(stored_by) >= 2  # several packs
    expected = threading.current_thread().name if inline else "dingvault-pack-upload"
    assert set(stored_by) == {expected}
    assert verify(vault, read_data=True).ok
    assert [r.key for r in vault.records(sid)] == ["item/x"]


def test_prune_waits_for_no_writer(mem_vault: Vault) -> None:
    w = mem_vault.writer()
    try:
        with pytest.raises(VaultLocked, match="locked"):
            prune(mem_vault)
    finally:
        w.close()
    prune(mem_vault)  # fine once the writer is gone


def test_exclusive_lock_blocks_writers(mem_vault: Vault) -> None:
    with mem_vault.lock(exclusive=True), pytest.raises(VaultLocked):
        mem_vault.writer()
    mem_vault.writer().close()


def test_lock_of_a_dead_process_is_stale(mem_vault: Vault) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    lock = RepoLock(mem_vault.backend, mem_vault.sealer, exclusive=True)
    lock.acquire()
    # Rewrite the lock as if a crashed process (now gone) held it.
    import orjson

    from dingvault.vault import objects

    doc = {
        "host": os.uname().nodename,
        "pid": pid,
        "time": 0.0 + __import__("time").time(),
        "exclusive": True,
    }
    _, data = objects.seal_object(mem_vault.sealer, objects.KIND_LOCK, orjson.dumps(doc))
    assert lock.key is not None
    mem_vault.backend.put(lock.key, data, overwrite=True)
    lock.key = None  # "crashed": never released
    prune(mem_vault)  # would raise VaultLocked if the dead holder's lock were honoured
    assert list(mem_vault.backend.list("locks/")) == []


def test_unreachable_backend_on_open_is_a_clear_error(cache_dir) -> None:
    class Down(MemoryBackend):
        def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            raise BackendError("connection refused by http://127.0.0.1:9 (S3 unreachable)")

    with pytest.raises(BackendError, match="unreachable"):
        Vault.open(Down("down"), PASSPHRASE, cache_dir=cache_dir)


def test_corrupt_cache_file_is_rebuilt(mem_vault: Vault, cache_dir) -> None:
    with mem_vault.writer() as w:
        bid = w.put_blob(b"survives a broken cache", "internal")
    path = mem_vault.index.path
    mem_vault.close()
    with open(path, "wb") as f:
        f.write(b"this is not a database")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    v2 = Vault.open(mem_vault.backend, PASSPHRASE, cache_dir=cache_dir)
    try:
        assert v2.get_blob(bid) == b"survives a broken cache"
        assert v2.index.path == path  # rebuilt in place, not merely bypassed
    finally:
        v2.close()
