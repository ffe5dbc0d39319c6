"""Verify: prove the vault is whole, and name every object that is not.

Structure (always): every index file opens; every indexed pack exists with the indexed size;
every snapshot and catalog export opens; every tree blob reads; every blob a snapshot or export
references is indexed. With ``read_data``: every pack (or a random ``subset`` of them) is
downloaded, checked against its name (SHA-256), its header authenticated and compared with the
index, every segment decrypted and decompressed, and every blob hashed against its id. Replica
backends can be checked the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .backends.base import Backend, BackendError, ObjectNotFound
from .errors import IntegrityError, LevelNotAvailable, VaultError
from .index import INDEX_PREFIX
from .levels import StorageClass, parse_level
from .objects import KIND_CATALOG, KIND_INDEX, KIND_SNAPSHOT, open_object
from .pack import SegmentCodec, check_pack, pack_object_key, parse_pack_key
from .repository import CATALOG_PREFIX
from .snapshot import SNAPSHOT_PREFIX, walk_tree

if TYPE_CHECKING:
    from .repository import Vault

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Problem:
    object: str  # the backend key of the damaged/missing object (or a snapshot id)
    message: str
    where: str = "primary"

    def __str__(self) -> str:
        return f"[{self.where}] {self.object}: {self.message}"


@dataclass
class VerifyReport:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def bump(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def damaged_keys(self, where: str = "primary") -> set[str]:
        return {p.object for p in self.errors if p.where == where}


@dataclass(frozen=True)
class ReplicaTarget:
    """A replica to verify: its backend and the levels it is meant to hold (None: all)."""

    name: str
    backend: Backend
    levels: tuple[str, ...] | None = None


def verify(
    vault: Vault,
    *,
    read_data: bool = False,
    subset: float | None = None,
    replicas: Iterable[ReplicaTarget] = (),
    progress: Progress | None = None,
    seed: int | None = None,
) -> VerifyReport:
    if subset is not None and not 0 < subset <= 1:
        raise VaultError(f"subset must be a fraction in (0, 1], not {subset}")
    report = VerifyReport()
    vault.refresh_index()
    _check_index_files(vault, vault.backend, report, "primary")
    listing = _check_packs_present(vault, vault.backend, report, "primary", None)
    _check_snapshots(vault, report, progress)
    _check_catalog(vault, report)
    rng = random.Random(seed)
    if read_data:
        _read_packs(vault, vault.backend, listing, report, "primary", subset, rng, progress)
    for rep in replicas:
        levels = None if rep.levels is None else {parse_level(x) for x in rep.levels} | {StorageClass.META}
        try:
            _check_index_files(vault, rep.backend, report, rep.name)
            rlisting = _check_packs_present(vault, rep.backend, report, rep.name, levels)
            _check_sealed_copies(vault, rep.backend, report, rep.name)
            if read_data:
                _read_packs(vault, rep.backend, rlisting, report, rep.name, subset, rng, progress)
        except BackendError as exc:
            # An unreachable replica is a finding, not a crash: the others are still checked.
            report.errors.append(Problem(rep.backend.url, f"replica unreachable: {exc}", rep.name))
    return report


def _check_index_files(vault: Vault, backend: Backend, report: VerifyReport, where: str) -> None:
    for info in backend.list(INDEX_PREFIX):
        name = info.key[len(INDEX_PREFIX) :]
        report.bump(f"index_files[{where}]")
        try:
            data = backend.get(info.key)
            open_object(vault.sealer, KIND_INDEX, data, what=f"index {name}", name=name)
            if where == "primary":
                vault.load_index_file(name)
        except (IntegrityError, BackendError) as exc:
            report.errors.append(Problem(info.key, f"index file unreadable: {exc}", where))


def _check_packs_present(
    vault: Vault, backend: Backend, report: VerifyReport, where: str, levels: set[StorageClass] | None
) -> dict[str, int]:
    listing: dict[str, int] = {}
    for info in backend.list("data/"):
        if parse_pack_key(info.key) is None:
            report.warnings.append(Problem(info.key, "not a pack name; ignored", where))
            continue
        listing[info.key] = info.size
    indexed = set()
    for pack_id, cls, _salt, size in vault.index.packs():
        if levels is not None and cls not in levels:
            continue
        key = pack_object_key(cls, pack_id)
        indexed.add(key)
        report.bump(f"packs[{where}]")
        have = listing.get(key)
        if have is None:
            report.errors.append(Problem(key, "pack is missing (the index names it)", where))
        elif have != size:
            report.errors.append(Problem(key, f"pack has {have} bytes, the index says {size}", where))
    for key in sorted(set(listing) - indexed):
        parsed = parse_pack_key(key)
        if parsed and levels is not None and parsed[0] not in levels:
            report.errors.append(Problem(key, "pack of a level this replica must not hold", where))
        else:
            report.warnings.append(
                Problem(
                    key,
                    "pack not in any index (left by an interrupted write: repair indexes it, prune removes it)",
                    where,
                )
            )
    return listing


def _check_snapshots(vault: Vault, report: VerifyReport, progress: Progress | None) -> None:
    ids = vault.snapshot_ids()
    seen_trees: set[bytes] = set()  # shared subtrees are checked once
    for n, sid in enumerate(ids):
        if progress:
            progress("snapshots", n, len(ids))
        report.bump("snapshots")
        key = SNAPSHOT_PREFIX + sid
        try:
            info = vault.load_snapshot(sid)
        except (IntegrityError, VaultError, BackendError) as exc:
            report.errors.append(Problem(key, f"snapshot unreadable: {exc}"))
            continue
        pending: list[bytes] = []
        try:
            for rec in walk_tree(vault.get_blob, info.tree, skip=seen_trees):
                report.bump("records")
                pending.extend(rec.blobs)
                if len(pending) >= 5000:
                    _check_indexed(vault, pending, key, report)
                    pending = []
        except (IntegrityError, VaultError, BackendError) as exc:
            report.errors.append(Problem(key, f"manifest tree unreadable: {exc}"))
        _check_indexed(vault, pending, key, report)


def _check_indexed(vault: Vault, ids: list[bytes], owner: str, report: VerifyReport) -> None:
    if not ids:
        return
    uniq = list(dict.fromkeys(ids))
    found = vault.index.existing(uniq)
    report.bump("references", len(ids))
    for b in uniq:
        if b not in found:
            report.errors.append(Problem(owner, f"references blob {b.hex()}, which no index holds"))


def _check_catalog(vault: Vault, report: VerifyReport) -> None:
    for info in vault.backend.list(CATALOG_PREFIX):
        report.bump("catalog_exports")
        try:
            exp = vault.load_catalog_export(info.key[len(CATALOG_PREFIX) :])
        except (IntegrityError, VaultError, BackendError) as exc:
            report.errors.append(Problem(info.key, f"catalog export unreadable: {exc}"))
            continue
        _check_indexed(vault, list(exp.blobs), info.key, report)


def _check_sealed_copies(vault: Vault, backend: Backend, report: VerifyReport, where: str) -> None:
    """A replica's snapshots and catalog descriptors must match their names and open."""
    for prefix, kind in ((SNAPSHOT_PREFIX, KIND_SNAPSHOT), (CATALOG_PREFIX, KIND_CATALOG)):
        for info in backend.list(prefix):
            name = info.key[len(prefix) :]
            try:
                open_object(vault.sealer, kind, backend.get(info.key), what=info.key, name=name)
            except (IntegrityError, BackendError) as exc:
                report.errors.append(Problem(info.key, str(exc), where))


