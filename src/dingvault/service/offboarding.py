"""Offboarding: when ``user_leave_org`` arrives, keep everything of that person, and say what it is.

1. **Capture now**: an incremental of every family that holds a person's records (contacts -
   the user record and the resigned-employee record -, approvals, files, calendar, todo,
   reports). What was captured before stays in the vault whatever the API answers now; the user
   record in particular is the last version taken while the person was still in the directory
   (DingTalk drops them from the user APIs at once).
2. **Hold**: a hold labelled ``offboarding`` on the snapshot that run produced (and the latest
   one before it), recorded in the catalog's holds for ``hold_days`` (so it is in the catalog
   export, and a machine rebuilt from the vault still has it); ``ServiceHolds`` gives it to the
   vault's prune, which then keeps every blob those snapshots reference.
3. **Hand-over summary**: what the person owned, per kind, with titles - a JSON document in
   ``<home>/handover/<userid>-<date>.json`` for the manager, and the same in the hold record.

The robot conversations of the person are in the vault already (robot messages are captured as
they arrive); the summary counts those whose sender is the person.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dingvault.catalog import CatalogHolds
from dingvault.service.state import ServiceState

log = logging.getLogger(__name__)

PERSONAL_FAMILIES = ("contacts", "approvals", "files", "calendar", "todo", "reports")
HOLD_LABEL = "offboarding"


class Offboarding:
    def __init__(
        self,
        coordinator: Any,
        state: ServiceState,
        home: Path,
        *,
        hold_days: int = 365,
        alerts: Any = None,
        holds: CatalogHolds | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.state = state
        self.home = Path(home)
        self.hold_days = hold_days
        self.alerts = alerts
        self.holds = holds if holds is not None else CatalogHolds(coordinator.session.catalog)

    async def handle(self, userids: list[str]) -> list[dict[str, Any]]:
        fresh = [u for u in dict.fromkeys(userids) if not self.state.get(f"offboarded:{u}")]
        if not fresh:
            self._forget_pending(userids)
            return []
        before = self._latest_snapshot()
        stats = await self.coordinator.backup_families("incremental", PERSONAL_FAMILIES, label="offboarding")
        summaries = []
        for userid in fresh:
            summary = self.summary(userid)
            summary["capture"] = {"status": stats.status, "snapshot": stats.snapshot_id}
            snapshots = [s for s in (stats.snapshot_id, before) if s]
            until = time.time() + self.hold_days * 86400
            hold_id = self.holds.add(
                HOLD_LABEL, f"user/{userid}", datetime.fromtimestamp(until, UTC), snapshots, summary
            )
            summary["hold"] = {"id": hold_id, "label": HOLD_LABEL, "until": until, "snapshots": snapshots}
            path = self._write(userid, summary)
            self.state.put(f"offboarded:{userid}", {"at": time.time(), "hold": hold_id, "summary": str(path)})
            log.info("offboarding %s: hold %d on %s, summary %s", userid, hold_id, snapshots, path)
            summaries.append(summary)
        self._forget_pending(userids)
        return summaries

    def _forget_pending(self, userids: list[str]) -> None:
        pending = [u for u in self.state.get("offboarding_pending") or [] if u not in set(userids)]
        self.state.put("offboarding_pending", pending)

    def _latest_snapshot(self) -> str | None:
        snaps = self.coordinator.session.catalog.list_snapshots(limit=1)
        return getattr(snaps[0], "vault_snapshot_id", None) if snaps else None

    def summary(self, userid: str) -> dict[str, Any]:
        catalog = self.coordinator.session.catalog
        per_kind: Counter[str] = Counter()
        titles: dict[str, list[str]] = {}
        for v in catalog.iter_latest_versions(include_deleted=True):
            if v.owner_userid != userid:
                continue
            per_kind[v.kind] += 1
            shown = titles.setdefault(v.kind, [])
            if len(shown) < 50:
                shown.append(v.title or v.source_id)
        user = catalog.get_item("user", userid)
        return {
            "userid": userid,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "user_record_kept": user is not None,
            "items_per_kind": dict(sorted(per_kind.items())),
            "titles": titles,
        }

    def _write(self, userid: str, summary: dict[str, Any]) -> Path:
        folder = self.home / "handover"
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in userid)
        path = folder / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        return path
