"""Local-directory backend: one file per object under a root directory.

Atomicity: every write goes to ``.tmp-<random>`` in the object's own directory, is fsynced, and
is then linked into place. ``os.link`` fails if the target exists, which gives create-only
semantics without a check-then-write race (on a filesystem without hard links,
``renameat2(RENAME_NOREPLACE)`` does the same); ``os.replace`` is used when overwriting. Readers and
``list`` never see temp files, so they never see a partial object. A crash can leave temp files
behind; ``cleanup()`` removes them.

Durability: with ``sync=True`` the file and its directory are fsynced before ``put`` returns.
With ``sync=False`` both fsyncs are deferred to ``sync()``, which fsyncs each pending file once and
each touched directory once: a pack writer that writes fifty packs into ``data/xx/`` directories
then calls ``sync()`` pays for fifty file fsyncs and at most one fsync per directory, instead of
one per object. See ``base`` for the exact guarantee.

Files are created 0600 and directories 0700: objects are ciphertext, but their names and sizes
are still nobody else's business.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import (
    TEMP_PREFIX,
    BackendError,
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    check_key,
    check_range,
)

CHUNK = 1 << 20  # stream copy buffer; large enough for sequential throughput, small for memory


def _describe(exc: OSError, action: str, path: str | os.PathLike[str]) -> BackendError:
    """Turn an OSError into a BackendError whose message says what happened and where."""
    code = exc.errno
    if code == errno.ENOSPC:
        what = "disk full"
    elif code == errno.EDQUOT:
        what = "disk quota exceeded"
    elif code in (errno.EACCES, errno.EPERM):
        what = "permission denied"
    elif code == errno.EROFS:
        what = "read-only filesystem"
    else:
        what = exc.strerror or type(exc).__name__
    err = BackendError(f"{what} while {action} {os.fspath(path)} ({type(exc).__name__}: {exc})")
    err.errno = code  # type: ignore[attr-defined]  # lets callers branch on ENOSPC without parsing text
    return err


# Above this many pending files, sync() issues one syncfs(2) for the vault's filesystem instead
# of one fsync per file and directory: a 2000-object batch becomes one call. Below it, targeted
# fsyncs avoid flushing other programs' dirty data.
SYNCFS_THRESHOLD = 32


def _load_syncfs():  # type: ignore[no-untyped-def]
    """libc's syncfs(2) (Linux), or None where it does not exist."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


_syncfs = _load_syncfs()


