"""The repository: a vault opened with a key, over one backend.

See ``dingvault.vault`` (the package docstring) for the public API and ``docs/vault-format.md``
for the bytes. This module ties the pieces together: key slots, the sealed config, the index
cache, reading blobs, snapshots and catalog exports. Writing lives in ``writer``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import socket
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import blake3
import orjson

from . import crypto, keys, objects
from .backends.base import Backend, BackendError, ObjectNotFound
from .chunker import ChunkerParams
from .errors import (
    BlobNotFound,
    IntegrityError,
    LevelNotAvailable,
    VaultError,
    VaultExists,
    VaultNotFound,
)
from .index import INDEX_PREFIX, IndexCache, Location, decode_index
from .levels import StorageClass, parse_level
from .locks import RepoLock
from .pack import SegmentCodec, pack_aead, pack_object_key, parse_pack_key
from .snapshot import SNAPSHOT_PREFIX, ManifestRecord, SnapshotInfo, walk_tree

CONFIG_KEY = "config"
CATALOG_PREFIX = "catalog/"
FORMAT_NAME = "dingvault-vault"
FORMAT_VERSION = 1
CONFIG_AAD = b"dingvault config v1"
SEGMENT_CACHE_BYTES = 32 << 20


def default_cache_dir() -> Path:
    home = os.environ.get("DINGVAULT_HOME") or str(Path.home() / ".dingvault")
    return Path(home).expanduser() / "cache" / "vault"


@dataclass(frozen=True)
class CatalogExport:
    export_id: str
    tag: str
    time: str
    size: int
    sha256: str
    level: str
    blobs: tuple[bytes, ...]


@dataclass(frozen=True)
class PackInfo:
    """A pack object as replicas need to see it: where it is and which level it carries."""

    key: str
    pack_id: bytes
    storage_class: StorageClass
    size: int

    @property
    def level(self) -> str:
        return self.storage_class.label


class Vault:
    """An open vault. Thread-safe: every method may be called from any thread (reads and writes
    are serialised internally where they share state)."""

    def __init__(
        self,
        backend: Backend,
        material: keys.KeyMaterial,
        slot: keys.KeySlot | None,
        config: dict[str, Any],
        chunker_params: ChunkerParams,
        cache_dir: Path | None,
    ) -> None:
        self.backend = backend
        self.material = material
        self.slot = slot
        self.config = config
        self.vault_id: str = config["id"]
        self.chunker_params = chunker_params
        self.meta_key = crypto.derive(material.master, crypto.CTX_META)
        self.sealer = crypto.Sealer(self.meta_key)
        # Keys per storage class: meta is derived from the master key; levels are as unlocked.
        self.class_keys: dict[StorageClass, bytes] = {StorageClass.META: self.meta_key, **material.levels}
        self.id_keys: dict[StorageClass, bytes] = {
            cls: crypto.derive(material.master, crypto.CTX_BLOB_ID.format(cls=cls.label))
            for cls in StorageClass
        }
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if cache_dir is None:
            cache_dir = default_cache_dir()
        cache_path = Path(cache_dir) / self.vault_id / "index.sqlite"
        self.index = self._open_cache(cache_path)
        self._read_lock = threading.RLock()
        self._codec = SegmentCodec()
        self._segments: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()
        self._segments_bytes = 0
        self._writers: list[Any] = []
        self.refresh_index()

    def _open_cache(self, path: Path) -> IndexCache:
        # The cache is only a copy of the backend's index files: a damaged one is deleted and
        # rebuilt, and an unwritable location falls back to a private temp dir, so neither can
        # stop a restore.
        try:
            return IndexCache(path)
        except (sqlite3.DatabaseError, OSError):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(str(path) + suffix)
        try:
            return IndexCache(path)
        except (sqlite3.DatabaseError, OSError):
            self._tmpdir = tempfile.TemporaryDirectory(prefix="dingvault-index-")
            return IndexCache(Path(self._tmpdir.name) / "index.sqlite")

    # ------------------------------------------------------------------ creation / opening

    @classmethod
    def init(
        cls,
        backend: Backend,
        passphrase: str,
        *,
        kdf: keys.KdfParams | None = None,
        cache_dir: Path | str | None = None,
        chunker: ChunkerParams | None = None,
        recovery: bool = True,
    ) -> tuple[Vault, str | None]:
        """Create a vault; returns it and the recovery key (show it once, store it offline)."""
        if backend.exists(CONFIG_KEY):
            raise VaultExists(f"a vault already exists at {backend.url}")
        material = keys.KeyMaterial.generate()
        # pyfastcdc shifts the seed left by one inside a uint64: keep it below 2**62.
        params = chunker or ChunkerParams(seed=(int.from_bytes(os.urandom(8), "little") >> 2) | 1)
        vault_id = secrets.token_hex(16)
        meta = crypto.Sealer(crypto.derive(material.master, crypto.CTX_META))
        sealed = meta.seal(orjson.dumps({"chunker": params.as_dict()}), CONFIG_AAD + vault_id.encode())
        config = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "id": vault_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sealed": base64.b64encode(sealed).decode("ascii"),
        }
        # Key slots first, config last: a vault without config is "not a vault" and can simply
        # be initialised again; a config without a key slot would be a locked box.
        slot = keys.write_slot(backend, material, passphrase, kind="passphrase", label="initial", kdf=kdf)
        recovery_key = None
        if recovery:
            recovery_key = keys.new_recovery_key()
            keys.write_slot(backend, material, recovery_key, kind="recovery", label="recovery key", kdf=kdf)
        try:
            backend.put(CONFIG_KEY, orjson.dumps(config, option=orjson.OPT_INDENT_2))
        except BackendError as exc:
            from .backends.base import ObjectExists

            if isinstance(exc, ObjectExists):
                raise VaultExists(f"a vault was created concurrently at {backend.url}") from None
            raise
        vault = cls(backend, material, slot, config, params, Path(cache_dir) if cache_dir else None)
        return vault, recovery_key

    @classmethod
    def open(cls, backend: Backend, passphrase: str, *, cache_dir: Path | str | None = None) -> Vault:
        config = read_config(backend)
        material, slot = keys.unlock(backend, passphrase)
        return cls._from_material(backend, material, slot, config, cache_dir)

    @classmethod
    def _from_material(
        cls,
        backend: Backend,
        material: keys.KeyMaterial,
        slot: keys.KeySlot | None,
        config: dict[str, Any],
        cache_dir: Path | str | None,
    ) -> Vault:
        meta = crypto.Sealer(crypto.derive(material.master, crypto.CTX_META))
        try:
            raw = meta.open(
                base64.b64decode(config["sealed"]), CONFIG_AAD + config["id"].encode(), what="vault config"
            )
            params = ChunkerParams.from_dict(orjson.loads(raw)["chunker"])
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(f"vault config at {backend.url} is malformed: {exc}") from None
        return cls(backend, material, slot, config, params, Path(cache_dir) if cache_dir else None)

    def close(self) -> None:
        for w in list(self._writers):
            w.close()
        self.index.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ keys

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(c.label for c in sorted(self.material.levels))

    def class_key(self, storage_class: StorageClass) -> bytes:
        key = self.class_keys.get(storage_class)
        if key is None:
            raise LevelNotAvailable(
                f"this key slot does not hold the {storage_class.label} data key; "
                f"it can read: {', '.join(self.levels) or 'no levels'}"
            )
        return key

    def blob_id(self, data: bytes, level: str | StorageClass) -> bytes:
        """The id ``data`` gets at ``level`` (keyed BLAKE3; equal data at one level, one id)."""
        return blake3.blake3(data, key=self.id_keys[StorageClass.parse(level)]).digest()

    def add_key(
        self,
        passphrase: str,
        *,
        label: str = "",
        levels: Iterable[str] | None = None,
        kdf: keys.KdfParams | None = None,
        kind: str = "passphrase",
    ) -> keys.KeySlot:
        material = self.material if levels is None else self.material.restricted(levels)
        return keys.write_slot(self.backend, material, passphrase, kind=kind, label=label, kdf=kdf)

    def list_keys(self) -> list[keys.KeySlot]:
        return keys.list_slots(self.backend)

    def remove_key(self, slot_id: str) -> None:
        slots = self.list_keys()
        target = next((s for s in slots if s.slot_id == slot_id or s.slot_id.startswith(slot_id)), None)
        if target is None:
            raise VaultError(f"no key slot {slot_id!r}")
        full = [s for s in slots if set(s.levels) >= {"public", "internal", "confidential"}]
        if target in full and len(full) == 1:
            raise VaultError(
                "refusing to remove the last key slot that holds every level: the vault would be lost"
            )
        if self.slot is not None and target.slot_id == self.slot.slot_id:
            raise VaultError("refusing to remove the key slot in use; open the vault with another key first")
        self.backend.delete(target.key)

    def change_passphrase(self, new_passphrase: str, *, kdf: keys.KdfParams | None = None) -> keys.KeySlot:
        """Write a new slot with the same keys, then delete the slot in use. No data is rewritten."""
        old = self.slot
        label = old.label if old else ""
        new = keys.write_slot(
            self.backend, self.material, new_passphrase, kind="passphrase", label=label, kdf=kdf
        )
        if old is not None:
            self.backend.delete(old.key)
        self.slot = new
        return new

    # ------------------------------------------------------------------ index

    def refresh_index(self) -> None:
        """Bring the local index cache in line with the backend's index files."""
        names = {i.key[len(INDEX_PREFIX) :] for i in self.backend.list(INDEX_PREFIX)}
        known = self.index.known_index_files()
        if known - names:
            # An index file we loaded is gone: prune or repair rewrote the index. Start over,
            # because entries from the vanished file may point at deleted packs.
            self.index.clear()
            known = set()
        for name in names - known:
            try:
                packs = self.load_index_file(name)
            except IntegrityError:
                continue  # reported by verify, fixed by repair; the rest of the vault stays usable
            self.index.add(name, packs)

    def load_index_file(self, name: str) -> list:
        data = self.backend.get(INDEX_PREFIX + name)
        raw = objects.open_object(self.sealer, objects.KIND_INDEX, data, what=f"index {name}", name=name)
        return decode_index(raw, f"index {name}")

    def index_file_names(self) -> list[str]:
        return sorted(i.key[len(INDEX_PREFIX) :] for i in self.backend.list(INDEX_PREFIX))

    # ------------------------------------------------------------------ writing

    def writer(self, **options: Any) -> Any:
        """A ``VaultWriter`` (a context manager); see ``writer.VaultWriter`` for options."""
        from .writer import VaultWriter

        w = VaultWriter(self, **options)
        self._writers.append(w)
        return w

    def _forget_writer(self, w: Any) -> None:
        if w in self._writers:
            self._writers.remove(w)

    def lock(self, *, exclusive: bool) -> RepoLock:
        return RepoLock(self.backend, self.sealer, exclusive=exclusive)

    # ------------------------------------------------------------------ reading

    def has_blob(self, blob_id: bytes) -> bool:
        return self.index.locate(blob_id) is not None

    def _locate(self, blob_id: bytes) -> Location:
        loc = self.index.locate(blob_id)
        if loc is None:
            for w in list(self._writers):
                if w.holds(blob_id):
                    w.flush()  # read-your-writes: make the pending blob durable and indexed
                    loc = self.index.locate(blob_id)
                    break
        if loc is None:
            # Another client may have written it since this cache was last refreshed.
            self.refresh_index()
            loc = self.index.locate(blob_id)
        if loc is None:
            raise BlobNotFound(f"blob {blob_id.hex()} is not in the vault's index")
        return loc

    def _segment(self, loc: Location) -> bytes:
        ck = (loc.pack_id, loc.seg_offset)
        seg = self._segments.get(ck)
        if seg is not None:
            self._segments.move_to_end(ck)
            return seg
        key = pack_object_key(loc.storage_class, loc.pack_id)
        what = f"pack {key}"
        try:
            stored = self.backend.get(key, loc.seg_offset, loc.seg_length)
        except ObjectNotFound:
            raise _PackMissing(f"{what} is missing (it holds blob {loc.blob_id.hex()})") from None
        if len(stored) != loc.seg_length:
            raise IntegrityError(f"{what}: truncated (segment at {loc.seg_offset} short)")
        aead = pack_aead(self.class_key(loc.storage_class), loc.salt)
        seg = self._codec.decode(aead, loc.seg_offset, stored, _plain_len_unknown, what=what)
        self._segments[ck] = seg
        self._segments_bytes += len(seg)
        while self._segments_bytes > SEGMENT_CACHE_BYTES and len(self._segments) > 1:
            _, old = self._segments.popitem(last=False)
            self._segments_bytes -= len(old)
        return seg

    def get_blob(self, blob_id: bytes) -> bytes:
        """The plaintext of a blob, checked against its id (IntegrityError when damaged)."""
        with self._read_lock:
            loc = self._locate(blob_id)
            try:
                seg = self._segment(loc)
            except _PackMissing:
                # A prune elsewhere may have moved the blob: refresh once, then report.
                self.refresh_index()
                loc = self._locate(blob_id)
                try:
                    seg = self._segment(loc)
                except _PackMissing as exc:
                    raise IntegrityError(str(exc)) from None
            data = seg[loc.offset : loc.offset + loc.length]
            if (
                len(data) != loc.length
                or blake3.blake3(data, key=self.id_keys[loc.storage_class]).digest() != blob_id
            ):
                self._segments.pop((loc.pack_id, loc.seg_offset), None)
                raise IntegrityError(
                    f"blob {blob_id.hex()} in pack {pack_object_key(loc.storage_class, loc.pack_id)} does not match its id"
                )
            return data

    def blob_level(self, blob_id: bytes) -> str:
        return self._locate(blob_id).storage_class.label

    def get_blobs(self, blob_ids: Iterable[bytes]) -> Iterator[bytes]:
        for b in blob_ids:
            yield self.get_blob(b)

    def open_stream(self, blob_ids: Iterable[bytes]) -> BinaryIO:
        """A read-only file object over the concatenated blobs (fetched one at a time)."""
        return io.BufferedReader(_BlobStream(self, list(blob_ids)), buffer_size=1 << 20)

    # ------------------------------------------------------------------ snapshots

    def snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first."""
        out = []
        for info in self.backend.list(SNAPSHOT_PREFIX):
            sid = info.key[len(SNAPSHOT_PREFIX) :]
            try:
                out.append(self.load_snapshot(sid))
            except (IntegrityError, ObjectNotFound):
                continue  # verify names it
        return sorted(out, key=lambda s: (s.time, s.snapshot_id))

    def snapshot_ids(self) -> list[str]:
        return sorted(i.key[len(SNAPSHOT_PREFIX) :] for i in self.backend.list(SNAPSHOT_PREFIX))

    def load_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        key = SNAPSHOT_PREFIX + snapshot_id
        try:
            data = self.backend.get(key)
        except ObjectNotFound:
            raise VaultError(f"no snapshot {snapshot_id}") from None
        raw = objects.open_object(
            self.sealer, objects.KIND_SNAPSHOT, data, what=f"snapshot {snapshot_id}", name=snapshot_id
        )
        return SnapshotInfo.from_json(snapshot_id, raw)

    def records(self, snapshot: str | SnapshotInfo) -> Iterator[ManifestRecord]:
        """The snapshot's records, streamed from its manifest tree."""
        info = self.load_snapshot(snapshot) if isinstance(snapshot, str) else snapshot
        return walk_tree(self.get_blob, info.tree)

    def write_snapshot_object(self, info_json: bytes) -> str:
        name, data = objects.seal_object(self.sealer, objects.KIND_SNAPSHOT, info_json)
        self.backend.put(SNAPSHOT_PREFIX + name, data)
        return name

    def forget_snapshot(self, snapshot_id: str, holds: Any = None) -> None:
        """Delete a snapshot's root object (its data goes at the next prune). Refused while a hold
        names it."""
        from .holds import held_snapshots

        if snapshot_id in held_snapshots(holds):
            from .errors import HoldViolation

            raise HoldViolation(f"snapshot {snapshot_id} is under a hold and cannot be forgotten")
        self.load_snapshot(snapshot_id)  # refuse to "forget" something that is not a snapshot
        self.backend.delete(SNAPSHOT_PREFIX + snapshot_id)

    # ------------------------------------------------------------------ catalog exports

    def put_catalog_export(self, tag: str, stream: BinaryIO, *, level: str = "confidential") -> str:
        """Store an opaque catalog export; returns its id. Durable when it returns."""
        import hashlib

        digest = hashlib.sha256()
        size = 0

        class _Counting(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                nonlocal size
                n = stream.readinto(b) if hasattr(stream, "readinto") else _read_into(stream, b)
                if n:
                    digest.update(memoryview(b)[:n])
                    size += n
                return n or 0

        with self.writer() as w:
            ids = w.put_stream(_Counting(), level)
            w.flush()
        doc = {
            "version": 1,
            "tag": tag,
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            "size": size,
            "sha256": digest.hexdigest(),
            "level": parse_level(level).label,
            "blobs": [b.hex() for b in ids],
        }
        name, data = objects.seal_object(self.sealer, objects.KIND_CATALOG, orjson.dumps(doc))
        self.backend.put(CATALOG_PREFIX + name, data)
        return name

    def load_catalog_export(self, export_id: str) -> CatalogExport:
        key = CATALOG_PREFIX + export_id
        try:
            data = self.backend.get(key)
        except ObjectNotFound:
            raise VaultError(f"no catalog export {export_id}") from None
        raw = objects.open_object(
            self.sealer, objects.KIND_CATALOG, data, what=f"catalog export {export_id}", name=export_id
        )
        try:
            doc = orjson.loads(raw)
            return CatalogExport(
                export_id,
                doc["tag"],
                doc["time"],
                int(doc["size"]),
                doc["sha256"],
                doc["level"],
                tuple(bytes.fromhex(b) for b in doc["blobs"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"catalog export {export_id}: malformed ({exc})") from None

    def list_catalog_exports(self, tag: str | None = None) -> list[CatalogExport]:
        """Exports, oldest first (optionally only those with ``tag``)."""
        out = []
        for info in self.backend.list(CATALOG_PREFIX):
            try:
                exp = self.load_catalog_export(info.key[len(CATALOG_PREFIX) :])
            except (IntegrityError, VaultError):
                continue
            if tag is None or exp.tag == tag:
                out.append(exp)
        return sorted(out, key=lambda e: (e.time, e.export_id))

    def open_catalog_export(self, export_id: str) -> BinaryIO:
        return self.open_stream(self.load_catalog_export(export_id).blobs)

    # ------------------------------------------------------------------ replicas

    def list_packs(self) -> Iterator[PackInfo]:
        """Every pack object in the backend, with its level (from its name; no key needed)."""
        for info in self.backend.list("data/"):
            parsed = parse_pack_key(info.key)
            if parsed is not None:
                yield PackInfo(info.key, parsed[1], parsed[0], info.size)

    def replica_object_keys(self, levels: Iterable[str] | None = None) -> Iterator[str]:
        """The objects a replica allowed ``levels`` (None: all) should hold: config, key slots,
        index files, snapshots, catalog descriptors, meta packs and the packs of those levels.
        Locks are never replicated."""
        return replica_object_keys(self.backend, levels)

    # ------------------------------------------------------------------ info

    def info(self) -> dict[str, Any]:
        stats = self.index.stats()
        return {
            "url": self.backend.url,
            "id": self.vault_id,
            "created": self.config.get("created"),
            "format_version": self.config.get("version"),
            "levels": list(self.levels),
            "key_slot": self.slot.slot_id if self.slot else None,
            "snapshots": len(self.snapshot_ids()),
            "index_files": len(self.index_file_names()),
            **stats,
            "by_level": self.index.stats_by_class(),
        }


_plain_len_unknown = -1


class _PackMissing(Exception):
    pass


def _read_into(stream: BinaryIO, b: Any) -> int:
    data = stream.read(len(b))
    n = len(data)
    memoryview(b)[:n] = data
    return n


class _BlobStream(io.RawIOBase):
    """Concatenated blobs, fetching the next one on a helper thread while the caller consumes
    the current one (a remote backend's latency then overlaps with the caller's writing)."""

    def __init__(self, vault: Vault, ids: list[bytes]) -> None:
        self._vault = vault
        self._ids = ids
        self._i = 0
        self._cur = b""
        self._pos = 0
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(1) if len(ids) > 1 else None
        self._next: Future[bytes] | None = None

    def readable(self) -> bool:
        return True

    def _fetch(self) -> bytes:
        nxt = self._next
        data = nxt.result() if nxt is not None else self._vault.get_blob(self._ids[self._i])
        self._i += 1
        self._next = None
        if self._pool is not None and self._i < len(self._ids):
            self._next = self._pool.submit(self._vault.get_blob, self._ids[self._i])
        return data

    def readinto(self, b: Any) -> int:
        while self._pos >= len(self._cur):
            if self._i >= len(self._ids):
                return 0
            self._cur = self._fetch()
            self._pos = 0
        n = min(len(b), len(self._cur) - self._pos)
        memoryview(b)[:n] = self._cur[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if self._pool is not None:
            if self._next is not None:
                self._next.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        super().close()


def read_config(backend: Backend) -> dict[str, Any]:
    try:
        raw = backend.get(CONFIG_KEY)
    except ObjectNotFound:
        raise VaultNotFound(
            f"no vault at {backend.url} (no config object); run `dingvault vault init`"
        ) from None
    try:
        config = orjson.loads(raw)
    except ValueError as exc:
        raise IntegrityError(f"vault config at {backend.url} is not JSON: {exc}") from None
    if config.get("format") != FORMAT_NAME:
        raise IntegrityError(f"{backend.url}/config is not a dingvault vault config")
    if config.get("version") != FORMAT_VERSION:
        raise VaultError(
            f"vault format version {config.get('version')} is not supported (this reader knows {FORMAT_VERSION})"
        )
    return config


def replica_object_keys(backend: Backend, levels: Iterable[str] | None = None) -> Iterator[str]:
    allowed = None if levels is None else {parse_level(x) for x in levels} | {StorageClass.META}
    for info in backend.list(""):
        key = info.key
        if key.startswith("locks/"):
            continue
        parsed = parse_pack_key(key)
        if parsed is not None:
            if allowed is None or parsed[0] in allowed:
                yield key
            continue
        if key.startswith("data/"):
            continue  # not a well-formed pack name: never copy junk
        yield key


def hostname() -> str:
    return socket.gethostname()
