"""Writing to a vault: blobs into segments into packs, then index, then snapshot.

The caller's thread does the CPU work (hashing, compression, encryption); for a remote backend a
small uploader thread stores finished packs, so network latency overlaps with packing the next one
(a local backend stores them on the caller's thread: see ``_Uploader``).
(Measured: moving the packing itself to a second thread made small-record ingest ~40% *slower*
on CPython, because per-blob work holds the GIL; only I/O is worth a thread.)

Write order (what makes a crash harmless): packs are stored (``sync=False``), the uploader is
drained, ``backend.sync()``, then the index file naming them is stored, then (``commit_snapshot``)
the snapshot. A crash leaves at worst packs that no index names; they are invisible until
``repair`` indexes them or ``prune`` deletes them.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import blake3

from . import objects
from .backends.base import BackendError
from .errors import VaultError
from .index import INDEX_PREFIX, PackRecord, encode_index
from .levels import StorageClass
from .pack import BLOB_DATA, BLOB_TREE, PackBuilder, SegmentCodec, pack_object_key
from .snapshot import ManifestRecord, SnapshotInfo, TreeBuilder
from .streams import PartsReader

if TYPE_CHECKING:
    from .repository import Vault

SEGMENT_TARGET = 256 * 1024
PACK_TARGET = 16 * 1024 * 1024
# An index file is written (and open packs closed) after this many new blobs or bytes, which
# bounds both the writer's memory and the work a crash can lose.
INDEX_EVERY_BLOBS = 50_000
INDEX_EVERY_BYTES = 1024 * 1024 * 1024
MAX_PACK_AGE = 5.0
REF_CHECK_BATCH = 2000
# Finished packs waiting for the uploader: one, so at most three packs (~16 MiB each, kept as their
# segments and streamed to the backend, never joined into one buffer) exist at
# once (being built, queued, being stored). Packing a 16 MiB pack takes longer than storing it
# locally, so a deeper queue only held more memory (three finished packs at the large company's
# peak with two).
UPLOADS_IN_FLIGHT = 1


class _Uploader:
    """Stores finished packs on a background thread (bounded: at most UPLOADS_IN_FLIGHT queued).

    A backend whose writes are only copies into the local page cache (``stores_inline``, the local
    backend: packs go with ``sync=False``, fsynced later in one ``sync()``) has its packs stored
    on the caller's thread instead: there is no latency to overlap, and each pack waiting for or
    inside the uploader is 16 MiB more held. Measured on the large company (``bench/backup.py``,
    limits off, 120 s): peak RSS 265 MB inline against 278-285 MB with the thread, the same
    records stored within run-to-run noise.
    """

    def __init__(self, vault: Vault) -> None:
        self._backend = vault.backend
        self._queue: queue.Queue[tuple[str, list[bytes], int] | None] = queue.Queue(maxsize=UPLOADS_IN_FLIGHT)
        self.error: BaseException | None = None
        self.inline = bool(getattr(self._backend, "stores_inline", False))
        self._thread: threading.Thread | None = None
        if not self.inline:
            self._thread = threading.Thread(target=self._run, name="dingvault-pack-upload", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    key, parts, size = item
                    self._backend.put_stream(key, PartsReader(parts), size, sync=False)
            except BaseException as exc:  # handed to the writer's thread at the next drain
                self.error = exc
            finally:
                self._queue.task_done()

    def submit(self, key: str, parts: list[bytes], size: int) -> None:
        self.raise_error()
        if self.inline:
            self._backend.put_stream(key, PartsReader(parts), size, sync=False)
        else:
            self._queue.put((key, parts, size))

    def drain(self) -> None:
        """Wait until every submitted pack is stored (or raise the first failure)."""
        self._queue.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()


class VaultWriter:
    """Adds blobs to a vault. Use one writer per ingest stream, as a context manager.

    Thread-safe (calls are serialised). Holds a shared repository lock while open, so prune
    cannot run underneath it. Options: ``max_pack_age`` (seconds; a background timer closes the
    open packs this long after their first blob, so near-real-time capture is durable within
    that bound without waiting for a full pack; ``None`` disables), ``pack_target``,
    ``segment_target``.
    """

    def __init__(
        self,
        vault: Vault,
        *,
        max_pack_age: float | None = MAX_PACK_AGE,
        pack_target: int = PACK_TARGET,
        segment_target: int = SEGMENT_TARGET,
    ) -> None:
        self._vault = vault
        self._pack_target = pack_target
        self._segment_target = segment_target
        self._large = segment_target // 2
        self._lock = threading.RLock()
        self._codec = SegmentCodec()
        # Per class: blobs of the open segment, its size, the open pack and its entries.
        self._seg: dict[StorageClass, list[tuple[bytes, int, bytes]]] = {}
        self._seg_size: dict[StorageClass, int] = {}
        self._builders: dict[StorageClass, PackBuilder] = {}
        self._entries: dict[StorageClass, list] = {}
        self._unindexed: list[PackRecord] = []
        # Ids accepted since the last index write: dedup within the session and read-your-writes.
        # Cleared once an index names them (the index cache answers from then on).
        self._session: set[bytes] = set()
        self._since_index_bytes = 0
        self._dirty_since: float | None = None
        self._classes: dict[Any, tuple[StorageClass, bytes]] = {}
        self._closed = False
        self._error: BaseException | None = None
        self.stats = {"blobs_new": 0, "blobs_dedup": 0, "bytes_in": 0, "packs": 0, "bytes_stored": 0}
        self._repo_lock = vault.lock(exclusive=False).acquire()
        # Dedup trusts the index cache, so it must not predate a prune run elsewhere: refresh it
        # now that the lock guarantees no prune runs until this writer closes.
        try:
            vault.refresh_index()
        except BaseException:
            self._repo_lock.release()
            raise
        self._uploader = _Uploader(vault)
        self._stop_timer = threading.Event()
        self._max_pack_age = max_pack_age
        # The timer also refreshes the shared lock, so a writer left open for hours is never
        # taken for a dead one by a prune on another machine.
        self._timer = threading.Thread(target=self._timer_loop, name="dingvault-pack-timer", daemon=True)
        self._timer.start()

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> VaultWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(flush=exc_type is None)

    def _class(self, level: Any) -> tuple[StorageClass, bytes]:
        found = self._classes.get(level)
        if found is None:
            cls = StorageClass.parse(level)
            self._vault.class_key(cls)  # LevelNotAvailable, with a clear message, before any work
            found = self._classes[level] = (cls, self._vault.id_keys[cls])
        return found

    def put_blob(self, data: bytes, level: str | StorageClass, *, blob_type: int = BLOB_DATA) -> bytes:
        """Store ``data`` at ``level``; returns its id. Durable after the next ``flush()`` /
        ``commit_snapshot()`` (or within ``max_pack_age`` seconds)."""
        with self._lock:
            if self._error is not None or self._closed:
                self._check()
            cls, id_key = self._class(level)
            blob_id = blake3.blake3(data, key=id_key).digest()
            if blob_id in self._session:
                self.stats["blobs_dedup"] += 1
                return blob_id
            self._session.add(blob_id)
            n = len(data)
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
            try:
                if n >= self._large:
                    # A large blob gets a segment of its own: no copying into the shared buffer.
                    self._write_segment(cls, [(blob_id, blob_type, bytes(data))])
                else:
                    seg = self._seg.get(cls)
                    if seg is None:
                        seg = self._seg[cls] = []
                        self._seg_size[cls] = 0
                    seg.append((blob_id, blob_type, bytes(data)))
                    size = self._seg_size[cls] + n
                    self._seg_size[cls] = size
                    if size >= self._segment_target:
                        del self._seg[cls]
                        self._write_segment(cls, seg)
                self._since_index_bytes += n
                if len(self._session) >= INDEX_EVERY_BLOBS or self._since_index_bytes >= INDEX_EVERY_BYTES:
                    self._checkpoint()
            except BaseException as exc:
                self._fail(exc)
            self.stats["bytes_in"] += n
            return blob_id

    def put_stream(
        self, stream: BinaryIO, level: str | StorageClass, *, size: int | None = None
    ) -> list[bytes]:
        """Chunk ``stream`` (content-defined) and store each chunk; returns the chunk ids in order.
        An empty stream gives an empty list. ``size``, when the caller knows it, spares the
        chunker from reading ahead to find out whether the stream is small."""
        from .chunker import Chunker

        chunker = Chunker(self._vault.chunker_params)
        return [self.put_blob(chunk, level) for chunk in chunker.chunks(stream, size=size)]

    def flush(self) -> None:
        """Close every open segment and pack, store them and write the index; returns when all
        blobs put so far are durable and indexed."""
        with self._lock:
            self._check()
            try:
                self._checkpoint()
            except BaseException as exc:
                self._fail(exc)
            self._repo_lock.refresh()

    def holds(self, blob_id: bytes) -> bool:
        """Whether this writer has accepted ``blob_id`` but may not have indexed it yet."""
        with self._lock:
            return blob_id in self._session

    def commit_snapshot(
        self,
        records: Iterable[ManifestRecord | tuple],
        *,
        tags: Iterable[str] = (),
        meta: dict[str, Any] | None = None,
        parent: str | None = None,
        time_: str | None = None,
    ) -> str:
        """Write the manifest tree, make everything durable, then write the snapshot object.

        Every blob a record names must already be in the vault (or put by this writer): a
        snapshot never references data that is not there. Returns the snapshot id.
        """
        with self._lock:
            self._check()
            tree = TreeBuilder(lambda d: self.put_blob(d, StorageClass.META, blob_type=BLOB_TREE))
            pending: list[bytes] = []
            for rec in records:
                tree.add(rec)
                for b in rec[1]:
                    if b not in self._session:
                        if len(b) != 32:
                            raise VaultError(f"record {rec[0]!r}: blob id {b!r} is not 32 bytes")
                        pending.append(b)
                if len(pending) >= REF_CHECK_BATCH:
                    self._check_refs(pending)
                    pending = []
            self._check_refs(pending)
            root = tree.finish()
            self.flush()
            info = SnapshotInfo(
                snapshot_id="",
                time=time_ or datetime.now(UTC).isoformat(timespec="microseconds"),
                host=os.uname().nodename,
                tags=tuple(tags),
                meta=dict(meta or {}),
                tree=root,
                records=tree.count,
                parent=parent,
            )
            try:
                sid = self._vault.write_snapshot_object(info.to_json())
            except BackendError as exc:
                # Packs and index are durable; only the root is missing. Nothing references
                # the new data, so the vault is as it was before this commit (plus garbage).
                raise VaultError(f"snapshot not committed: {exc}") from exc
            return sid

    def close(self, *, flush: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if flush and self._error is None:
                    self.flush()
            finally:
                self._closed = True
                self._stop_timer.set()
                self._uploader.stop()
                self._repo_lock.release()
                self._vault._forget_writer(self)

    # ------------------------------------------------------------------ internals

    def _check(self) -> None:
        if self._error is not None:
            raise VaultError(
                f"the vault writer failed earlier and stored nothing since: {self._error}"
            ) from self._error
        if self._closed:
            raise VaultError("the vault writer is closed")

    def _fail(self, exc: BaseException) -> None:
        """After a storage failure the writer stops: what it had not indexed is not committed,
        and pretending otherwise could lose data. The vault itself stays consistent."""
        self._error = exc
        self._seg.clear()
        self._builders.clear()
        self._unindexed.clear()
        self._session.clear()
        if isinstance(exc, VaultError | BackendError):
            raise VaultError(f"vault write failed: {exc}") from exc
        raise exc

    def _check_refs(self, ids: list[bytes]) -> None:
        if not ids:
            return
        uniq = list(dict.fromkeys(ids))
        found = self._vault.index.existing(uniq)
        missing = [b for b in uniq if b not in found and b not in self._session]
        if missing:
            # Another writer of this vault (e.g. a parallel attachment downloader) may hold them
            # unflushed: make those durable first, then look again.
            others = [
                w for w in list(self._vault._writers) if w is not self and any(w.holds(b) for b in missing)
            ]
            for other in others:
                other.flush()
            if others:
                found = self._vault.index.existing(missing)
                missing = [b for b in missing if b not in found]
        if missing:
            shown = ", ".join(m.hex() for m in missing[:3])
            raise VaultError(
                f"snapshot refused: {len(missing)} referenced blob(s) are not in the vault (e.g. {shown})"
            )

    def _write_segment(self, cls: StorageClass, blobs: list[tuple[bytes, int, bytes]]) -> None:
        existing = self._vault.index.existing([b[0] for b in blobs])
        if existing:
            self.stats["blobs_dedup"] += len(existing)
            blobs = [b for b in blobs if b[0] not in existing]
            if not blobs:
                return
        self.stats["blobs_new"] += len(blobs)
        builder = self._builders.get(cls)
        if builder is None:
            builder = self._builders[cls] = PackBuilder(
                cls, self._vault.class_key(cls), self._codec, os.urandom(32)
            )
            self._entries[cls] = []
        self._entries[cls].extend(builder.add_segment(blobs))
        if builder.size >= self._pack_target:
            self._close_pack(cls)

    def _close_pack(self, cls: StorageClass) -> None:
        builder = self._builders.pop(cls)
        entries = self._entries.pop(cls)
        pack_id, parts, size = builder.finish_parts()
        self._uploader.submit(pack_object_key(cls, pack_id), parts, size)
        self._unindexed.append(PackRecord(pack_id, cls, builder.salt, size, tuple(entries)))
        self.stats["packs"] += 1
        self.stats["bytes_stored"] += size

    def _checkpoint(self) -> None:
        for cls in list(self._seg):
            self._write_segment(cls, self._seg.pop(cls))
        for cls in list(self._builders):
            self._close_pack(cls)
        self._uploader.drain()
        if self._unindexed:
            # Packs must be durable before an index names them.
            self._vault.backend.sync()
            name, data = objects.seal_object(
                self._vault.sealer, objects.KIND_INDEX, encode_index(self._unindexed)
            )
            self._vault.backend.put(INDEX_PREFIX + name, data)
            self._vault.index.add(name, self._unindexed)
            self._unindexed = []
        self._session = set()
        self._since_index_bytes = 0
        self._dirty_since = None

    def _timer_loop(self) -> None:
        age = self._max_pack_age
        period = max(age / 4, 0.05) if age is not None else 30.0
        while not self._stop_timer.wait(period):
            try:
                self._repo_lock.refresh()
            except BackendError:
                pass  # retried next period; the lock only goes stale after 30 minutes
            since = self._dirty_since
            if age is None or since is None or time.monotonic() - since < age:
                continue
            with self._lock:
                if self._closed or self._error is not None or self._dirty_since is None:
                    continue
                try:
                    self._checkpoint()
                except BaseException as exc:  # kept; the caller sees it on its next call
                    self._error = exc
