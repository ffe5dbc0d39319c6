"""Local-directory backend: atomicity, crash leftovers, disk-full and permission errors, fsync batching."""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dingvault.vault.backends import BackendError, LocalBackend, ObjectExists
from dingvault.vault.backends import local as local_mod
from dingvault.vault.backends.base import TEMP_PREFIX


def all_files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_objects_are_files_with_private_modes(tmp_path) -> None:
    b = LocalBackend(tmp_path / "v")
    b.put("data/ab/p1", b"cipher")
    assert (tmp_path / "v" / "data" / "ab" / "p1").read_bytes() == b"cipher"
    assert stat.S_IMODE(os.stat(tmp_path / "v" / "data" / "ab" / "p1").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "v" / "data" / "ab").st_mode) == 0o700
    assert all_files(tmp_path / "v") == ["data/ab/p1"]  # no temp file left behind


def test_missing_root_without_create(tmp_path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        LocalBackend(tmp_path / "absent", create=False)


def test_readers_never_see_a_partial_object(tmp_path) -> None:
    b = LocalBackend(tmp_path)
    half_written = threading.Event()
    release = threading.Event()

    class SlowStream(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = [b"a" * 1000, b"b" * 1000]

        def read(self, n: int = -1) -> bytes:
            if len(self.parts) == 1:
                half_written.set()
                assert release.wait(10)
            return self.parts.pop(0) if self.parts else b""

    t = threading.Thread(target=b.put_stream, args=("data/ab/slow", SlowStream(), 2000))
    t.start()
    assert half_written.wait(10)
    # Mid-write: the bytes are on disk in a temp file, but no reader can see an object.
    assert any(f.startswith(TEMP_PREFIX) for f in os.listdir(tmp_path / "data" / "ab"))
    assert not b.exists("data/ab/slow")
    assert list(b.list()) == []
    release.set()
    t.join(10)
    assert b.get("data/ab/slow") == b"a" * 1000 + b"b" * 1000


def test_stale_temp_files_are_ignored_and_cleaned(tmp_path) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/ab/p1", b"x")
    stale = tmp_path / "data" / "ab" / f"{TEMP_PREFIX}123-dead"
    stale.write_bytes(b"partial pack from a crashed writer")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / "data" / "ab" / f"{TEMP_PREFIX}456-inflight"
    fresh.write_bytes(b"a write still in progress")
    assert [i.key for i in b.list()] == ["data/ab/p1"]
    assert b.cleanup() == 1  # only the old one: the fresh one may belong to a live writer
    assert not stale.exists() and fresh.exists()
    assert b.cleanup(older_than=0) == 1
    assert all_files(tmp_path) == ["data/ab/p1"]


def test_symlinks_in_the_vault_are_not_followed(tmp_path) -> None:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwd").write_text("not vault data")
    b = LocalBackend(tmp_path / "v")
    b.put("data/ab/p1", b"x")
    os.symlink(secret, tmp_path / "v" / "data" / "cd")
    os.symlink(secret / "passwd", tmp_path / "v" / "data" / "ab" / "link")
    assert [i.key for i in b.list()] == ["data/ab/p1"]


def _fail_write_after(monkeypatch, n_ok: int, code: int) -> None:
    real_write = os.write
    calls = {"n": 0}

    def write(fd: int, data) -> int:
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    monkeypatch.setattr(local_mod.os, "write", write)


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/ab/before", b"ok")
    _fail_write_after(monkeypatch, 2, errno.ENOSPC)
    big = io.BytesIO(os.urandom(5 * local_mod.CHUNK))
    with pytest.raises(BackendError, match=r"disk full while writing .*data/ab/pack") as info:
        b.put_stream("data/ab/pack", big, 5 * local_mod.CHUNK)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert not b.exists("data/ab/pack")
    assert all_files(tmp_path) == ["data/ab/before"]  # the temp file is gone too
    b.put("data/ab/pack", b"fits now")  # and the key is still free once space returns
    assert b.get("data/ab/pack") == b"fits now"


def test_disk_full_at_fsync(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    b.put("index/i0", b"directory exists now")

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_mod.os, "fsync", fsync)
    with pytest.raises(BackendError, match="disk full while syncing"):
        b.put("index/i1", b"x" * 100)
    monkeypatch.undo()
    assert all_files(tmp_path) == ["index/i0"]


def test_permission_denied_names_the_path(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    real_open = os.open

    def deny(path, flags, mode=0o777, **kw):
        if os.path.basename(os.fspath(path)).startswith(TEMP_PREFIX):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(local_mod.os, "open", deny)
    with pytest.raises(BackendError, match=r"permission denied while writing .*snapshots/s1"):
        b.put("snapshots/s1", b"x")
    monkeypatch.undo()
    assert not b.exists("snapshots/s1")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_real(tmp_path) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/ab/p1", b"x")
    os.chmod(tmp_path / "data" / "ab", 0o500)
    try:
        with pytest.raises(BackendError, match="permission denied"):
            b.put("data/ab/p2", b"y")
    finally:
        os.chmod(tmp_path / "data" / "ab", 0o700)


def test_link_race_reports_exists_and_keeps_the_first(tmp_path, monkeypatch) -> None:
    """Another process creates the key after our early check but before our link: link decides."""
    b = LocalBackend(tmp_path)
    real_link = os.link

    def link(src, dst, **kw):
        with open(dst, "wb") as f:
            f.write(b"first writer")
        return real_link(src, dst, **kw)

    monkeypatch.setattr(local_mod.os, "link", link)
    with pytest.raises(ObjectExists):
        b.put("locks/l1", b"second writer")
    monkeypatch.undo()
    assert b.get("locks/l1") == b"first writer"
    assert all_files(tmp_path) == ["locks/l1"]


def test_filesystem_without_hard_links_uses_rename_noreplace(tmp_path, monkeypatch) -> None:
    if local_mod._rename_noreplace is None:
        pytest.skip("no renameat2 in this libc")
    b = LocalBackend(tmp_path)

    def no_links(src, dst, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(local_mod.os, "link", no_links)
    b.put("data/ab/p1", b"first")
    with pytest.raises(ObjectExists):
        b.put("data/ab/p1", b"second")
    assert b.get("data/ab/p1") == b"first"
    assert all_files(tmp_path) == ["data/ab/p1"]


def test_filesystem_without_any_atomic_create_is_a_clear_error(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    monkeypatch.setattr(
        local_mod.os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EOPNOTSUPP, "nope"))
    )
    monkeypatch.setattr(local_mod, "_rename_noreplace", None)
    with pytest.raises(BackendError, match="neither hard links nor RENAME_NOREPLACE"):
        b.put("data/ab/p1", b"x")
    assert all_files(tmp_path) == []


def test_sync_false_batches_fsyncs(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/00/warm", b"x")  # directories exist: we count steady-state costs
    b.put("data/01/warm", b"x")
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(local_mod.os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])

    b.put("data/00/durable", b"x")
    assert len(calls) == 2  # the file and its directory

    calls.clear()
    for i in range(20):
        b.put(f"data/0{i % 2}/p{i}", b"y" * 10, sync=False)
    assert calls == []  # nothing until sync()
    b.sync()
    assert len(calls) == 20 + 2  # each file once, each of the two directories once
    calls.clear()
    b.sync()
    assert calls == []  # nothing pending any more


def test_large_batches_use_one_syncfs(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(local_mod, "_syncfs", lambda fd: calls.append("syncfs"))
    real_fsync = os.fsync
    monkeypatch.setattr(local_mod.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    b.put("data/00/warm", b"x")  # the directory exists (one file + dir fsync each for these)
    calls.clear()
    for i in range(local_mod.SYNCFS_THRESHOLD + 5):
        b.put(f"data/00/p{i}", b"z", sync=False)
    b.sync()
    assert calls == ["syncfs"]
    calls.clear()
    b.sync()
    assert calls == []


@pytest.mark.skipif(local_mod._syncfs is None, reason="no syncfs(2) on this platform")
def test_real_syncfs_batch(tmp_path) -> None:
    b = LocalBackend(tmp_path)
    for i in range(local_mod.SYNCFS_THRESHOLD + 1):
        b.put(f"index/{i:04d}", b"y" * 10, sync=False)
    b.sync()
    assert len(list(b.list("index/"))) == local_mod.SYNCFS_THRESHOLD + 1


def test_sync_failure_keeps_pending_work(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/00/p", b"x", sync=False)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local_mod.os, "fsync", broken)
    with pytest.raises(BackendError, match="while syncing"):
        b.sync()
    calls: list[int] = []
    monkeypatch.setattr(local_mod.os, "fsync", calls.append)
    b.sync()
    assert len(calls) >= 2  # the retry still covers the file and its directory


def test_new_directories_are_made_durable(tmp_path, monkeypatch) -> None:
    b = LocalBackend(tmp_path)
    synced_dirs: list[str] = []
    monkeypatch.setattr(local_mod, "_fsync_dir", synced_dirs.append)
    b.put("data/ab/p1", b"x")
    # data/ in root, ab/ in data/, then the object's own directory entry.
    assert synced_dirs == [str(tmp_path), str(tmp_path / "data"), str(tmp_path / "data" / "ab")]


def test_directory_key_is_not_an_object(tmp_path) -> None:
    b = LocalBackend(tmp_path)
    b.put("data/ab/p1", b"x")
    assert not b.exists("data/ab")
    with pytest.raises(BackendError):
        b.get("data")
    with pytest.raises(BackendError):
        b.delete("data")


_part = st.sampled_from(["a", "ab", "abc", "b", "data", "d0", "x.y", "z-1"])


@settings(max_examples=60, deadline=None)
@given(
    keys=st.sets(st.lists(_part, min_size=1, max_size=4).map("/".join), max_size=25),
    prefix=st.lists(st.sampled_from(["a", "ab", "b", "data", "/", "d", "x."]), max_size=4).map("".join),
)
def test_list_prefix_matches_plain_string_filtering(keys: set[str], prefix: str) -> None:
    """Listing walks only the directories a prefix can reach; it must still equal filtering
    every key by ``startswith``."""
    # A key cannot be both an object and a directory (data/a and data/a/b): keep the shorter.
    objects = {k for k in keys if not any(o.startswith(k + "/") for o in keys)}
    with tempfile.TemporaryDirectory() as d:
        b = LocalBackend(d)
        for k in objects:
            b.put(k, k.encode(), sync=False)
        assert sorted(i.key for i in b.list(prefix)) == sorted(k for k in objects if k.startswith(prefix))
