"""Replication: copy the vault's ciphertext to replicas, once or continuously, and report lag.

What is shipped: every object a replica lacks, except locks, and except packs of levels the
replica may not hold (the level is in the pack's name, ``data/<level>/<xx>/<id>``, so no key is
needed). Meta packs (snapshot trees) go everywhere. Nothing is ever decrypted: the replicator
runs without the vault's key.

Order keeps every replica consistent at every moment, as the primary is (restic's rule):
packs, then index files, then anything else, then catalog descriptors and snapshots, then key
slots and ``config``. A snapshot is only shipped once its packs and index are on the replica.
Each phase ends with ``sync()`` on the replica, so a replica crash cannot keep a snapshot whose
packs it lost.

Listing in the same spirit: one pass first lists the objects that *refer* to others (config,
keys, snapshots, catalog descriptors), and only then the full tree. The primary writes a
snapshot after its packs and index, so everything a listed snapshot needs is in the later
listing; a snapshot that appears only in the later listing waits for the next pass.

Damage never spreads: objects named by the SHA-256 of their bytes (packs, index files,
snapshots, catalog descriptors) are hashed while they stream, and an object whose bytes do not
match its name is not published on the replica (the upload is abandoned before it becomes
visible) and is reported in ``ReplicationResult.corrupt``. Existing replica objects are never
overwritten, except ``config`` and key slots, which are not content-addressed and are
re-copied when they differ. Replicas are not pruned here: an object deleted on the primary stays
on the replica (protection against a primary that is wiped), until a prune of the replica. The
one exception is key slots: a slot removed on the primary (a revoked passphrase) is removed from
the replica too, so the revoked passphrase cannot open the replica either.

A replica denied a level still receives snapshots and index entries that reference blobs of
that level. Verify on such a replica reports those packs as missing *by design*; it must run
with the replica's allowed levels (the repository's verify takes the levels to check), and a
restore from it can only return items of its levels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .backends import Backend, BackendError, ObjectExists, ObjectInfo, ObjectNotFound
from .levels import StorageClass
from .pack import parse_pack_key
from .replicas import Replica, ReplicaRegistry, open_replica_backend

log = logging.getLogger(__name__)

# Write order on the primary; replicas receive objects phase by phase in this order.
PHASE_PACKS, PHASE_INDEX, PHASE_OTHER, PHASE_REFERRERS, PHASE_KEYS, PHASE_CONFIG = range(6)
_MUTABLE = (PHASE_KEYS, PHASE_CONFIG)
KEYS_PREFIX = "keys/"  # not content-addressed: re-copied when they differ
_REFERRER_PREFIXES = ("catalog/", "snapshots/")
_CONTENT_ADDRESSED = ("data/", "index/", "snapshots/", "catalog/")
_NEVER = ("locks/",)
_HEX = set("0123456789abcdef")


def phase_of(key: str) -> int:
    if key.startswith("data/"):
        return PHASE_PACKS
    if key.startswith("index/"):
        return PHASE_INDEX
    if key.startswith(_REFERRER_PREFIXES):
        return PHASE_REFERRERS
    if key.startswith("keys/"):
        return PHASE_KEYS
    if key == "config":
        # Last: a replica only looks like a vault once everything it refers to is there.
        return PHASE_CONFIG
    return PHASE_OTHER


def expected_sha256(key: str) -> str | None:
    """The SHA-256 an object's bytes must have, for content-addressed objects; None otherwise."""
    if not key.startswith(_CONTENT_ADDRESSED):
        return None
    name = key.rsplit("/", 1)[-1]
    if len(name) == 64 and set(name) <= _HEX:
        return name
    return None


def wanted(key: str, levels: Iterable[str] | None) -> bool:
    """Whether a replica allowed ``levels`` (None: all) should hold ``key``."""
    if key.startswith(_NEVER):
        return False
    if key.startswith("data/"):
        parsed = parse_pack_key(key)
        if parsed is None:
            return False  # not a well-formed pack name: never copy junk
        cls = parsed[0]
        return levels is None or cls is StorageClass.META or cls.label in set(levels)
    return True


def _source_backend(source: Any) -> Backend:
    """A Vault (anything with ``.backend``) or a bare Backend."""
    return getattr(source, "backend", source)


