"""The engine's ``Store`` over the real vault (``dingvault.vault``) and catalog (``dingvault.catalog``).

Everything here runs on the engine's single storage thread. Blob ids are 32-byte keyed BLAKE3
digests in the vault; the catalog stores them as lowercase hex (``content_hash`` and the
``blob_ids`` of each attachment).

The snapshot of a run is streamed from the catalog's current state (every live item's latest
version, in item order): that *is* the previous snapshot merged with this run's changes, and it
never needs all items in memory. Each record is ``("<kind>/<source_id>", [version blob, attachment
chunk blobs...], {"v": <version seq>})``.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from dingvault.backup.payload import normalize_version_key
from dingvault.backup.stats import RunStats
from dingvault.backup.store_api import Commit, CommitResult, KnownVersion, VersionRecord
from dingvault.catalog import Catalog, CatalogInputError, RunErrorRecord, export_catalog
from dingvault.catalog import VersionRecord as CatalogVersion
from dingvault.vault import ManifestRecord, Vault

log = logging.getLogger(__name__)

CATALOG_EXPORT_TAG = "catalog"
_KNOWN_CHUNK = 500


class VaultCatalogStore:
    def __init__(self, vault: Vault, catalog: Catalog, *, tmp_dir: Path | None = None) -> None:
        self.vault = vault
        self.catalog = catalog
        self.tmp_dir = tmp_dir
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self.vault.writer()
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---- runs ---------------------------------------------------------------------------------
    def start_run(self, mode: str, families: Iterable[str]) -> int:
        # A run left "running" by a killed process is closed as interrupted: its committed work
        # is kept (cursors, versions) and this run resumes from there.
        self.catalog.mark_interrupted_runs()
        return self.catalog.start_run(mode, families)

    def load_cursors(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c.collector, c.container_key): dict(c.state) for c in self.catalog.list_cursors()}

    def finish_run(self, run_id: int, stats: RunStats) -> None:
        errors = [
            RunErrorRecord(error_class=f.error, message=f.message, kind=f"family:{f.family}")
            for f in stats.family_failures
        ]
        if errors:
            self.catalog.record_run_errors(run_id, errors)
        data = stats.to_dict()
        status = "succeeded" if stats.status == "ok" else "partial"
        if any(f.family == "*" for f in stats.family_failures):
            status = "failed"
        numeric = {
            "items": data["totals"],
            "api_calls": data["api_calls"],
            "api_errors": data["api_errors"],
            "api_retries": stats.api_retries,
            "bytes": stats.bytes_stored,
            "bytes_downloaded": stats.bytes_downloaded,
            "attachments_downloaded": stats.attachments_downloaded,
            "attachments_reused": stats.attachments_reused,
            "errors": len(stats.item_failures) + len(stats.family_failures),
            "seconds_ms": int(stats.seconds * 1000),
            "pipeline": data["pipeline"],
        }
        message = None
        if stats.family_failures:
            message = "; ".join(f"{f.family}: {f.error}: {f.message}" for f in stats.family_failures)[:4000]
        self.catalog.finish_run(run_id, status, error=message, stats=numeric)

    # ---- change detection ---------------------------------------------------------------------
    def known(self, kind: str, source_ids: list[str]) -> dict[str, KnownVersion]:
        out: dict[str, KnownVersion] = {}
        for sid, deleted, vkey, chash, atts in self.catalog.latest_states(kind, source_ids):
            previous = {}
            for a in atts:
                if isinstance(a, dict) and a.get("identity") and a.get("blob_ids"):
                    previous[a["identity"]] = (list(a["blob_ids"]), a.get("sha256"), a.get("size"))
            out[sid] = KnownVersion(vkey, chash, previous, deleted)
        return out

    # ---- blobs --------------------------------------------------------------------------------
    def put_attachment(self, stream: IO[bytes], level: str, size: int | None = None) -> list[str]:
        return [b.hex() for b in self.writer.put_stream(stream, level, size=size)]

    def put_version(self, payload: bytes, level: str) -> str:
        return self.writer.put_blob(payload, level).hex()

    def durable(self) -> None:
        self.writer.flush()

    # ---- the commit ---------------------------------------------------------------------------
    def commit(self, run_id: int, commit: Commit) -> CommitResult:
        """Everything in ``commit`` in ONE catalog transaction (retried whole if the catalog is busy):
        the cursors in it can never be ahead of the versions and marks they cover."""
        failures: list[RunErrorRecord] = [
            RunErrorRecord(error_class=f.error, message=f.message, kind=f.kind, source_id=f.source_id)
            for f in commit.failures
        ]
        group = self.catalog.group()
        kinds: list[str] = []
        for r in commit.versions:
            rec = _catalog_record(r, run_id)
            try:
                group.add_version(rec)
            except CatalogInputError as exc:  # a hostile id or odd field: kept as the run's error
                failures.append(
                    RunErrorRecord(
                        error_class="CatalogInputError",
                        message=str(exc),
                        kind=rec.kind,
                        source_id=rec.source_id[:500],
                    )
                )
            else:
                kinds.append(rec.kind)
        for kind, ids in _by_kind((kind, sid) for kind, sid, _container in commit.seen).items():
            group.mark_seen(kind, ids, run_id)
        for kind, ids in _by_kind(commit.deleted).items():
            group.mark_deleted(kind, ids, run_id)
        # Deletion detection: one statement set per kind for all its completely listed containers.
        for kind, containers in _by_kind(commit.complete).items():
            group.mark_unseen_deleted(kind, run_id, containers)
        for (collector, container), state in commit.cursors.items():
            group.set_cursor(collector, container, state, run_id)
        group.record_run_errors(run_id, failures)
        done = self.catalog.write_group(group)
        counts: dict[str, Counter[str]] = {"new": Counter(), "changed": Counter(), "unchanged": Counter()}
        for kind, outcome in zip(kinds, done.outcomes, strict=True):
            counts[outcome][kind] += 1
        return CommitResult(
            new=dict(counts["new"]),
            changed=dict(counts["changed"]),
            unchanged=dict(counts["unchanged"]),
            deleted=dict(done.deleted),
        )

    # ---- snapshot and export ------------------------------------------------------------------
    def _manifest(self, counts: Counter[str]) -> Iterator[ManifestRecord]:
        fromhex = bytes.fromhex
        for kind, source_id, seq, content_hash, attachments in self.catalog.iter_latest_blobs():
            blobs = [fromhex(content_hash)]
            for a in attachments:
                if isinstance(a, dict):
                    blobs.extend(fromhex(b) for b in a.get("blob_ids") or ())
            counts[kind] += 1
            yield ManifestRecord(f"{kind}/{source_id}", blobs, {"v": seq})

    def commit_snapshot(self, run_id: int) -> str:
        counts: Counter[str] = Counter()
        run = self.catalog.get_run(run_id)
        tags = [run.kind] if run else []
        sid = self.writer.commit_snapshot(self._manifest(counts), tags=tags, meta={"run_id": run_id})
        self.catalog.record_snapshot(sid, run_id, dict(counts))
        return sid

    def export_catalog(self, run_id: int) -> str | None:
        with tempfile.TemporaryFile(dir=self.tmp_dir) as fh:
            export_catalog(self.catalog, fh)
            fh.seek(0)
            return self.vault.put_catalog_export(CATALOG_EXPORT_TAG, fh)


def _by_kind(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for kind, value in pairs:
        grouped.setdefault(kind, []).append(value)
    return grouped


# ---- mapping the connector's normalised fields onto the catalog's columns --------------------------
_FIELD_MAP = {
    "title": "title",
    "owner": "owner_userid",
    "owner_userid": "owner_userid",
    "dept_id": "department",
    "department": "department",
    "created": "created_at",
    "created_at": "created_at",
    "modified": "modified_at",
    "modified_at": "modified_at",
}
_EXTRA_KEYS = ("name", "path", "status", "size", "sha256", "owner_id_type", "type")


def _clean_text(value: Any, limit: int) -> str:
    if type(value) is str and len(value) <= limit and "\x00" not in value:
        return value  # the usual case, without copies
    return str(value).replace("\x00", "\\x00")[:limit]


def _is_time(value: Any) -> bool:
    """What the catalog accepts as a time: epoch milliseconds, or ISO 8601 with an offset."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 10**14
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return parsed.tzinfo is not None
    return False


