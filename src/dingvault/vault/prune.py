"""Prune: remove blobs that nothing needs any more, by rewriting packs.

Live = every blob reachable from a snapshot (tree blobs and the blobs its records name), every
blob of a catalog export, and every blob a hold names. Snapshots named by a hold must exist,
and every snapshot and export must be readable: if anything cannot be read, prune stops before
deleting anything, because it cannot know what that object needed.

Order (each step is safe to be killed after):
1. repack: live blobs of partly-dead packs are copied into new packs (stored, then synced);
2. a complete new index (kept packs + new packs) is written;
3. the old index files are deleted;
4. the rewritten and fully-dead packs (and unindexed leftovers of crashed writes) are deleted.
Killed before 3, the vault has two indexes naming valid packs; killed before 4, it has garbage
packs no index names. Neither loses data. Runs under the exclusive lock, so no writer is active.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import objects
from .errors import HoldViolation, IntegrityError, VaultError
from .holds import HoldProvider, held_blob_iter, held_snapshots
from .index import ENTRIES_PER_INDEX_FILE, INDEX_PREFIX, PackRecord, encode_index
from .levels import LEVELS
from .pack import BlobEntry, PackBuilder, SegmentCodec, check_pack, pack_object_key, parse_pack_key
from .snapshot import walk_tree
from .writer import PACK_TARGET, SEGMENT_TARGET

if TYPE_CHECKING:
    from .repository import Vault


@dataclass
class PruneReport:
    live_blobs: int = 0
    packs_kept: int = 0
    packs_rewritten: int = 0
    packs_deleted: int = 0
    unindexed_deleted: int = 0
    blobs_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    new_packs: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


def prune(
    vault: Vault,
    holds: HoldProvider | list[HoldProvider] | None = None,
    *,
    dry_run: bool = False,
    max_unused: float = 0.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> PruneReport:
    """``max_unused``: a pack whose unused fraction (by bytes) is at most this is kept as is
    (0.0: rewrite every pack with any unused blob)."""
    missing_levels = set(LEVELS) - set(vault.levels)
    if missing_levels:
        # Repacking needs every level's key; refuse before taking the lock or writing anything.
        raise VaultError(
            f"prune needs a key that holds every level; this one lacks {', '.join(sorted(missing_levels))}"
        )
    report = PruneReport(dry_run=dry_run)
    lock = vault.lock(exclusive=True)
    # Long prunes refresh the lock (it throttles itself) so other hosts never think it stale.
    tick = _ticker(lock, progress)
    with lock:
        vault.index.clear()
        vault.refresh_index()
        _fail_on_unreadable_index(vault)
        _mark_live(vault, holds, report, tick)
        backend = vault.backend
        old_index = vault.index_file_names()

        keep: list[tuple[bytes, object, bytes, int]] = []
        rewrite: list[tuple[bytes, object, bytes, int, list[BlobEntry]]] = []
        drop: list[str] = []
        indexed_keys = set()
        for pack_id, cls, salt, size in vault.index.packs():
            key = pack_object_key(cls, pack_id)
            indexed_keys.add(key)
            report.bytes_before += size
            entries = vault.index.pack_entries(pack_id)
            live = [e for e in entries if vault.index.is_marked(e.blob_id)]
            dead_bytes = sum(e.length for e in entries) - sum(e.length for e in live)
            total_bytes = sum(e.length for e in entries) or 1
            if not live:
                drop.append(key)
                report.blobs_removed += len(entries)
            elif len(live) == len(entries) or dead_bytes / total_bytes <= max_unused:
                keep.append((pack_id, cls, salt, size))
            else:
                rewrite.append((pack_id, cls, salt, size, live))
                report.blobs_removed += len(entries) - len(live)
        unindexed = [
            i.key
            for i in backend.list("data/")
            if parse_pack_key(i.key) is not None and i.key not in indexed_keys
        ]
        report.packs_kept = len(keep)
        report.packs_rewritten = len(rewrite)
        report.packs_deleted = len(drop)
        report.unindexed_deleted = len(unindexed)
        if dry_run:
            report.bytes_after = sum(k[3] for k in keep)
            return report

        new_records = _repack(vault, rewrite, tick)
        report.new_packs = len(new_records)
        backend.sync()

        # 2. the complete new index, in files of bounded size
        written = []
        batch: list[PackRecord] = []
        count = 0

        def emit() -> None:
            nonlocal batch, count
            if batch:
                name, data = objects.seal_object(vault.sealer, objects.KIND_INDEX, encode_index(batch))
                backend.put(INDEX_PREFIX + name, data, overwrite=True)
                written.append(name)
            batch, count = [], 0

        for pack_id, cls, salt, size in keep:
            entries = tuple(vault.index.pack_entries(pack_id))
            batch.append(PackRecord(pack_id, cls, salt, size, entries))  # type: ignore[arg-type]
            count += len(entries)
            if count >= ENTRIES_PER_INDEX_FILE:
                emit()
        for rec in new_records:
            batch.append(rec)
            count += len(rec.entries)
            if count >= ENTRIES_PER_INDEX_FILE:
                emit()
        emit()

        # 3. old index files, 4. packs nobody needs
        for name in old_index:
            if name not in written:
                backend.delete(INDEX_PREFIX + name)
        # The old index must be gone for good before the packs it names are: after a power loss
        # a surviving old index file must never point at a deleted pack.
        backend.sync()
        for key in [pack_object_key(r[1], r[0]) for r in rewrite] + drop + unindexed:  # type: ignore[arg-type]
            backend.delete(key)
        backend.sync()
        vault.index.clear()
        vault.refresh_index()
        report.bytes_after = vault.index.stats()["pack_bytes"]
        return report


def _ticker(
    lock: object, progress: Callable[[str, int, int], None] | None
) -> Callable[[str, int, int], None]:
    def tick(phase: str, done: int, total: int) -> None:
        lock.refresh()  # type: ignore[attr-defined]
        if progress:
            progress(phase, done, total)

    return tick


def _fail_on_unreadable_index(vault: Vault) -> None:
    for name in vault.index_file_names():
        try:
            vault.load_index_file(name)
        except IntegrityError as exc:
            raise VaultError(
                f"prune refused: index file {name} is unreadable ({exc}); run `vault repair` first"
            ) from None


def _mark_live(
    vault: Vault,
    holds: HoldProvider | list[HoldProvider] | None,
    report: PruneReport,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    idx = vault.index
    idx.mark_reset()
    snapshot_ids = vault.snapshot_ids()
    missing_held = held_snapshots(holds) - set(snapshot_ids)
    if missing_held:
        raise HoldViolation(
            f"prune refused: held snapshot(s) {', '.join(sorted(missing_held))} are missing from the vault"
        )
    buf: list[bytes] = []
    current = [0]

    def add(b: bytes) -> None:
        buf.append(b)
        if len(buf) >= 10_000:
            idx.mark(buf)
            buf.clear()
            if progress:  # also keeps the exclusive lock fresh during a huge snapshot
                progress("mark", current[0], len(snapshot_ids))

    seen_trees: set[bytes] = set()  # subtrees shared with an earlier snapshot are marked already
    for n, sid in enumerate(snapshot_ids):
        current[0] = n
        if progress:
            progress("mark", n, len(snapshot_ids))
        try:
            info = vault.load_snapshot(sid)
            for rec in walk_tree(vault.get_blob, info.tree, on_tree_blob=add, skip=seen_trees):
                for b in rec.blobs:
                    add(b)
        except (IntegrityError, VaultError) as exc:
            raise VaultError(
                f"prune refused: snapshot {sid} cannot be read ({exc}); run `vault repair` first"
            ) from None
    for exp in _catalog_exports_strict(vault):
        for b in exp.blobs:
            add(b)
    for b in held_blob_iter(holds):
        add(b)
    idx.mark(buf)
    report.live_blobs = idx.marked_count()


def _catalog_exports_strict(vault: Vault) -> list:
    from .repository import CATALOG_PREFIX

    out = []
    for info in vault.backend.list(CATALOG_PREFIX):
        try:
            out.append(vault.load_catalog_export(info.key[len(CATALOG_PREFIX) :]))
        except (IntegrityError, VaultError) as exc:
            raise VaultError(
                f"prune refused: {info.key} cannot be read ({exc}); run `vault repair` first"
            ) from None
    return out


def _repack(
    vault: Vault, rewrite: list, progress: Callable[[str, int, int], None] | None
) -> list[PackRecord]:
    codec = SegmentCodec()
    out: list[PackRecord] = []
    builders: dict = {}
    entries: dict = {}
    pending: dict = {}

    def close_segment(cls: object) -> None:
        blobs = pending.pop(cls, [])
        if not blobs:
            return
        b = builders.get(cls)
        if b is None:
            b = builders[cls] = PackBuilder(cls, vault.class_key(cls), codec, os.urandom(32))  # type: ignore[arg-type]
            entries[cls] = []
        entries[cls].extend(b.add_segment(blobs))
        if b.size >= PACK_TARGET:
            close_pack(cls)

    def close_pack(cls: object) -> None:
        b = builders.pop(cls)
        pack_id, data = b.finish()
        vault.backend.put(pack_object_key(cls, pack_id), data, sync=False)  # type: ignore[arg-type]
        out.append(PackRecord(pack_id, cls, b.salt, len(data), tuple(entries.pop(cls))))  # type: ignore[arg-type]

    for n, (pack_id, cls, _salt, _size, live) in enumerate(rewrite):
        if progress:
            progress("repack", n, len(rewrite))
        key = pack_object_key(cls, pack_id)
        data = vault.backend.get(key)
        header, problems = check_pack(
            data, vault.class_keys, vault.id_keys, codec, what=key, expected_id=pack_id, expected_class=cls
        )
        if problems:
            # Copying blobs out of a damaged pack could spread the damage; repair first.
            raise VaultError(f"prune refused: {key} is damaged ({problems[0]}); run `vault repair` first")
        # Decode each needed segment once, then copy the live blobs into new segments.
        wanted = {e.blob_id for e in live}
        from .pack import pack_aead

        aead = pack_aead(vault.class_key(cls), header.salt)
        for seg in header.segments:
            if not any(bid in wanted for bid, _t, _l in seg.blobs):
                continue
            plain = codec.decode(
                aead,
                seg.offset,
                data[seg.offset : seg.offset + seg.stored_length],
                seg.plain_length,
                what=key,
            )
            pos = 0
            for bid, btype, length in seg.blobs:
                if bid in wanted:
                    lst = pending.setdefault(cls, [])
                    lst.append((bid, btype, plain[pos : pos + length]))
                    if sum(len(x[2]) for x in lst) >= SEGMENT_TARGET:
                        close_segment(cls)
                    wanted.discard(bid)  # a blob listed twice is copied once
                pos += length
    for cls in list(pending):
        close_segment(cls)
    for cls in list(builders):
        close_pack(cls)
    return out