def list_primary(source: Backend, levels: Iterable[str] | None) -> list[ObjectInfo]:
    """What a replica allowed ``levels`` should hold, in shipping order (see module docstring)."""
    levels = None if levels is None else tuple(levels)
    referrers: dict[str, ObjectInfo] = {}
    for prefix in ("config", "keys/", *_REFERRER_PREFIXES):
        for info in source.list(prefix):
            if (prefix != "config" or info.key == "config") and wanted(info.key, levels):
                referrers[info.key] = info
    rest = [
        info
        for info in source.list("")
        if phase_of(info.key) not in (PHASE_REFERRERS, *_MUTABLE) and wanted(info.key, levels)
    ]
    objs = rest + list(referrers.values())
    objs.sort(key=lambda i: (phase_of(i.key), i.mtime, i.key))
    return objs


@dataclass
class ReplicationResult:
    replica: str
    copied: int = 0
    copied_bytes: int = 0
    # Primary objects whose bytes do not match their name (not shipped):
    corrupt: list[str] = field(default_factory=list)
    # Replica objects holding other bytes than the primary's under the same name (left alone):
    mismatched: list[str] = field(default_factory=list)
    # Key slots removed on the primary, now removed from the replica too:
    revoked_slots: list[str] = field(default_factory=list)
    error: str | None = None  # set when the pass stopped early (replica unreachable, ...)
    pending: int = 0  # objects still to ship when the pass ended
    pending_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ReplicaStatus:
    name: str
    url: str
    region: str
    levels: tuple[str, ...]
    reachable: bool | None  # None: not contacted yet
    pending_objects: int
    pending_bytes: int
    lag_seconds: float  # seconds since the oldest unshipped object was written; 0.0 when in sync
    oldest_pending: str | None
    last_success: float | None  # epoch seconds of the last pass that completed
    last_error: str | None
    shipped_objects: int  # cumulative, by this process
    shipped_bytes: int
    corrupt_on_primary: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


class _HashingReader(io.RawIOBase):
    """Streams an object while hashing it. When the last byte is read (the listed size reached,
    or EOF) it raises if the bytes do not match the name, before handing that last piece over,
    which makes the replica backend abandon the upload before anything is published."""

    def __init__(self, raw: BinaryIO, key: str, expected: str | None, size: int) -> None:
        self._raw = raw
        self._key = key
        self._expected = expected
        self._size = size
        self._n = 0
        self._checked = False
        self._h = hashlib.sha256() if expected else None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        data = self._raw.read(n)
        self._n += len(data)
        if self._h is not None and not self._checked:
            self._h.update(data)
            if not data or self._n >= self._size:
                self._checked = True
                if self._h.hexdigest() != self._expected:
                    raise CorruptSource(
                        f"{self._key} on the primary does not match its name (sha256 differs)"
                    )
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        memoryview(b)[: len(data)] = data
        return len(data)


class CorruptSource(BackendError):
    """A primary object's bytes do not match its content address; it was not shipped."""


def _copy(source: Backend, dest: Backend, info: ObjectInfo, *, overwrite: bool) -> None:
    with source.open(info.key) as raw:
        reader = _HashingReader(raw, info.key, expected_sha256(info.key), info.size)
        dest.put_stream(info.key, reader, info.size, overwrite=overwrite, sync=False)


