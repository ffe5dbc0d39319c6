"""Run statistics: what a run did, per kind and per family, and what went wrong.

Recorded in the catalog's run row (as JSON) and printed by ``dingvault backup`` / ``status``.
Per-item failures are kept as a list of ``ItemFailure`` (never silently lost); a family that stops
(quota spent, permission missing) is a ``FamilyFailure``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ItemFailure:
    kind: str
    source_id: str
    error: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "source_id": self.source_id, "error": self.error, "message": self.message}


@dataclass
class FamilyFailure:
    family: str
    error: str
    message: str
    stopped: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "error": self.error, "message": self.message, "stopped": self.stopped}


@dataclass
class RunStats:
    mode: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    new: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    skipped_content: Counter[str] = field(default_factory=Counter)  # attachments excluded by scope
    api_calls: Counter[str] = field(default_factory=Counter)
    # Error answers the client met (and retried or reported), per "endpoint code", e.g. a
    # malformed JSON body or an HTML page where JSON was expected.
    api_errors: Counter[str] = field(default_factory=Counter)
    api_retries: int = 0
    bytes_downloaded: int = 0
    bytes_stored: int = 0  # plaintext bytes handed to the vault (before dedupe/compression)
    attachments_downloaded: int = 0
    attachments_reused: int = 0
    item_failures: list[ItemFailure] = field(default_factory=list)
    family_failures: list[FamilyFailure] = field(default_factory=list)
    families_done: list[str] = field(default_factory=list)
    snapshot_id: str | None = None
    catalog_export_id: str | None = None
    # What set the run's pace (see `pipeline`): seconds the storage side (vault and catalog writes)
    # waited for records to store, seconds fetching waited for the records ahead of it to be
    # stored (the engine's limit on records in flight was reached), and of the storage side's
    # time, seconds spent waiting for a catalog commit to end. Then the records held between a
    # collector page and the vault: the engine's limit, the peak and the mean over the run.
    storage_idle: float = 0.0
    fetch_wait: float = 0.0
    commit_wait: float = 0.0
    # Processor time this process used during the run, every thread (more than the run's
    # seconds when threads ran side by side): whether fetching was slow for want of the processor.
    cpu_seconds: float = 0.0
    in_flight_limit: int = 0
    in_flight_peak: int = 0
    in_flight_mean: float = 0.0

    # Failures are listed in full up to this many; beyond it they are counted (the counters stay exact).
    MAX_LISTED_FAILURES = 1000

    def add_failure(self, failure: ItemFailure) -> None:
        self.failed[failure.kind] += 1
        if len(self.item_failures) < self.MAX_LISTED_FAILURES:
            self.item_failures.append(failure)

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def items_seen(self) -> int:
        return sum(self.new.values()) + sum(self.changed.values()) + sum(self.unchanged.values())

    @property
    def status(self) -> str:
        if self.family_failures or self.failed:
            return "partial"
        return "ok"

    def totals(self) -> dict[str, int]:
        return {
            "new": sum(self.new.values()),
            "changed": sum(self.changed.values()),
            "unchanged": sum(self.unchanged.values()),
            "deleted": sum(self.deleted.values()),
            "failed": sum(self.failed.values()),
        }

    def to_dict(self) -> dict[str, Any]:
        kinds = sorted(
            set(self.new) | set(self.changed) | set(self.unchanged) | set(self.deleted) | set(self.failed)
        )
        return {
            "mode": self.mode,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "per_kind": {
                k: {
                    "new": self.new[k],
                    "changed": self.changed[k],
                    "unchanged": self.unchanged[k],
                    "deleted": self.deleted[k],
                    "failed": self.failed[k],
                }
                for k in kinds
            },
            "api_calls": dict(sorted(self.api_calls.items())),
            "api_calls_total": sum(self.api_calls.values()),
            "api_errors": dict(sorted(self.api_errors.items())),
            "api_retries": self.api_retries,
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_stored": self.bytes_stored,
            "attachments_downloaded": self.attachments_downloaded,
            "attachments_reused": self.attachments_reused,
            "skipped_content": dict(self.skipped_content),
            "item_failures": [f.to_dict() for f in self.item_failures],
            "family_failures": [f.to_dict() for f in self.family_failures],
            "families_done": sorted(self.families_done),
            "snapshot_id": self.snapshot_id,
            "catalog_export_id": self.catalog_export_id,
            "pipeline": self.pipeline(),
        }

    def _share(self, seconds: float) -> float:
        """``seconds`` as a share (0-1) of the run."""
        total = self.seconds
        return round(max(0.0, min(1.0, seconds / total)), 3) if total > 0 else 0.0

    def pipeline(self) -> dict[str, float]:
        return {
            "storage_idle_seconds": round(self.storage_idle, 3),
            "storage_idle_share": self._share(self.storage_idle),
            "fetch_wait_seconds": round(self.fetch_wait, 3),
            "fetch_wait_share": self._share(self.fetch_wait),
            "commit_wait_seconds": round(self.commit_wait, 3),
            "commit_wait_share": self._share(self.commit_wait),
            "cpu_seconds": round(self.cpu_seconds, 3),
            # Cores' worth of processor time over the run (1.0 = one core busy all run).
            "cpu_cores": round(self.cpu_seconds / self.seconds, 3) if self.seconds > 0 else 0.0,
            "in_flight_limit": self.in_flight_limit,
            "in_flight_peak": self.in_flight_peak,
            "in_flight_mean": round(self.in_flight_mean, 1),
        }
