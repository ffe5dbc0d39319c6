"""Repair: make the primary whole again, from its own packs and from a healthy replica.

1. Damaged or missing packs (found by a read-data verify) are fetched from ``source`` (a replica's
   backend), checked completely (name hash, header, every blob), and stored over the bad copy.
2. Damaged index files are replaced by the replica's identical copy when it has one; otherwise
   they are dropped and the packs they covered are re-indexed from the pack headers.
3. Packs no index names (an interrupted write, a lost index) are indexed from their headers.
4. Damaged snapshot and catalog objects are replaced by the replica's identical copy.

Key slots are never copied back (that could resurrect a revoked passphrase), and objects missing
from the primary but present on the replica are not copied back either (a forgotten snapshot
must stay forgotten); ``replicate`` in reverse is the tool for a full restore of a lost primary.
Runs under the exclusive lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import objects
from .backends.base import Backend, BackendError, ObjectNotFound
from .errors import IntegrityError, LevelNotAvailable
from .index import INDEX_PREFIX, PackRecord, encode_index
from .pack import SegmentCodec, check_pack, parse_pack_key
from .repository import CATALOG_PREFIX
from .snapshot import SNAPSHOT_PREFIX
from .verify import ReplicaTarget, VerifyReport, verify

if TYPE_CHECKING:
    from .repository import Vault


@dataclass
class RepairReport:
    actions: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    before: VerifyReport | None = None
    after: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return not self.unrepaired and (self.after is None or self.after.ok)


def repair(
    vault: Vault,
    source: Backend | Sequence[Backend] | None = None,
    *,
    read_data: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> RepairReport:
    """``source``: a replica's backend, or several (tried in order; the first sound copy wins)."""
    report = RepairReport()
    codec = SegmentCodec()
    sources: list[Backend] = (
        [] if source is None else [source] if not isinstance(source, Sequence) else list(source)
    )
    with vault.lock(exclusive=True):
        before = verify(vault, read_data=read_data, progress=progress)
        report.before = before
        backend = vault.backend

        # 1. packs
        bad_packs = sorted({p.object for p in before.errors if parse_pack_key(p.object) is not None})
        for key in bad_packs:
            if not sources:
                report.unrepaired.append(
                    f"{key}: damaged or missing, and no replica was given to repair from"
                )
                continue
            found = _sound_pack_copy(vault, sources, key, codec)
            if isinstance(found, str):
                report.unrepaired.append(f"{key}: {found}")
                continue
            data, src = found
            backend.put(key, data, overwrite=True)
            report.actions.append(f"{key}: replaced from {src.url}")

        # 2. index files
        bad_index = sorted({p.object for p in before.errors if p.object.startswith(INDEX_PREFIX)})
        dropped = []
        for key in bad_index:
            src = _copy_if_valid(vault, sources, key, objects.KIND_INDEX)
            if src is not None:
                report.actions.append(f"{key}: replaced from {src.url}")
            else:
                dropped.append(key)

        # 3. packs that no (good) index names
        covered: set[bytes] = set()
        for name in vault.index_file_names():
            if INDEX_PREFIX + name in dropped:
                continue
            try:
                covered.update(p.pack_id for p in vault.load_index_file(name))
            except IntegrityError:
                continue
        records: list[PackRecord] = []
        for info in backend.list("data/"):
            parsed = parse_pack_key(info.key)
            if parsed is None or parsed[1] in covered:
                continue
            try:
                data = backend.get(info.key)
                header, problems = check_pack(
                    data,
                    vault.class_keys,
                    vault.id_keys,
                    codec,
                    what=info.key,
                    expected_id=parsed[1],
                    expected_class=parsed[0],
                )
            except (IntegrityError, BackendError, LevelNotAvailable) as exc:
                report.unrepaired.append(f"{info.key}: not in any index and unreadable ({exc})")
                continue
            if problems:
                report.unrepaired.append(f"{info.key}: not in any index and damaged ({problems[0]})")
                continue
            records.append(
                PackRecord(parsed[1], header.storage_class, header.salt, len(data), tuple(header.entries()))
            )
        if records:
            name, data = objects.seal_object(vault.sealer, objects.KIND_INDEX, encode_index(records))
            backend.put(INDEX_PREFIX + name, data, overwrite=True)
            report.actions.append(
                f"{INDEX_PREFIX}{name}: new index for {len(records)} pack(s) rebuilt from their headers"
            )
        for key in dropped:
            backend.delete(key)
            report.actions.append(f"{key}: damaged index file removed (its packs are re-indexed)")

        # 4. snapshots and catalog descriptors
        for prob in before.errors:
            key = prob.object
            for prefix, kind in (
                (SNAPSHOT_PREFIX, objects.KIND_SNAPSHOT),
                (CATALOG_PREFIX, objects.KIND_CATALOG),
            ):
                # Only the object itself: a tree that failed to read because its index was lost
                # is fixed by step 3, not by copying the snapshot.
                if key.startswith(prefix) and prob.message.startswith(
                    ("snapshot unreadable", "catalog export unreadable")
                ):
                    src = _copy_if_valid(vault, sources, key, kind)
                    if src is not None:
                        report.actions.append(f"{key}: replaced from {src.url}")
                    else:
                        report.unrepaired.append(f"{key}: {prob.message}")

        vault.index.clear()
        vault.refresh_index()
    report.after = verify(vault, read_data=read_data, progress=progress)
    for prob in report.after.errors:
        msg = str(prob)
        if msg not in report.unrepaired:
            report.unrepaired.append(msg)
    return report


def _sound_pack_copy(
    vault: Vault, sources: list[Backend], key: str, codec: SegmentCodec
) -> tuple[bytes, Backend] | str:
    """The first copy of pack ``key`` that passes every check, or why none did."""
    parsed = parse_pack_key(key)
    assert parsed is not None
    reasons = []
    for src in sources:
        try:
            data = src.get(key)
            _, problems = check_pack(
                data,
                vault.class_keys,
                vault.id_keys,
                codec,
                what=key,
                expected_id=parsed[1],
                expected_class=parsed[0],
            )
        except ObjectNotFound:
            reasons.append(f"{src.url} does not hold it")
            continue
        except (IntegrityError, BackendError, LevelNotAvailable) as exc:
            reasons.append(f"{src.url}'s copy is unusable ({exc})")
            continue
        if problems:
            reasons.append(f"{src.url}'s copy is damaged too ({problems[0]})")
            continue
        return data, src
    return "no sound copy: " + "; ".join(reasons)


def _copy_if_valid(vault: Vault, sources: list[Backend], key: str, kind: bytes) -> Backend | None:
    name = key.rsplit("/", 1)[-1]
    for src in sources:
        try:
            data = src.get(key)
            objects.open_object(vault.sealer, kind, data, what=key, name=name)
        except (ObjectNotFound, IntegrityError, BackendError):
            continue
        vault.backend.put(key, data, overwrite=True)
        return src
    return None


def repair_from_replica(vault: Vault, replica: ReplicaTarget, **kw: object) -> RepairReport:
    return repair(vault, replica.backend, **kw)  # type: ignore[arg-type]
