"""Repository locks: shared for writers and readers that must not see data vanish, exclusive for
maintenance (prune, repair, index rewrite).

A lock is a sealed object ``locks/<random hex>`` holding host, pid, time and mode. Acquire: write
our lock, then list the others; on a conflict, delete ours and raise. (Two processes racing both
see each other and both back off; a retry resolves it.) A lock is stale when its holder is a dead
process on this host, or when it has not been refreshed for ``STALE_AFTER`` seconds; stale locks
are ignored and removed by exclusive acquirers.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass

import orjson

from . import crypto, objects
from .backends.base import Backend, BackendError, ObjectNotFound
from .errors import IntegrityError, VaultLocked

LOCKS_PREFIX = "locks/"
STALE_AFTER = 30 * 60.0
REFRESH_EVERY = 5 * 60.0


@dataclass(frozen=True)
class LockInfo:
    key: str
    host: str
    pid: int
    time: float
    exclusive: bool

    def stale(self, now: float) -> bool:
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return True
        return now - self.time > STALE_AFTER


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RepoLock:
    def __init__(self, backend: Backend, sealer: crypto.Sealer, *, exclusive: bool) -> None:
        self._backend = backend
        self._sealer = sealer
        self.exclusive = exclusive
        self.key: str | None = None
        self._written = 0.0

    def _write(self) -> str:
        doc = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "exclusive": self.exclusive,
        }
        _, data = objects.seal_object(self._sealer, objects.KIND_LOCK, orjson.dumps(doc))
        key = LOCKS_PREFIX + secrets.token_hex(16)
        self._backend.put(key, data)
        self._written = doc["time"]
        return key

    def others(self) -> list[LockInfo]:
        found = []
        for info in self._backend.list(LOCKS_PREFIX):
            if info.key == self.key:
                continue
            try:
                raw = objects.open_object(
                    self._sealer, objects.KIND_LOCK, self._backend.get(info.key), what=f"lock {info.key}"
                )
                doc = orjson.loads(raw)
                found.append(
                    LockInfo(
                        info.key, doc["host"], int(doc["pid"]), float(doc["time"]), bool(doc["exclusive"])
                    )
                )
            except ObjectNotFound:
                continue  # released while we listed
            except (IntegrityError, ValueError, KeyError):
                # An unreadable lock still blocks: guessing it is stale could let prune run
                # under a live writer. Its age (from the listing) decides staleness instead.
                found.append(LockInfo(info.key, "?", -1, info.mtime or time.time(), True))
        return found

    def acquire(self) -> RepoLock:
        self.key = self._write()
        now = time.time()
        conflicts = []
        for other in self.others():
            if other.stale(now):
                if self.exclusive:
                    self._backend.delete(other.key)
                continue
            if self.exclusive or other.exclusive:
                conflicts.append(other)
        if conflicts:
            self.release()
            c = conflicts[0]
            mode = "exclusive" if c.exclusive else "shared"
            raise VaultLocked(
                f"the vault is locked ({mode} lock {c.key} held by pid {c.pid} on {c.host}, "
                f"{int(now - c.time)} s ago); wait for it to finish, or remove the lock if that process is gone"
            )
        return self

    def refresh(self) -> None:
        """Rewrite the lock with a new time when it is older than REFRESH_EVERY (cheap otherwise)."""
        if self.key is None or time.time() - self._written < REFRESH_EVERY:
            return
        old = self.key
        self.key = self._write()
        try:
            self._backend.delete(old)
        except BackendError:
            pass

    def release(self) -> None:
        if self.key is not None:
            key, self.key = self.key, None
            try:
                self._backend.delete(key)
            except BackendError:
                pass  # a leftover lock goes stale; never mask the caller's own outcome

    def __enter__(self) -> RepoLock:
        return self.acquire() if self.key is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale(backend: Backend, sealer: crypto.Sealer) -> int:
    probe = RepoLock(backend, sealer, exclusive=False)
    now = time.time()
    n = 0
    for other in probe.others():
        if other.stale(now):
            backend.delete(other.key)
            n += 1
    return n