def _load_rename_noreplace():  # type: ignore[no-untyped-def]
    """renameat2(..., RENAME_NOREPLACE) (Linux, glibc >= 2.28): the create-only publish for
    filesystems without hard links. None where unavailable."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_noreplace = -100, 1

    def rename_noreplace_fn(src: str, dst: str) -> None:
        if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), dst)

    return rename_noreplace_fn


_rename_noreplace = _load_rename_noreplace()
# link() errors that mean "this filesystem has no hard links", not "you may not".
_NO_LINKS = {
    errno.EPERM,
    errno.EOPNOTSUPP,
    errno.ENOSYS,
    errno.EMLINK,
    getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if os.stat(a).st_size != os.stat(b).st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x = fa.read(CHUNK)
                if x != fb.read(CHUNK):
                    return False
                if not x:
                    return True
    except (FileNotFoundError, IsADirectoryError):
        return False


class LocalBackend:
    """Objects as files under ``root`` (created if missing)."""

    # A write with sync=False is a copy into the page cache: the vault writer stores packs on its
    # own thread rather than keep them queued for an uploader thread (see vault.writer._Uploader).
    stores_inline = True

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()
        try:
            if create:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise BackendError(f"vault directory {self.root} does not exist or is not a directory")
        except OSError as exc:
            raise _describe(exc, "creating vault directory", self.root) from exc
        self._lock = threading.Lock()
        self._pending_files: set[str] = set()
        self._pending_dirs: set[str] = set()
        self._known_dirs: set[str] = {str(self.root)}

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (for tools and tests; the repository should not need it)."""
        return self.root.joinpath(*check_key(key).split("/"))

    def _ensure_dir(self, directory: Path, sync: bool) -> None:
        """Create ``directory`` and missing parents; new entries are made durable (now or at sync())."""
        d = str(directory)
        if d in self._known_dirs:
            return
        missing: list[Path] = []
        p = directory
        while not p.is_dir():
            missing.append(p)
            p = p.parent
        for m in reversed(missing):
            try:
                m.mkdir(mode=0o700)
            except FileExistsError:
                pass  # a concurrent writer made it; fine
            # The new entry lives in the parent directory: that is what must be fsynced.
            self._mark_dir(str(m.parent), sync)
        with self._lock:
            self._known_dirs.add(d)

    def _mark_dir(self, d: str, sync: bool) -> None:
        if sync:
            _fsync_dir(d)
        else:
            with self._lock:
                self._pending_dirs.add(d)

    # -- writes ------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, overwrite: bool = False, sync: bool = True) -> None:
        self._write(key, io.BytesIO(data), len(data), overwrite=overwrite, sync=sync)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        size: int | None = None,
        *,
        overwrite: bool = False,
        sync: bool = True,
    ) -> None:
        self._write(key, stream, size, overwrite=overwrite, sync=sync)

    def _write(self, key: str, stream: BinaryIO, size: int | None, *, overwrite: bool, sync: bool) -> None:
        target = self.path_for(key)
        if not overwrite and size is not None:
            # Early exit only (saves copying a large stream into a key that holds other bytes);
            # the os.link below is the real check.
            try:
                if os.stat(target).st_size != size:
                    raise ObjectExists(f"object {key} already exists in {self.url}")
            except (FileNotFoundError, NotADirectoryError):
                pass
            except OSError as exc:
                raise _describe(exc, "inspecting", target) from exc
        tmp = target.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        stage = "creating directory for"
        fd = -1
        try:
            self._ensure_dir(target.parent, sync)
            stage = "writing"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            written = 0
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                written += len(chunk)
                if size is not None and written > size:
                    raise BackendError(f"stream for {key} is longer than the declared {size} bytes")
            if size is not None and written != size:
                raise BackendError(f"stream for {key} ended after {written} of {size} bytes")
            if sync:
                stage = "syncing"
                os.fsync(fd)
            os.close(fd)
            fd = -1
            stage = "publishing"
            if overwrite:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    self._exists_unless_same(key, tmp, target, sync)
                except OSError as exc:
                    if exc.errno not in _NO_LINKS:
                        raise
                    self._publish_without_links(tmp, target, key, exc)
                else:
                    os.unlink(tmp)
            if sync:
                _fsync_dir(str(target.parent))
            else:
                with self._lock:
                    self._pending_files.add(str(target))
                    self._pending_dirs.add(str(target.parent))
        except OSError as exc:
            raise _describe(exc, stage, target) from exc
        finally:
            if fd >= 0:
                os.close(fd)
            # Whatever happened, no temp file survives a failed (or successful) write.
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # cleanup() will get it; the original error is the one worth reporting

    def _exists_unless_same(self, key: str, tmp: Path, target: Path, sync: bool) -> None:
        """The key is taken: succeed if it holds exactly our bytes (a retried write whose first
        attempt landed; the same rule on every backend), else raise ObjectExists."""
        if not _same_bytes(tmp, target):
            raise ObjectExists(f"object {key} already exists in {self.url}")
        if sync:  # the earlier copy may itself have been written with sync=False
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(str(target.parent))

    def _publish_without_links(self, tmp: Path, target: Path, key: str, link_error: OSError) -> None:
        """Create-only publish on a filesystem without hard links (some FUSE / network mounts)."""
        if _rename_noreplace is None:
            raise BackendError(
                f"the filesystem of {self.root} supports neither hard links nor RENAME_NOREPLACE "
                f"({link_error.strerror}), so create-only writes cannot be atomic there; use another filesystem"
            )
        try:
            _rename_noreplace(str(tmp), str(target))
        except FileExistsError:
            self._exists_unless_same(key, tmp, target, sync=True)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise BackendError(
                    f"the filesystem of {self.root} supports neither hard links nor RENAME_NOREPLACE "
                    f"({exc.strerror}), so create-only writes cannot be atomic there; use another filesystem"
                ) from None
            raise

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise BackendError(f"cannot delete {key}: {path} is a directory, not an object") from None
        except OSError as exc:
            raise _describe(exc, "deleting", path) from exc
        # A delete that is lost in an OS crash only brings garbage back (prune deletes it again),
        # so its directory fsync waits for the next sync() rather than costing one per object.
        with self._lock:
            self._pending_dirs.add(str(path.parent))

    def sync(self) -> None:
        with self._lock:
            files, self._pending_files = self._pending_files, set()
            dirs, self._pending_dirs = self._pending_dirs, set()
        try:
            if _syncfs is not None and len(files) >= SYNCFS_THRESHOLD:
                # One call flushes every dirty file and directory entry of the filesystem; since
                # Linux 5.8 it also reports writeback errors, like fsync does.
                fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                try:
                    _syncfs(fd)
                finally:
                    os.close(fd)
                return
            for f in files:
                try:
                    fd = os.open(f, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # deleted since; nothing to make durable
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for d in dirs:
                try:
                    _fsync_dir(d)
                except FileNotFoundError:
                    continue
        except OSError as exc:
            with self._lock:  # keep the work so a retry of sync() still covers it
                self._pending_files |= files
                self._pending_dirs |= dirs
            raise _describe(exc, "syncing", self.root) from exc

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        check_range(offset, length)
        path = self.path_for(key)
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"object {key} not found in {self.url}") from None
        except OSError as exc:
            raise _describe(exc, "reading", path) from exc

    def open(self, key: str) -> BinaryIO:
        path = self.path_for(key)
        try:
            return open(path, "rb")  # the caller owns and closes the reader
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"object {key} not found in {self.url}") from None
        except OSError as exc:
            raise _describe(exc, "opening", path) from exc

    def stat(self, key: str) -> ObjectInfo:
        path = self.path_for(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"object {key} not found in {self.url}") from None
        except OSError as exc:
            raise _describe(exc, "inspecting", path) from exc
        if not os.path.isfile(path):
            raise ObjectNotFound(f"object {key} not found in {self.url} ({path} is a directory)")
        return ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Start the walk at the deepest directory the prefix names entirely ("data/ab" -> "data/"),
        # so listing one pack directory does not walk the whole vault.
        head, _, _ = prefix.rpartition("/")
        if head:
            try:
                check_key(head)
            except InvalidKey:
                return
        start = self.root.joinpath(*head.split("/")) if head else self.root
        yield from self._walk(start, f"{head}/" if head else "", prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _describe(exc, "listing", directory) from exc
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX):
                continue
            key = rel + name
            try:
                # Symlinks are not followed: a link planted in the vault must not expose other files.
                if entry.is_dir(follow_symlinks=False):
                    if key.startswith(prefix) or prefix.startswith(key + "/"):
                        yield from self._walk(Path(entry.path), key + "/", prefix)
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    st = entry.stat(follow_symlinks=False)
                    yield ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime)
            except FileNotFoundError:
                continue  # removed while we listed; it is simply not part of this listing

    # -- housekeeping ------------------------------------------------------------------------

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Remove temp files of interrupted writes older than ``older_than`` seconds.

        The age threshold protects writes still in flight in other processes sharing the vault.
        """
        cutoff = time.time() - older_than
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                p = os.path.join(dirpath, name)
                try:
                    if os.lstat(p).st_mtime <= cutoff:
                        os.unlink(p)
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _describe(exc, "removing stale temp file", p) from exc
        return removed

    def close(self) -> None:
        self.sync()
