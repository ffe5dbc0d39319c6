"""Writing to a vault: blobs into segments into packs, then index, then snapshot.

Work is split over two threads. The caller's thread hashes each blob (its id), drops duplicates
seen in this session and gathers blobs into per-class segments. A worker thread drops blobs the
index already holds, compresses and encrypts segments, assembles packs, stores them and writes
index files. zstd and AES-GCM release the GIL, so on two cores hashing and packing overlap.

Write order (what makes a crash harmless): packs are stored (``sync=False``), then
``backend.sync()``, then the index file naming them, then (``commit_snapshot``) the snapshot.
A crash leaves at worst packs no index names; they are invisible until ``repair`` indexes them
or ``prune`` deletes them.
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
from .pack import BLOB_DATA, BLOB_TREE, PackBuilder, pack_object_key
from .snapshot import ManifestRecord, SnapshotInfo, TreeBuilder

if TYPE_CHECKING:
    from .repository import Vault

SEGMENT_TARGET = 256 * 1024
PACK_TARGET = 16 * 1024 * 1024
# An index file is written (and open packs closed) after this many new blobs or bytes, which
# bounds both the writer's memory and the work lost to a crash.
INDEX_EVERY_BLOBS = 200_000
INDEX_EVERY_BYTES = 512 * 1024 * 1024
MAX_PACK_AGE = 5.0
REF_CHECK_BATCH = 2000


class _Segment:
    __slots__ = ("blobs", "size", "started")

    def __init__(self) -> None:
        self.blobs: list[tuple[bytes, int, bytes]] = []
        self.size = 0
        self.started = 0.0


class VaultWriter:
    """Adds blobs to a vault. Use one writer per ingest stream, as a context manager.

    Thread-safe (calls are serialised). Holds a shared repository lock while open, so prune
    cannot run underneath it.

    Options: ``max_pack_age`` (seconds; a background timer closes an open pack this long after
    its first blob, so near-real-time capture is durable within that bound; ``None`` disables),
    ``pack_target``, ``segment_target``.
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
        self._lock = threading.RLock()
        self._segments: dict[StorageClass, _Segment] = {}
        self._session: set[bytes] = set()
        self._inflight: list[tuple[int, set[bytes]]] = []
        self._seq = 0
        self._done_seq = 0
        self._since_index_blobs = 0
        self._since_index_bytes = 0
        self._dirty_since: float | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.stats = {"blobs_new": 0, "blobs_dedup": 0, "bytes_in": 0, "packs": 0, "bytes_stored": 0}
        self._repo_lock = vault.lock(exclusive=False).acquire()
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=4)
        self._worker = _PackWorker(vault, self, pack_target)
        self._thread = threading.Thread(target=self._worker.run, name="dingvault-pack-writer", daemon=True)
        self._thread.start()
        self._stop_timer = threading.Event()
        self._timer: threading.Thread | None = None
        self._max_pack_age = max_pack_age
        if max_pack_age is not None:
            self._timer = threading.Thread(target=self._timer_loop, name="dingvault-pack-timer", daemon=True)
            self._timer.start()

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> VaultWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(flush=exc_type is None)

    def put_blob(self, data: bytes, level: str | StorageClass, *, blob_type: int = BLOB_DATA) -> bytes:
        """Store ``data`` at ``level``; returns its id. Durable after the next ``flush()`` /
        ``commit_snapshot()`` (or within ``max_pack_age`` seconds)."""
        cls = StorageClass.parse(level)
        key = self._vault.id_keys[cls]
        blob_id = blake3.blake3(data, key=key).digest()
        with self._lock:
            self._check()
            if cls not in self._vault.class_keys:
                self._vault.class_key(cls)  # raises LevelNotAvailable with a clear message
            if blob_id in self._session or self._in_flight(blob_id):
                self.stats["blobs_dedup"] += 1
                return blob_id
            self._session.add(blob_id)
            n = len(data)
            self.stats["bytes_in"] += n
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
            if n >= self._segment_target // 2:
                # A large blob gets a segment of its own: no copying into the shared buffer.
                self._send(("segment", cls, [(blob_id, blob_type, bytes(data))]))
            else:
                seg = self._segments.get(cls)
                if seg is None:
                    seg = self._segments[cls] = _Segment()
                seg.blobs.append((blob_id, blob_type, bytes(data)))
                seg.size += n
                if seg.size >= self._segment_target:
                    self._send(("segment", cls, seg.blobs))
                    del self._segments[cls]
            self._since_index_blobs += 1
            self._since_index_bytes += n
            if self._since_index_blobs >= INDEX_EVERY_BLOBS or self._since_index_bytes >= INDEX_EVERY_BYTES:
                self._checkpoint(wait=False)
            return blob_id

    def put_stream(self, stream: BinaryIO, level: str | StorageClass) -> list[bytes]:
        """Chunk ``stream`` (content-defined) and store each chunk; returns the chunk ids in order.
        An empty stream gives an empty list."""
        from .chunker import Chunker

        chunker = Chunker(self._vault.chunker_params)
        return [self.put_blob(chunk, level) for chunk in chunker.chunks(stream)]

    def flush(self) -> None:
        """Close every open segment and pack, store them and write the index; returns when all
        blobs put so far are durable and indexed."""
        with self._lock:
            self._check()
            self._checkpoint(wait=True)
            self._repo_lock.refresh()

    def holds(self, blob_id: bytes) -> bool:
        """Whether this writer has accepted ``blob_id`` but may not have indexed it yet."""
        with self._lock:
            return blob_id in self._session or self._in_flight(blob_id)

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
                    if len(b) != 32:
                        raise VaultError(f"record {rec[0]!r}: blob id {b!r} is not 32 bytes")
                    if b not in self._session and not self._in_flight(b):
                        pending.append(b)
                if len(pending) >= REF_CHECK_BATCH:
                    self._check_refs(pending)
                    pending = []
            self._check_refs(pending)
            root = tree.finish()
            self._checkpoint(wait=True)
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
            self._repo_lock.refresh()
            return sid

    def close(self, *, flush: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if flush and self._error is None:
                    self._checkpoint(wait=True)
            finally:
                self._closed = True
                self._stop_timer.set()
                self._queue.put(("stop",))
                self._thread.join()
                self._repo_lock.release()
                self._vault._forget_writer(self)

    # ------------------------------------------------------------------ internals

    def _check(self) -> None:
        if self._error is not None:
            raise VaultError(f"the vault writer failed earlier and stored nothing since: {self._error}") from self._error
        if self._closed:
            raise VaultError("the vault writer is closed")

    def _check_refs(self, ids: list[bytes]) -> None:
        if not ids:
            return
        uniq = list(dict.fromkeys(ids))
        found = self._vault.index.existing(uniq)
        missing = [b for b in uniq if b not in found and b not in self._session and not self._in_flight(b)]
        if missing:
            shown = ", ".join(m.hex() for m in missing[:3])
            raise VaultError(
                f"snapshot refused: {len(missing)} referenced blob(s) are not in the vault (e.g. {shown})"
            )

    def _in_flight(self, blob_id: bytes) -> bool:
        done = self._done_seq
        if self._inflight and self._inflight[0][0] <= done:
            self._inflight = [(s, ids) for s, ids in self._inflight if s > done]
        return any(blob_id in ids for _, ids in self._inflight)

    def _send(self, item: tuple[Any, ...]) -> None:
        while True:
            if self._error is not None:
                self._check()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _checkpoint(self, *, wait: bool) -> None:
        for cls, seg in list(self._segments.items()):
            self._send(("segment", cls, seg.blobs))
        self._segments.clear()
        self._seq += 1
        seq = self._seq
        if self._session:
            self._inflight.append((seq, self._session))
            self._session = set()
        done = threading.Event()
        self._send(("index", seq, done))
        self._since_index_blobs = 0
        self._since_index_bytes = 0
        self._dirty_since = None
        if wait:
            while not done.wait(0.5):
                if not self._thread.is_alive():
                    break
            self._check()
            self._in_flight(b"")  # drop sets that are now in the index cache

    def _timer_loop(self) -> None:
        assert self._max_pack_age is not None
        period = max(self._max_pack_age / 4, 0.05)
        while not self._stop_timer.wait(period):
            since = self._dirty_since
            if since is None or time.monotonic() - since < self._max_pack_age:
                continue
            with self._lock:
                if self._closed or self._error is not None or self._dirty_since is None:
                    continue
                try:
                    self._checkpoint(wait=False)
                except VaultError:
                    pass  # the error is kept and raised to the caller on its next call


class _PackWorker:
    """Runs in the writer's thread: segments -> packs -> backend, index files -> backend."""

    def __init__(self, vault: Vault, writer: VaultWriter, pack_target: int) -> None:
        self.vault = vault
        self.writer = writer
        self.pack_target = pack_target
        self.builders: dict[StorageClass, PackBuilder] = {}
        self.unindexed: list[PackRecord] = []
        self.entries: dict[StorageClass, list] = {}
        self.codec_cls = None

    def run(self) -> None:
        from .pack import SegmentCodec

        codec = SegmentCodec()
        q = self.writer._queue
        while True:
            item = q.get()
            if item[0] == "stop":
                return
            if self.writer._error is not None:
                if item[0] == "index":
                    item[2].set()
                continue  # drain: after a failure nothing more is stored
            try:
                if item[0] == "segment":
                    self._segment(codec, item[1], item[2])
                elif item[0] == "index":
                    self._index(item[1])
                    item[2].set()
            except BaseException as exc:
                self.writer._error = exc
                if item[0] == "index":
                    item[2].set()

    def _segment(self, codec: Any, cls: StorageClass, blobs: list[tuple[bytes, int, bytes]]) -> None:
        existing = self.vault.index.existing([b[0] for b in blobs])
        if existing:
            self.writer.stats["blobs_dedup"] += len(existing)
            blobs = [b for b in blobs if b[0] not in existing]
            if not blobs:
                return
        self.writer.stats["blobs_new"] += len(blobs)
        builder = self.builders.get(cls)
        if builder is None:
            builder = self.builders[cls] = PackBuilder(cls, self.vault.class_key(cls), codec, os.urandom(32))
            self.entries[cls] = []
        self.entries[cls].extend(builder.add_segment(blobs))
        if builder.size >= self.pack_target:
            self._close_pack(cls)

    def _close_pack(self, cls: StorageClass) -> None:
        builder = self.builders.pop(cls)
        entries = self.entries.pop(cls)
        pack_id, data = builder.finish()
        self.vault.backend.put(pack_object_key(cls, pack_id), data, sync=False)
        self.unindexed.append(PackRecord(pack_id, cls, builder.salt, len(data), tuple(entries)))
        self.writer.stats["packs"] += 1
        self.writer.stats["bytes_stored"] += len(data)

    def _index(self, seq: int) -> None:
        for cls in list(self.builders):
            self._close_pack(cls)
        if self.unindexed:
            # Packs must be durable before an index names them.
            self.vault.backend.sync()
            name, data = objects.seal_object(self.vault.sealer, objects.KIND_INDEX, encode_index(self.unindexed))
            self.vault.backend.put(INDEX_PREFIX + name, data)
            self.vault.index.add(name, self.unindexed)
            self.unindexed = []
        self.writer._done_seq = seq