_FIELD_ITEMS = tuple(_FIELD_MAP.items())
_TIME_COLUMNS = ("created_at", "modified_at")


def _catalog_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Only what the catalog's columns accept, cleaned; the verbatim payload is in the vault.

    Runs once per record: exact type tests first, the general isinstance checks only for the
    unusual values (subclasses), with the same outcome.
    """
    out: dict[str, Any] = {}
    get = fields.get
    for key, column in _FIELD_ITEMS:
        value = get(key)
        if value is None or column in out:
            continue
        if column == "title":
            out[column] = _clean_text(value, 10_000)
        elif column in _TIME_COLUMNS:
            if _is_time(value):
                out[column] = value
            else:  # an unparseable time from the API: kept as text, not refused
                out[f"{key}_raw"] = _clean_text(value, 200)
        elif (
            type(value) is str
            or type(value) is int
            or (isinstance(value, str | int) and not isinstance(value, bool))
        ):
            out[column] = _clean_text(value, 128)
    for key in _EXTRA_KEYS:
        value = get(key)
        if value is None:
            continue
        kind = type(value)
        if kind is str:
            out[key] = _clean_text(value, 2000)
        elif kind is int or kind is float or kind is bool or isinstance(value, bool | int | float):
            out[key] = value
        elif isinstance(value, str):
            out[key] = _clean_text(value, 2000)
    return out


def _catalog_attachment(a: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    # The catalog wants one blob id per attachment; "-" marks content not stored (excluded by
    # scope, or an empty file). The verbatim name is in the vault; here it is made JSON/SQL-safe.
    out["blob_id"] = a["blob_ids"][0] if a.get("blob_ids") else "-"
    out["name"] = _clean_text(a.get("name") or "", 1000)
    return out


def _catalog_record(r: VersionRecord, run_id: int) -> CatalogVersion:
    return CatalogVersion(
        kind=r.kind,
        source_id=r.source_id,
        content_hash=r.content_hash,
        version_key=normalize_version_key(r.version_key),
        fields=_catalog_fields(r.fields),
        attachments=[_catalog_attachment(a) for a in r.attachments],
        level=r.level,
        run_id=run_id,
        size=r.size,
        container=r.container[:512] if r.container else None,
    )
