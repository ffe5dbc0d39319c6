"""Small in-memory stand-ins for the engine's tests: a Store and a scripted collector."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Any

from dingvault.backup.stats import RunStats
from dingvault.backup.store_api import Commit, CommitResult, KnownVersion
from dingvault.source.items import AttachmentRef, Batch, CompleteListing, CursorUpdate, Item


class MemoryStore:
    """Blobs in a dict; "durable" blobs only after durable(); catalog rows in dicts."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.unflushed: dict[str, bytes] = {}
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: list[tuple[str, str, str]] = []  # (kind, source_id, content_hash)
        self.cursors: dict[tuple[str, str], dict[str, Any]] = {}
        self.errors: list[Any] = []
        self.runs: dict[int, RunStats | None] = {}
        self.snapshots: list[list[tuple[str, str, str]]] = []
        self.fail_put_after: int | None = None
        self.puts = 0
        self.lock = threading.Lock()

    def start_run(self, mode, families):
        run_id = len(self.runs) + 1
        self.runs[run_id] = None
        return run_id

    def load_cursors(self):
        return dict(self.cursors)

    def known(self, kind, source_ids):
        out = {}
        for sid in source_ids:
            row = self.items.get((kind, sid))
            if row:
                out[sid] = KnownVersion(row["version_key"], row["hash"], row["atts"], row["deleted"])
        return out

    def _put(self, data: bytes) -> str:
        self.puts += 1
        if self.fail_put_after is not None and self.puts > self.fail_put_after:
            raise OSError(28, "No space left on device")
        h = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.unflushed[h] = data
        return h

    def put_attachment(self, stream, level, size=None):
        return [self._put(stream.read())]

    def put_version(self, payload, level):
        return self._put(payload)

    def durable(self):
        with self.lock:  # puts may go on meanwhile on another thread
            self.blobs.update(self.unflushed)
            self.unflushed.clear()

    def commit(self, run_id, commit: Commit) -> CommitResult:
        res = CommitResult()
        new, changed, unchanged, deleted = Counter(), Counter(), Counter(), Counter()
        for v in commit.versions:
            assert v.content_hash in self.blobs, "catalog must never reference a non-durable blob"
            for a in v.attachments:
                assert all(b in self.blobs for b in a["blob_ids"])
            row = self.items.get((v.kind, v.source_id))
            if row and row["hash"] == v.content_hash:
                unchanged[v.kind] += 1
                row.update(deleted=False, seen=run_id, container=v.container)
                continue
            (changed if row else new)[v.kind] += 1
            self.versions.append((v.kind, v.source_id, v.content_hash))
            self.items[(v.kind, v.source_id)] = {
                "version_key": v.version_key,
                "hash": v.content_hash,
                "deleted": False,
                "seen": run_id,
                "container": v.container,
                "atts": {a["identity"]: (a["blob_ids"], a["sha256"], a["size"]) for a in v.attachments},
            }
        for kind, sid, _container in commit.seen:
            self.items[(kind, sid)]["seen"] = run_id
        for kind, sid in commit.deleted:
            row = self.items.get((kind, sid))
            if row and not row["deleted"]:
                row["deleted"] = True
                deleted[kind] += 1
        for kind, container in commit.complete:
            for (k, _sid), row in self.items.items():
                if (
                    k == kind
                    and row["container"] == container
                    and row["seen"] != run_id
                    and not row["deleted"]
                ):
                    row["deleted"] = True
                    deleted[kind] += 1
        self.cursors.update(commit.cursors)
        self.errors.extend(commit.failures)
        res.new, res.changed, res.unchanged, res.deleted = (
            dict(new),
            dict(changed),
            dict(unchanged),
            dict(deleted),
        )
        return res

    def finish_run(self, run_id, stats):
        self.runs[run_id] = stats

    def commit_snapshot(self, run_id):
        snap = sorted((k, s, r["hash"]) for (k, s), r in self.items.items() if not r["deleted"])
        self.snapshots.append(snap)
        return f"snap{len(self.snapshots)}"

    def export_catalog(self, run_id):
        return None


def make_item(kind: str, sid: str, version: str, container: str = "c1", attachments=()) -> Item:
    return Item(
        kind=kind,
        source_id=sid,
        raw={"detail": {"id": sid, "v": version}},
        fields={"title": sid},
        version_key=version,
        attachments=list(attachments),
        container=container,
    )


class ScriptedCollector:
    """Yields the batches of `pages`, resuming after the page its cursor says; serves attachments."""

    chunk_size = 7  # bytes per downloaded chunk: small, so a download takes many steps

    def __init__(
        self,
        name: str,
        family: str,
        pages: list[list[Item]],
        *,
        contents=None,
        fail_refs=(),
        complete: list[CompleteListing] | None = None,
        raise_after: Exception | None = None,
        deleted: list[str] | None = None,
    ) -> None:
        self.name, self.family, self.pages = name, family, pages
        self.contents = contents or {}
        self.fail_refs = set(fail_refs)
        self.complete = complete
        self.raise_after = raise_after
        self.deleted = deleted
        self.downloads: Counter[str] = Counter()
        self.modes: list[str] = []

    async def collect(self, *, mode, cursors, scope):
        self.modes.append(mode)
        start = (cursors.get((self.name, "")) or {}).get("page", 0)
        for n, page in enumerate(self.pages[start:], start=start):
            last = n == len(self.pages) - 1
            yield Batch(
                items=[i for i in page if scope.includes_kind(i.kind)],
                cursor=CursorUpdate(self.name, "", {"page": n + 1}),
                complete=self.complete if last else None,
                deleted=self.deleted if last else None,
            )
        if self.raise_after is not None:
            raise self.raise_after

    async def open_attachment(self, ref: AttachmentRef):
        key = ref.ref["id"]
        self.downloads[key] += 1
        if key in self.fail_refs:
            raise ConnectionError(f"download of {key} failed for good")
        data = self.contents[key]
        for i in range(0, len(data), self.chunk_size):
            yield data[i : i + self.chunk_size]


def att(ident: str, name: str = "a.pdf", size: int | None = None) -> AttachmentRef:
    return AttachmentRef(name=name, size=size, ref={"id": ident}, kind="approval_attachment")