def _read_packs(
    vault: Vault,
    backend: Backend,
    listing: dict[str, int],
    report: VerifyReport,
    where: str,
    subset: float | None,
    rng: random.Random,
    progress: Progress | None,
) -> None:
    packs = [p for p in vault.index.packs() if pack_object_key(p[1], p[0]) in listing]
    if subset is not None and packs:
        packs = rng.sample(packs, max(1, round(len(packs) * subset)))
    total = sum(p[3] for p in packs)
    done = 0
    codec = SegmentCodec()
    keys = [pack_object_key(cls, pack_id) for pack_id, cls, _salt, _size in packs]
    # The next pack downloads while this one is checked: a remote backend's latency overlaps
    # with the CPU work, and at most two packs are in memory.
    with ThreadPoolExecutor(1) as pool:
        upcoming: Future[bytes | BackendError] | None = (
            pool.submit(_download, backend, keys[0]) if keys else None
        )
        for i, (pack_id, _cls, _salt, size) in enumerate(packs):
            assert upcoming is not None
            data = upcoming.result()
            upcoming = pool.submit(_download, backend, keys[i + 1]) if i + 1 < len(keys) else None
            if progress:
                progress(f"read-data {where}", done, total)
            try:
                problems = check_pack_object(vault, backend, keys[i], pack_id, codec, data=data)
            except LevelNotAvailable as exc:
                report.warnings.append(Problem(keys[i], f"not read: {exc}", where))
                continue
            finally:
                del data
            report.bump(f"packs_read[{where}]")
            report.bump(f"bytes_read[{where}]", size)
            for msg in problems:
                report.errors.append(Problem(keys[i], msg, where))
            done += size
    if progress:
        progress(f"read-data {where}", total, total)


def _download(backend: Backend, key: str) -> bytes | BackendError:
    try:
        return backend.get(key)
    except BackendError as exc:
        return exc


def check_pack_object(
    vault: Vault,
    backend: Backend,
    key: str,
    pack_id: bytes,
    codec: SegmentCodec,
    *,
    data: bytes | BackendError | None = None,
) -> list[str]:
    """Every problem with one stored pack (empty list: sound and consistent with the index).
    ``data``: the pack's bytes (or the error fetching them) when already downloaded."""
    if data is None:
        data = _download(backend, key)
    if isinstance(data, ObjectNotFound):
        return ["pack is missing"]
    if isinstance(data, BackendError):
        return [f"pack unreadable: {data}"]
    try:
        header, problems = check_pack(
            data,
            vault.class_keys,
            vault.id_keys,
            codec,
            what="pack",
            expected_id=pack_id,
            expected_class=parse_pack_key(key)[0],
        )  # type: ignore[index]
    except LevelNotAvailable:
        raise
    except IntegrityError as exc:
        return [str(exc)]
    in_header = {e.blob_id: e for e in header.entries()}
    for entry in vault.index.pack_entries(pack_id):
        h = in_header.get(entry.blob_id)
        if h is None or (h.seg_offset, h.seg_length, h.offset, h.length) != (
            entry.seg_offset,
            entry.seg_length,
            entry.offset,
            entry.length,
        ):
            problems.append(f"index entry for blob {entry.blob_id.hex()} disagrees with the pack header")
    return problems
