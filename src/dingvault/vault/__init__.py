"""The vault: dingvault's encrypted, deduplicating, verifiable store (format: docs/vault-format.md).

Opening and creating::

    from dingvault.vault import Vault, from_url
    backend = from_url("/srv/dingvault/vault")              # or s3://bucket/prefix?...
    vault, recovery_key = Vault.init(backend, passphrase)   # show recovery_key once
    vault = Vault.open(backend, passphrase)                 # WrongPassphrase if no slot opens

Writing (the backup engine)::

    with vault.writer(max_pack_age=5.0) as w:        # holds a shared lock while open
        bid = w.put_blob(raw_json_bytes, "internal")     # -> 32-byte BlobId (keyed BLAKE3)
        ids = w.put_stream(fileobj, "confidential")      # content-defined chunks -> [BlobId]
        w.flush()                                        # all blobs so far durable + indexed
        sid = w.commit_snapshot(records, tags=["full"])  # records: iterable of
                                                         #   ManifestRecord(key, blob_ids, meta)

``put_blob`` returns at once; a pack closes at ~16 MiB or ``max_pack_age`` seconds after its first
blob (a background timer), so near-real-time capture is durable within that bound without
waiting for a full pack. ``commit_snapshot`` streams records into a manifest tree (a snapshot
of millions of items never sits in memory), refuses records naming blobs the vault lacks, then
writes packs -> index -> snapshot.

Reading::

    vault.get_blob(bid) -> bytes          # checked against its id; IntegrityError if damaged
    vault.open_stream(ids) -> BinaryIO    # concatenation of chunks
    vault.snapshots() -> [SnapshotInfo]   # oldest first
    vault.load_snapshot(sid); vault.records(sid) -> Iterator[ManifestRecord]

Catalog safety: ``put_catalog_export(tag, stream) -> id``, ``list_catalog_exports(tag=None)``,
``open_catalog_export(id) -> BinaryIO``.

Maintenance: ``verify(vault, read_data=..., subset=..., replicas=[ReplicaTarget(...)])``,
``repair(vault, replica_backend_or_list)``, ``prune(vault, holds)`` (``HoldProvider``: governance says what
to keep), ``vault.forget_snapshot(sid, holds)``. Storage failures surface as ``BackendError`` (from
``vault.backends``) or as ``VaultError("vault write failed: ...")`` from a writer, which then
refuses further work; either way the vault stays consistent. Keys: ``vault.add_key``, ``list_keys``,
``remove_key``, ``change_passphrase``.

Replicas: ``vault.list_packs()`` (pack key, id, level, size: the level is in the pack's name, no
key needed) and ``replica_object_keys(backend, levels)`` (what a replica allowed ``levels`` holds).

Thread safety: a ``Vault`` and a ``VaultWriter`` may be shared between threads; calls are
serialised internally. Several writers (threads or processes) may write to one vault at once;
prune and repair take an exclusive lock and wait for none (they fail with ``VaultLocked``).
"""

from __future__ import annotations

from .backends import from_url
from .errors import (
    BlobNotFound,
    HoldViolation,
    IntegrityError,
    LevelNotAvailable,
    VaultError,
    VaultExists,
    VaultLocked,
    VaultNotFound,
    WrongPassphrase,
)
from .holds import HoldProvider, StaticHolds
from .keys import KdfParams
from .levels import LEVELS, StorageClass
from .prune import PruneReport, prune
from .repair import RepairReport, repair
from .repository import CatalogExport, PackInfo, Vault, replica_object_keys
from .snapshot import ManifestRecord, SnapshotInfo
from .verify import Problem, ReplicaTarget, VerifyReport, verify
from .writer import VaultWriter

BlobId = bytes
SnapshotId = str

__all__ = [
    "LEVELS",
    "BlobId",
    "BlobNotFound",
    "CatalogExport",
    "HoldProvider",
    "HoldViolation",
    "IntegrityError",
    "KdfParams",
    "LevelNotAvailable",
    "ManifestRecord",
    "PackInfo",
    "Problem",
    "PruneReport",
    "RepairReport",
    "ReplicaTarget",
    "SnapshotId",
    "SnapshotInfo",
    "StaticHolds",
    "StorageClass",
    "Vault",
    "VaultError",
    "VaultExists",
    "VaultLocked",
    "VaultNotFound",
    "VaultWriter",
    "VerifyReport",
    "WrongPassphrase",
    "from_url",
    "prune",
    "repair",
    "replica_object_keys",
    "verify",
]
