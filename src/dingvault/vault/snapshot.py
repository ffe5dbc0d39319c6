"""Snapshots: a sealed root object pointing at a tree of manifest blobs.

The manifest is a sequence of records ``(item key, version blob ids, small metadata)``. Records
are packed into *leaf* blobs (~200 KiB of JSON lines); leaf ids are gathered into *node* blobs
(~70 children), and so on up to one root, with content-defined boundaries (see below) so that
consecutive snapshots share unchanged subtrees. Writing and reading both stream: a snapshot of
two million items never needs more than one open leaf and one open node per level in memory.

Leaf blob:  ``DVLF\\n`` then one JSON array per line: ``[key, [blob id hex, ...], meta-or-null]``
Node blob:  ``DVND\\n`` then one child blob id (hex) per line
Tree blobs live in ``meta`` packs (type ``tree``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .errors import IntegrityError

LEAF_MAGIC = b"DVLF\n"
NODE_MAGIC = b"DVND\n"
# Tree shape (a writer's choice; readers accept any shape). Boundaries are content-defined so
# that consecutive snapshots of a mostly unchanged, key-ordered manifest share almost all their
# tree blobs (stored once): a leaf ends after a record whose key's CRC-32 has its low 10 bits
# zero, once the leaf holds LEAF_MIN bytes (~1,500 records, ~200 KiB on average), or at
# LEAF_TARGET bytes at most; a node ends after a child whose id's first byte has its low 6 bits
# zero, once it holds NODE_MIN children (~70 on average), or at FANOUT children at most.
LEAF_MIN = 64 * 1024
LEAF_TARGET = 1024 * 1024
LEAF_CUT_MASK = 0x3FF
NODE_MIN = 8
NODE_CUT_MASK = 0x3F
FANOUT = 4096
SNAPSHOT_PREFIX = "snapshots/"


class ManifestRecord(NamedTuple):
    """One item of a snapshot: its key (e.g. ``approval/<id>``), the blob ids of its version,
    and optional small metadata (JSON-serialisable)."""

    key: str
    blobs: tuple[bytes, ...] | list[bytes]
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_id: str
    time: str
    host: str
    tags: tuple[str, ...]
    meta: dict[str, Any]
    tree: bytes
    records: int
    parent: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": 1,
                "time": self.time,
                "host": self.host,
                "tags": list(self.tags),
                "meta": self.meta,
                "tree": self.tree.hex(),
                "records": self.records,
                "parent": self.parent,
            }
        )

    @classmethod
    def from_json(cls, snapshot_id: str, raw: bytes) -> SnapshotInfo:
        try:
            doc = orjson.loads(raw)
            if doc.get("version") != 1:
                raise ValueError(f"unsupported snapshot version {doc.get('version')}")
            return cls(
                snapshot_id=snapshot_id,
                time=str(doc["time"]),
                host=str(doc.get("host", "")),
                tags=tuple(doc.get("tags", ())),
                meta=dict(doc.get("meta") or {}),
                tree=bytes.fromhex(doc["tree"]),
                records=int(doc["records"]),
                parent=doc.get("parent"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"snapshot {snapshot_id}: malformed ({exc})") from None


class TreeBuilder:
    """Streams records into leaf and node blobs through ``put`` (which stores a tree blob)."""

    def __init__(self, put: Callable[[bytes], bytes]) -> None:
        self._put = put
        # The open leaf's lines, newline-separated, in one buffer: a leaf holds thousands of lines,
        # and each line object would cost orjson's 4 KiB result buffer, not its ~150 bytes.
        self._leaf = bytearray()
        self._levels: list[list[bytes]] = [[]]  # level 0 holds leaf ids
        self.count = 0

    def add(self, rec: ManifestRecord | tuple) -> None:
        key, blobs = rec[0], rec[1]
        meta = rec[2] if len(rec) > 2 else None
        if not isinstance(key, str):
            raise TypeError(f"record key must be str, not {type(key).__name__}")
        line = orjson.dumps([key, [b.hex() for b in blobs], meta])
        if self._leaf:
            self._leaf += b"\n"
        self._leaf += line
        self.count += 1
        size = len(self._leaf) + 1  # each line and its separator (the last one's counted too)
        if size >= LEAF_TARGET or (size >= LEAF_MIN and zlib.crc32(key.encode()) & LEAF_CUT_MASK == 0):
            self._close_leaf()

    def _close_leaf(self) -> None:
        if not self._leaf:
            return
        blob_id = self._put(LEAF_MAGIC + self._leaf)  # bytes + bytearray is bytes: one copy
        self._leaf = bytearray()
        self._push(0, blob_id)

    def _push(self, level: int, blob_id: bytes) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(blob_id)
        n = len(self._levels[level])
        if n >= FANOUT or (n >= NODE_MIN and blob_id[0] & NODE_CUT_MASK == 0):
            node = self._node(self._levels[level])
            self._levels[level] = []
            self._push(level + 1, node)

    def _node(self, children: list[bytes]) -> bytes:
        return self._put(NODE_MAGIC + b"\n".join(c.hex().encode() for c in children))

    def finish(self) -> bytes:
        """The root blob id. An empty manifest is a single empty leaf."""
        if not self._leaf and self.count == 0:
            return self._put(LEAF_MAGIC)
        self._close_leaf()
        level = 0
        while True:
            pending = self._levels[level]
            higher = any(self._levels[level + 1 :])
            if not higher and len(pending) == 1:
                return pending[0]
            if pending:
                node = self._node(pending)
                self._levels[level] = []
                self._push(level + 1, node)
            level += 1


def parse_tree_blob(data: bytes, what: str) -> tuple[str, list]:
    """('leaf', records) or ('node', child ids)."""
    try:
        if data.startswith(LEAF_MAGIC):
            body = data[len(LEAF_MAGIC) :]
            recs = []
            for line in body.split(b"\n") if body else []:
                key, ids, meta = orjson.loads(line)
                recs.append(ManifestRecord(key, tuple(bytes.fromhex(i) for i in ids), meta))
            return "leaf", recs
        if data.startswith(NODE_MAGIC):
            body = data[len(NODE_MAGIC) :]
            return "node", [bytes.fromhex(x.decode()) for x in body.split(b"\n")] if body else []
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"{what}: malformed tree blob ({exc})") from None
    raise IntegrityError(f"{what}: not a tree blob")


def walk_tree(
    get: Callable[[bytes], bytes],
    root: bytes,
    *,
    on_tree_blob: Callable[[bytes], None] | None = None,
    skip: set[bytes] | None = None,
) -> Iterator[ManifestRecord]:
    """Records in order, depth-first, reading one tree blob at a time.

    ``skip``: tree blobs already handled (by walking an earlier snapshot); their subtrees are
    not read again, and each blob walked is added to the set. Verify and prune use it, so that
    snapshots sharing subtrees cost only their differences."""
    stack: list[Iterator[bytes]] = [iter([root])]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        if skip is not None:
            if nxt in skip:
                continue
            skip.add(nxt)
        if on_tree_blob is not None:
            on_tree_blob(nxt)
        kind, items = parse_tree_blob(get(nxt), f"tree blob {nxt.hex()}")
        if kind == "leaf":
            yield from items
        else:
            stack.append(iter(items))