def ship(
    source: Backend,
    dest: Backend,
    objs: list[ObjectInfo],
    present: dict[str, int],
    result: ReplicationResult,
    on_shipped: Callable[[ObjectInfo], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Copy ``objs`` (already in shipping order) that ``dest`` lacks; stop at the first replica
    failure (or when ``stop`` is set) so later phases never overtake earlier ones. ``present``
    (key -> size on the replica) is updated as objects land."""
    todo = [i for i in objs if _needs_copy(i, present)]
    current_phase = None
    for n, info in enumerate(todo):
        if stop is not None and stop.is_set():
            dest.sync()  # what was shipped stays shipped; the rest waits for the next start
            rest = todo[n:]
            result.error = "stopped"
            result.pending, result.pending_bytes = len(rest), sum(i.size for i in rest)
            return
        phase = phase_of(info.key)
        if current_phase is not None and phase != current_phase:
            dest.sync()  # everything of the previous phase is durable before the next one starts
        current_phase = phase
        overwrite = phase in _MUTABLE and info.key in present
        try:
            _copy(source, dest, info, overwrite=overwrite)
        except CorruptSource as exc:
            log.error("not replicating %s: %s", info.key, exc)
            result.corrupt.append(info.key)
            continue
        except ObjectExists:
            # The replica holds *other* bytes under this name (identical bytes succeed): a damaged
            # replica copy. Never overwritten from here; verify with the replica names it.
            result.mismatched.append(info.key)
        except BackendError as exc:
            if isinstance(exc, ObjectNotFound) and not _exists(source, info.key):
                continue  # pruned on the primary since we listed it: nothing to ship
            rest = todo[n:]
            result.error = str(exc)
            result.pending = len(rest)
            result.pending_bytes = sum(i.size for i in rest)
            return
        else:
            result.copied += 1
            result.copied_bytes += info.size
        present[info.key] = info.size
        if on_shipped is not None:
            on_shipped(info)
    _revoke_key_slots(dest, objs, present, result)
    dest.sync()


def _revoke_key_slots(
    dest: Backend, objs: list[ObjectInfo], present: dict[str, int], result: ReplicationResult
) -> None:
    """Mirror key-slot removals: a passphrase revoked on the primary must not still open a
    replica. Slots hold no data, so removing them loses nothing; a primary listing without any
    slot is treated as a glitch and never empties the replica's slots."""
    slots = {i.key for i in objs if i.key.startswith(KEYS_PREFIX)}
    if not slots:
        return
    for key in [k for k in present if k.startswith(KEYS_PREFIX) and k not in slots]:
        try:
            dest.delete(key)
        except BackendError as exc:
            result.error = f"could not remove revoked key slot {key} from the replica: {exc}"
            return
        del present[key]
        result.revoked_slots.append(key)


def _exists(backend: Backend, key: str) -> bool:
    try:
        return backend.exists(key)
    except BackendError:
        return True


def _needs_copy(info: ObjectInfo, present: dict[str, int]) -> bool:
    size = present.get(info.key)
    if size is None:
        return True
    # Content-addressed objects are never replaced (a damaged primary must not overwrite a good
    # replica copy); config and key slots are small, mutable and re-copied when they differ.
    return phase_of(info.key) in _MUTABLE and size != info.size


def replicate(
    source: Any,
    replica: Replica,
    *,
    backend: Backend | None = None,
    **open_opts: Any,
) -> ReplicationResult:
    """One pass: copy to ``replica`` what it lacks (see the module docstring for what and in
    which order). ``source`` is a Vault or a Backend; ``backend`` overrides opening the replica's
    URL. Replica failures end the pass with ``result.error`` set (never raised), so a caller can
    retry later; what was shipped before the failure stays shipped."""
    src = _source_backend(source)
    result = ReplicationResult(replica=replica.name)
    dest = backend
    try:
        if dest is None:
            dest = open_replica_backend(replica, **open_opts)
        present = {i.key: i.size for i in dest.list("")}
    except BackendError as exc:
        result.error = str(exc)
        objs = list_primary(src, replica.levels)
        result.pending, result.pending_bytes = len(objs), sum(i.size for i in objs)
        return result
    try:
        ship(src, dest, list_primary(src, replica.levels), present, result)
    except BackendError as exc:  # the final sync() or the primary listing failed
        result.error = str(exc)
    finally:
        if backend is None:
            dest.close()
    return result


def replication_status(
    source: Any, replica: Replica, *, backend: Backend | None = None, **open_opts: Any
) -> ReplicaStatus:
    """Lag of ``replica`` behind the primary, computed from both listings (no replicator needed).
    An unreachable replica is reported with everything counted as pending (an upper bound)."""
    src = _source_backend(source)
    objs = list_primary(src, replica.levels)
    error = None
    present: dict[str, int] = {}
    dest = backend
    try:
        if dest is None:
            dest = open_replica_backend(replica, **open_opts)
        present = {i.key: i.size for i in dest.list("")}
    except BackendError as exc:
        error = str(exc)
    finally:
        if backend is None and dest is not None:
            dest.close()
    pending = [i for i in objs if _needs_copy(i, present)]
    return _status(replica, pending, reachable=error is None, last_error=error)


def _status(
    replica: Replica,
    pending: list[ObjectInfo],
    *,
    reachable: bool | None,
    last_error: str | None,
    last_success: float | None = None,
    shipped: tuple[int, int] = (0, 0),
    corrupt: Iterable[str] = (),
    now: float | None = None,
) -> ReplicaStatus:
    now = time.time() if now is None else now
    corrupt = tuple(corrupt)
    real = [i for i in pending if i.key not in corrupt]  # corrupt objects are reported, not lag
    oldest = min(real, key=lambda i: i.mtime, default=None)
    return ReplicaStatus(
        name=replica.name,
        url=replica.url,
        region=replica.region,
        levels=replica.levels,
        reachable=reachable,
        pending_objects=len(real),
        pending_bytes=sum(i.size for i in real),
        lag_seconds=max(0.0, now - oldest.mtime) if oldest else 0.0,
        oldest_pending=oldest.key if oldest else None,
        last_success=last_success,
        last_error=last_error,
        shipped_objects=shipped[0],
        shipped_bytes=shipped[1],
        corrupt_on_primary=corrupt,
    )


class _ReplicaWorker:
    """One replica's loop. Failures are contained here: they never reach the primary's writers,
    and one slow or dead replica does not hold back the others."""

    def __init__(
        self, owner: Replicator, replica: Replica, open_backend: Callable[[Replica], Backend]
    ) -> None:
        self.owner = owner
        self.replica = replica
        self._open_backend = open_backend
        self.dest: Backend | None = None
        self.present: dict[str, int] | None = None  # replica listing; None until first contact
        self.pending: dict[str, ObjectInfo] = {}  # key -> info; a dict so each shipped object is O(1)
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.shipped = [0, 0]
        self.corrupt: set[str] = set()
        self.failures = 0
        self.pass_started = 0.0  # monotonic start of the current / last pass
        self.clean_pass_started = -1.0  # monotonic start of the last pass that ended with no error
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"replicator-{replica.name}", daemon=True)

    def _loop(self) -> None:
        while not self.owner._stopping.is_set():
            try:
                self.run_pass()
            except Exception as exc:  # a bug must not silently end replication for good
                log.exception("replica %s: unexpected error in a replication pass", self.replica.name)
                with self.lock:
                    self.last_error = f"unexpected error: {type(exc).__name__}: {exc}"
                    self.failures += 1
            delay = self.owner.interval
            if self.failures:
                delay = min(self.owner.max_backoff, self.owner.interval * 2 ** min(self.failures, 10))
            self.wake.wait(delay)
            self.wake.clear()

    def run_pass(self) -> ReplicationResult:
        result = ReplicationResult(replica=self.replica.name)
        src = self.owner.source
        self.pass_started = time.monotonic()
        try:
            objs = list_primary(src, self.replica.levels)
        except BackendError as exc:  # the primary itself is failing: report, do not crash the loop
            result.error = f"listing the primary failed: {exc}"
            with self.lock:
                self.last_error = result.error
                self.failures += 1
            return result
        try:
            if self.dest is None:
                self.dest = self._open_backend(self.replica)
            if self.present is None or self.failures:
                # (Re)learn what the replica holds after first contact or an outage.
                self.present = {i.key: i.size for i in self.dest.list("")}
        except BackendError as exc:
            result.error = str(exc)
            self._after(objs, result)
            return result
        with self.lock:
            self.pending = {i.key: i for i in objs if _needs_copy(i, self.present)}

        def shipped(info: ObjectInfo) -> None:
            with self.lock:
                self.shipped[0] += 1
                self.shipped[1] += info.size
                self.pending.pop(info.key, None)
                self.corrupt.discard(info.key)  # repaired on the primary since: no longer news

        try:
            ship(src, self.dest, objs, self.present, result, on_shipped=shipped, stop=self.owner._stopping)
        except BackendError as exc:  # a sync() failure, or a primary read failure
            result.error = str(exc)
        self._after(objs, result)
        return result

    def _after(self, objs: list[ObjectInfo], result: ReplicationResult) -> None:
        with self.lock:
            self.corrupt.update(result.corrupt)
            present = self.present or {}
            self.pending = {i.key: i for i in objs if _needs_copy(i, present)}
            if result.error == "stopped":
                return  # an interrupted pass says nothing about the replica's health
            if result.error is None:
                self.reachable = True
                self.last_error = None
                self.last_success = time.time()
                self.clean_pass_started = self.pass_started
                self.failures = 0
            else:
                self.reachable = False
                self.last_error = result.error
                self.failures += 1
                log.warning(
                    "replica %s: %s (backlog %d objects)", self.replica.name, result.error, len(self.pending)
                )

    def status(self) -> ReplicaStatus:
        with self.lock:
            return _status(
                self.replica,
                list(self.pending.values()),
                reachable=self.reachable,
                last_error=self.last_error,
                last_success=self.last_success,
                shipped=(self.shipped[0], self.shipped[1]),
                corrupt=sorted(self.corrupt),
            )


class Replicator:
    """Continuous replication to several replicas, litestream-style: each replica has its own
    thread that polls the primary every ``interval`` seconds (or at once on ``notify()``) and
    ships what is new. A replica outage only grows that replica's backlog — visible through
    ``status()`` — and retries back off up to ``max_backoff``; the backlog drains on recovery.

    The writer may call ``notify()`` after it publishes an index or snapshot so new packs leave
    within milliseconds instead of at the next poll. Polling lists the primary each time, which
    costs one directory walk (local) or a few LIST calls (S3) per interval.
    """

    def __init__(
        self,
        source: Any,
        replicas: Iterable[Replica],
        *,
        interval: float = 2.0,
        max_backoff: float = 60.0,
        open_backend: Callable[[Replica], Backend] | None = None,
        backend_opts: dict[str, Any] | None = None,
    ) -> None:
        """``backend_opts`` go to ``from_url`` for every replica (e.g. an S3 ``credentials_file``);
        ``open_backend`` replaces opening by URL altogether (tests)."""
        self.source = _source_backend(source)
        self.interval = interval
        self.max_backoff = max_backoff
        self._stopping = threading.Event()
        opts = dict(backend_opts or {})
        opener = open_backend or (lambda r: open_replica_backend(r, **opts))
        self._workers = {r.name: _ReplicaWorker(self, r, opener) for r in replicas}
        self._started = False

    @classmethod
    def from_registry(cls, source: Any, registry: ReplicaRegistry, **kwargs: Any) -> Replicator:
        """A replicator for every replica in ``registry`` (the service's entry point)."""
        return cls(source, registry.list(), **kwargs)

    def start(self) -> Replicator:
        if not self._started:
            self._started = True
            for w in self._workers.values():
                w.thread.start()
        return self

    def notify(self) -> None:
        """New objects on the primary: ship them now rather than at the next poll."""
        for w in self._workers.values():
            w.wake.set()

    def run_once(self) -> dict[str, ReplicationResult]:
        """One pass for every replica, in the caller's thread (tests, ``replica sync`` command)."""
        return {name: w.run_pass() for name, w in self._workers.items()}

    def status(self) -> dict[str, ReplicaStatus]:
        return {name: w.status() for name, w in self._workers.items()}

    def wait_in_sync(self, timeout: float) -> bool:
        """Block until every replica holds everything the primary held when this was called
        (a clean pass that started after the call) -> True, or ``timeout`` passes -> False."""
        start = time.monotonic()
        deadline = start + timeout
        self.notify()
        while time.monotonic() < deadline:
            done = True
            for w in self._workers.values():
                with w.lock:
                    if w.clean_pass_started < start or w.pending:
                        done = False
            if done:
                return True
            time.sleep(min(0.05, self.interval))
        return False

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self.notify()
        for w in self._workers.values():
            if w.thread.is_alive():
                w.thread.join(timeout)
            if w.dest is not None:
                try:
                    w.dest.close()
                except BackendError:
                    pass

    def __enter__(self) -> Replicator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "CorruptSource",
    "ReplicaStatus",
    "ReplicationResult",
    "Replicator",
    "list_primary",
    "replicate",
    "replication_status",
]
