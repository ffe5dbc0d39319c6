"""The run coordinator: every backup run the service makes goes through here, one at a time.

Three sources of runs, one lock (runs never overlap, so cursors and snapshots stay linear):

* **event-driven** - ``process_pending()`` drains the durable inbox, plans targeted fetches and
  family incrementals (``targeted.plan_events``), runs them in one small engine run, and marks
  the events handled only after the run committed (vault durable, catalog written). Events of a
  failed part stay pending and are retried with back-off; after ``max_attempts`` they are marked
  failed and alerted on, never silently dropped.
* **catch-up** - after a Stream gap (or at start-up, after downtime) an incremental of every
  family covers what no event will re-announce.
* **scheduled** - the scheduler's incrementals and fulls.

After each committed run the replicator is told (``notify()``), families' last good capture is
recorded (staleness alerts), and the capture latency of each event is observed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dingvault.backup.engine import BackupEngine
from dingvault.backup.session import Session, engine_settings
from dingvault.backup.stats import RunStats
from dingvault.backup.vault_store import VaultCatalogStore
from dingvault.service.fetch_common import VaultLookup
from dingvault.service.state import InboxEvent, ServiceState
from dingvault.service.targeted import (
    APPROVAL_EVENTS,
    EventPlan,
    event_item_key,
    family_for,
    is_direct,
    plan_events,
    targeted_collectors,
)
from dingvault.source.collectors import COLLECTOR_CLASSES, CollectorSettings, build_collectors

log = logging.getLogger(__name__)


class RunCoordinator:
    def __init__(
        self,
        session: Session,
        state: ServiceState,
        *,
        metrics: Any = None,
        alerts: Any = None,
        batch_seconds: float = 0.2,
        max_attempts: int = 8,
        followup_seconds: float = 60.0,
        client_overrides: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
        on_committed: Callable[[RunStats, list[InboxEvent]], None] | None = None,
        on_leavers: Callable[[list[str]], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.state = state
        self.metrics = metrics
        self.alerts = alerts
        self.batch_seconds = batch_seconds
        self.max_attempts = max_attempts
        self.client_overrides = dict(client_overrides or {})
        # Event runs commit at once: they are small, and latency is their point.
        self.engine_options = {"commit_seconds": 0.05, **(engine_options or {})}
        self.on_committed = on_committed
        self.on_leavers = on_leavers
        self.clock = clock
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._catchup_since: float | None = None
        self._client: Any = None
        self._failures = 0
        self.followup_seconds = followup_seconds
        self._followups: dict[str, float] = {}  # family -> when its follow-up run is due
        self._followup_tries: dict[str, int] = {}
        self.runs: list[tuple[str, str, float]] = []  # (mode or "events", status, finished), newest last
        # What targeted fetches look up in the vault (who a unionId is, as whom a space is read).
        self.lookup = VaultLookup(session.catalog, session.vault)
        # (event type, event time -> durable locally, seconds) of recent events, for bench/rpo.py.
        self.latencies: deque[tuple[str, float]] = deque(maxlen=200_000)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        from dingvault.source.client import DingTalkClient

        self._client = DingTalkClient(self.session.client_config(**self.client_overrides))
        await self._client.__aenter__()

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.__aexit__(None, None, None)
            self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("RunCoordinator.open() first")
        return self._client

    def notify(self) -> None:
        """New events are durable in the inbox (called on the event loop)."""
        self._wake.set()

    def request_catchup(self, since: float) -> None:
        """A gap from ``since`` (epoch s): run an incremental of every family soon."""
        self._catchup_since = since if self._catchup_since is None else min(self._catchup_since, since)
        self._wake.set()

    @property
    def catchup_pending(self) -> bool:
        return self._catchup_since is not None

    async def loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            if stop.is_set():
                break
            try:
                if self.batch_seconds:
                    await asyncio.sleep(self.batch_seconds)  # let a burst gather into one run
                await self.process_pending()
                if self._catchup_since is not None:
                    await self.catch_up()
                await self.run_due_followups()
                self._failures = 0
            except Exception as exc:
                self._failures += 1
                delay = min(60.0, 0.5 * 2 ** min(self._failures, 7))
                log.error(
                    "event processing failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                self._wake.set()

    # ---- event-driven runs ----------------------------------------------------------------------
    async def process_pending(self, limit: int = 5000) -> int:
        """Capture every pending inbox event; returns how many were handled."""
        handled = 0
        while True:
            events = await asyncio.to_thread(self.state.pending, limit)
            if self.metrics is not None:
                self.metrics.inbox_pending.set(len(events))
            if not events:
                return handled
            handled += await self._handle(events)
            if len(events) < limit:
                return handled

    async def _handle(self, events: list[InboxEvent]) -> int:
        # Records read directly (approvals, robot messages, a user, a department, a file, the
        # changed calendars) commit in a run of their own first: a family incremental in the same
        # slice (seconds for calendars or todos of every user) must not hold back what takes
        # milliseconds to fetch.
        direct = [e for e in events if is_direct(e)]
        family = [e for e in events if not is_direct(e)]
        handled = 0
        for group in (direct, family):
            if group:
                handled += await self._handle_group(group)
        return handled

    async def _handle_group(self, events: list[InboxEvent]) -> int:
        plan = plan_events(events)
        by_id = {e.id: e for e in events}
        if plan.malformed:
            log.warning(
                "%d events without the fields to act on (kept as handled): %s",
                len(plan.malformed),
                plan.malformed[:5],
            )
        if plan.empty:
            await asyncio.to_thread(self.state.mark_done, list(by_id))
            self._count("ignored", len(events))
            return len(events)
        try:
            stats = await self.run_events(plan)
        except Exception as exc:
            # The run as a whole failed (vault unwritable, DingTalk unreachable): every event of
            # the slice stays pending, with an attempt counted, so none is retried forever.
            given_up = await asyncio.to_thread(
                self.state.mark_failed, list(by_id), f"{type(exc).__name__}: {exc}", self.max_attempts
            )
            if given_up and self.alerts is not None:
                self.alerts.raise_(
                    "events-failed",
                    f"{len(given_up)} events could not be captured",
                    f"{type(exc).__name__}: {exc}",
                )
            raise
        # A family that read some parts but not others (IncompleteCollection) stored what it read
        # and kept the cursors of the failed parts: its events are handled, and a follow-up run
        # of the family retries the failed parts later (with back-off) instead of the events
        # being replayed again and again.
        incomplete = {f.family for f in stats.family_failures if f.error == "IncompleteCollection"}
        for fam in incomplete:
            self._schedule_followup(fam)
        failed_families = {f.family for f in stats.family_failures} - incomplete
        failed_ids = {(f.kind, f.source_id) for f in stats.item_failures}
        retry: list[str] = []
        done: list[str] = []
        for e in events:
            family = _event_family(e)
            # A record stored without its attachments (no cursor holds it for a later run): the
            # event stays pending and is retried.
            item_failed = event_item_key(e) in failed_ids
            if "*" in failed_families or family in failed_families or item_failed:
                retry.append(e.id)
            else:
                done.append(e.id)
        if plan.leavers:
            # Remembered before the events are marked handled: a crash before the offboarding
            # capture and hold are done resumes them at the next start (ServiceApp.run).
            pending = list(dict.fromkeys([*(self.state.get("offboarding_pending") or []), *plan.leavers]))
            await asyncio.to_thread(self.state.put, "offboarding_pending", pending)
        await asyncio.to_thread(self.state.mark_done, done)
        self._count("captured", len(done))
        now = self.clock()
        for i in done:
            ev = by_id[i]
            latency = max(0.0, now - _event_time(ev))
            self.latencies.append((ev.type, latency))
            if self.metrics is not None:
                self.metrics.capture_latency.labels(stage="local").observe(latency)
        if self.on_committed is not None:
            self.on_committed(stats, [by_id[i] for i in done])
        if retry:
            given_up = await asyncio.to_thread(
                self.state.mark_failed, retry, _failure_text(stats), self.max_attempts
            )
            if given_up and self.alerts is not None:
                self.alerts.raise_(
                    "events-failed",
                    f"{len(given_up)} events could not be captured",
                    f"After {self.max_attempts} attempts: {', '.join(given_up[:10])}. "
                    f"Last error: {_failure_text(stats)}. A full run will re-read these families.",
                )
            self._count("retry", len(retry))
            # Wait before the retry instead of hammering a failing API.
            self._wake.set()
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(self._failures, 6)))
        if plan.leavers and self.on_leavers is not None:
            await self.on_leavers(plan.leavers)
        return len(done)

    async def run_events(self, plan: EventPlan) -> RunStats:
        client = self.client
        scope = self.session.scope()
        if plan.chat_ids:
            self.learn_chats(plan.chat_ids)
        settings = self.collector_settings()
        families = sorted(plan.families)
        if scope.needs_tree and "contacts" not in families:
            families.insert(0, "contacts")
        wanted = set(families) | plan.targeted_families
        real = build_collectors(client, families=sorted(wanted), settings=settings)
        by_family = {c.family: c for c in real}
        collectors: list[Any] = [c for c in real if c.family in families]
        # A family that runs its incremental anyway covers its targeted records too.
        collectors += targeted_collectors(plan, client, by_family, self.lookup, skip=families)
        return await self._run("incremental", collectors, label="events")

    def learn_chats(self, chat_ids: set[str]) -> None:
        """Group chats seen in chat_* events become reachable (no API lists a standard org's groups)."""
        known = set(self.state.get("learned_chat_ids") or [])
        if not chat_ids <= known:
            self.state.put("learned_chat_ids", sorted(known | chat_ids))

    def collector_settings(self) -> CollectorSettings:
        values = dict(self.session.settings.backup.get("collectors", {}))
        learned = self.state.get("learned_chat_ids") or []
        if learned:
            values["known_chat_ids"] = sorted(set(values.get("known_chat_ids") or []) | set(learned))
        return CollectorSettings(**values)

    def _schedule_followup(self, family: str) -> None:
        tries = self._followup_tries.get(family, 0) + 1
        self._followup_tries[family] = tries
        delay = min(900.0, self.followup_seconds * 2 ** (tries - 1))
        self._followups.setdefault(family, self.clock() + delay)

    async def run_due_followups(self) -> RunStats | None:
        now = self.clock()
        due = sorted(f for f, t in self._followups.items() if t <= now)
        if not due:
            return None
        for f in due:
            del self._followups[f]
        stats = await self.backup_families("incremental", due, label="follow-up")
        still = {f.family for f in stats.family_failures}
        for f in due:
            if f in still or "*" in still:
                self._schedule_followup(f)
            else:
                self._followup_tries.pop(f, None)
        return stats

    # ---- catch-up and scheduled runs --------------------------------------------------------------
    async def catch_up(self) -> RunStats | None:
        since, self._catchup_since = self._catchup_since, None
        if since is None:
            return None
        log.info(
            "catch-up incremental for the gap since %s",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since)),
        )
        if self.metrics is not None:
            self.metrics.catchups.inc()
        try:
            return await self.backup("incremental", label="catch-up")
        except Exception:
            self.request_catchup(since)  # do not forget the gap
            raise

    async def backup(self, mode: str, *, label: str | None = None) -> RunStats:
        return await self.backup_families(mode, None, label=label or mode)

    async def backup_families(
        self, mode: str, only: Sequence[str] | None, *, label: str | None = None
    ) -> RunStats:
        """A run of every family in scope (or of those in ``only``), as ``dingvault backup`` makes it."""
        scope = self.session.scope()
        families = [
            c.family
            for c in COLLECTOR_CLASSES
            if any(scope.includes_kind(k) for k in c.kinds) and (only is None or c.family in only)
        ]
        if scope.needs_tree and "contacts" not in families:
            families.insert(0, "contacts")
        collectors = build_collectors(self.client, families=families, settings=self.collector_settings())
        return await self._run(mode, collectors, label=label or mode, engine_options={})

    # ---- the one place a run happens ------------------------------------------------------------
    async def _run(
        self,
        mode: str,
        collectors: Sequence[Any],
        *,
        label: str,
        engine_options: dict[str, Any] | None = None,
    ) -> RunStats:
        async with self.lock:
            s = self.session
            store = VaultCatalogStore(s.vault, s.catalog, tmp_dir=s.home.tmp_dir)
            client = self.client
            options = self.engine_options if engine_options is None else engine_options
            try:
                engine = BackupEngine(
                    store,
                    collectors,
                    s.scope(),
                    tmp_dir=s.home.tmp_dir,
                    api_call_counts=lambda: client.calls,
                    api_error_counts=lambda: {**client.errors, "(retries)": client.retries},
                    **engine_settings(s.settings.backup, options),
                )
                try:
                    stats = await engine.run(mode)
                except Exception as exc:
                    self._record_failure(label, exc)
                    raise
            finally:
                store.close()
        self._record(label, stats, {c.family for c in collectors})
        return stats

    def _record(self, label: str, stats: RunStats, families: set[str]) -> None:
        finished = stats.finished or self.clock()
        if stats.new["user"] or stats.changed["user"] or stats.deleted["user"]:
            self.lookup.forget_people()  # the unionId -> userid map is rebuilt when next needed
        self.runs.append((label, stats.status, finished))
        del self.runs[:-100]
        failed = {f.family for f in stats.family_failures}
        good = {f for f in families if f not in failed and "*" not in failed}
        for family in good:
            self.state.put(f"family_ok:{family}", finished)
        m = self.metrics
        if m is not None:
            m.runs.labels(mode=label, status=stats.status).inc()
            for outcome in ("new", "changed", "unchanged", "deleted", "failed"):
                for kind, n in getattr(stats, outcome).items():
                    if n:
                        m.items.labels(kind=kind, outcome=outcome).inc(n)
            for endpoint, n in stats.api_calls.items():
                m.api_calls.labels(endpoint=endpoint).inc(n)
            for key, n in stats.api_errors.items():
                m.api_throttles.labels(error=key).inc(n)
            for family in good:
                m.last_success.labels(family=family).set(finished)
        if self.alerts is not None:
            key = f"run-failed:{label}"
            if stats.status == "ok":
                self.alerts.clear(key)
            else:
                self.alerts.raise_(key, f"{label} run {stats.status}", _failure_text(stats))

    def _record_failure(self, label: str, exc: BaseException) -> None:
        self.runs.append((label, "failed", self.clock()))
        self.lookup.forget_people()  # users may have been stored before it failed
        if self.metrics is not None:
            self.metrics.runs.labels(mode=label, status="failed").inc()
        if self.alerts is not None:
            self.alerts.raise_(f"run-failed:{label}", f"{label} run failed", f"{type(exc).__name__}: {exc}")

    def _count(self, outcome: str, n: int) -> None:
        if self.metrics is not None and n:
            self.metrics.events_handled.labels(outcome=outcome).inc(n)


def _event_family(e: InboxEvent) -> str | None:
    if e.source == "callback":
        return "robot"
    if e.type in APPROVAL_EVENTS:
        return "approvals"
    return family_for(e.type)


def _event_time(e: InboxEvent) -> float:
    """When the change happened, as DingTalk says (else when it reached us)."""
    return e.born_ms / 1000 if e.born_ms else e.received


def _failure_text(stats: RunStats) -> str:
    parts = [f"family {f.family}: {f.error}: {f.message}" for f in stats.family_failures[:3]]
    parts += [f"{f.kind}/{f.source_id}: {f.error}: {f.message}" for f in stats.item_failures[:3]]
    return "; ".join(parts) or "no details"
