"""Scheduled runs: APScheduler's cron triggers, a jitter, catch-up of missed runs, no overlap.

``CronTrigger`` (APScheduler 3) computes the fire times in the configured timezone (Asia/Macau by
default); the loop around it is ours because the service needs three things a plain
``AsyncIOScheduler`` job does not give without a persistent job store: the time a schedule last
fired is kept in ``ServiceState`` (so a run missed while the service was down is run at
start-up, once, however many were missed), an injectable clock (tests), and runs that go through
the ``RunCoordinator``'s lock (a run that is due while another runs waits for it; it never
overlaps). When the full and the incremental are both due, only the full runs: it covers the
incremental.

The same loop schedules the vault verification (``VaultVerifyJob``): a weekly verify and,
optionally, a daily sampled one, each on its own cron, run on a worker thread.

Jitter: each fire time is moved later by a fixed pseudo-random offset in ``[0, jitter_seconds)``
derived from the fire time itself, so a restart does not re-draw it, and installations do not all
hit DingTalk at the top of the hour (DingTalk's advice for scheduled syncs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from dingvault.service.state import ServiceState
from dingvault.vault.errors import LevelNotAvailable, VaultLocked
from dingvault.vault.pack import SegmentCodec, pack_object_key, parse_pack_key
from dingvault.vault.verify import Problem, check_pack_object, verify

log = logging.getLogger(__name__)

MODES = ("full", "incremental")  # full first: when both are due, the full covers the incremental


class ScheduleLoop:
    def __init__(
        self,
        triggers: dict[str, CronTrigger],
        state: ServiceState,
        run: Callable[[str], Awaitable[object]],
        *,
        jitter_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        max_sleep: float = 30.0,
        modes: tuple[str, ...] = MODES,
    ) -> None:
        self.triggers = triggers
        # In order of coverage: when several are due, only the first due one runs.
        self.modes = modes
        self.state = state
        self.run = run
        self.jitter_seconds = jitter_seconds
        self.clock = clock
        self.max_sleep = max_sleep
        self._sleep = sleep
        self.fired: list[tuple[str, float, float]] = []  # (mode, scheduled fire time, started), for status

    def jitter(self, fire: float) -> float:
        if self.jitter_seconds <= 0:
            return 0.0
        h = int.from_bytes(hashlib.sha256(f"{fire:.0f}".encode()).digest()[:8], "big")
        return (h / 2**64) * self.jitter_seconds

    def _last(self, mode: str) -> float:
        key = f"schedule:{mode}:last"
        last = self.state.get(key)
        if last is None:
            # First start: schedules count from now (no back-fill from the beginning of time).
            last = self.clock()
            self.state.put(key, last)
        return float(last)

    def next_fire(self, mode: str, after: float) -> float | None:
        tz = self.triggers[mode].timezone
        previous = datetime.fromtimestamp(after, tz)
        # APScheduler 3: the next fire time strictly after `previous` is asked with
        # (previous_fire_time, now); passing previous as both yields times > previous.
        nxt = self.triggers[mode].get_next_fire_time(previous, previous)
        return nxt.timestamp() if nxt is not None else None

    def due(self) -> list[tuple[str, float]]:
        """(mode, latest missed fire time) of every schedule whose (jittered) time has come."""
        now = self.clock()
        out: list[tuple[str, float]] = []
        for mode in self.modes:
            if mode not in self.triggers:
                continue
            fire = self.next_fire(mode, self._last(mode))
            latest = None
            # Coalesce: however many fire times were missed, one run, for the latest of them.
            while fire is not None and fire + self.jitter(fire) <= now:
                latest = fire
                fire = self.next_fire(mode, fire)
            if latest is not None:
                out.append((mode, latest))
        return out

    async def tick(self) -> list[str]:
        """Run what is due now; returns the modes run (tests call this with an injected clock)."""
        due = self.due()
        ran: list[str] = []
        if not due:
            return ran
        modes = {m for m, _ in due}
        to_run = [next(m for m in self.modes if m in modes)]
        for mode in to_run:
            started = self.clock()
            log.info("scheduled %s run", mode)
            try:
                await self.run(mode)
            except Exception as exc:  # the coordinator alerts; the schedule goes on
                log.error("scheduled %s run failed: %s", mode, exc)
            ran.append(mode)
            self.fired += [(m, f, started) for m, f in due]
        # Every due schedule is satisfied by the run made (a full covers an incremental).
        for mode, fire in due:
            self.state.put(f"schedule:{mode}:last", fire)
        return ran

    def seconds_to_next(self) -> float:
        now = self.clock()
        waits = []
        for mode in self.triggers:
            fire = self.next_fire(mode, self._last(mode))
            if fire is not None:
                waits.append(fire + self.jitter(fire) - now)
        return max(0.0, min(waits)) if waits else self.max_sleep

    def next_runs(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for mode in self.triggers:
            fire = self.next_fire(mode, self._last(mode))
            out[mode] = (
                datetime.fromtimestamp(fire + self.jitter(fire), UTC).isoformat()
                if fire is not None
                else None
            )
        return out

    async def loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            wait = min(self.max_sleep, max(0.5, self.seconds_to_next()))
            if self._sleep is not None:
                await self._sleep(wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


# ---- scheduled vault verification --------------------------------------------------------------

VERIFY_MODES = ("verify", "verify-sample")  # the weekly verify covers the sampled one
VERIFY_ALERT = "vault-verify"
_DAMAGED = "verify:damaged_packs"  # state key: pack keys the last verify found damaged


class VerifyCancelled(Exception):
    """The service is stopping: the verify in progress gives up (nothing is concluded from it)."""


@dataclass(frozen=True)
class VerifyOutcome:
    mode: str
    status: str  # ok | damaged | error | skipped | cancelled
    problems: tuple[str, ...]
    damaged: tuple[str, ...]  # the objects (pack keys, snapshots...) the problems are about
    started: float
    finished: float
    counters: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "status": self.status,
            "errors": len(self.damaged),
            "damaged": list(self.damaged[:100]),
            "problems": list(self.problems[:20]),
            "started": self.started,
            "finished": self.finished,
        }


class VaultVerifyJob:
    """Verifies the vault on a worker thread (capture goes on) and reports the result.

    Each verify checks the whole structure and reads back ``fractions[mode]`` of the packs (all
    of them at 1.0, none at 0). It holds a shared repository lock for its duration, so a prune
    or repair (exclusive) never runs under it, and it does not start while one runs (it is then
    skipped until its next time). One verify at a time: a second one asked meanwhile is skipped.

    Damage raises the ``vault-verify`` alert (once until it clears); a later verify that finds
    the vault whole clears it. Packs found damaged are remembered and read again by every later
    verify, so a sampled verify that did not draw them cannot clear the alert by missing them.
    """

    def __init__(
        self,
        vault: Any,
        state: ServiceState,
        alerts: Any,
        metrics: Any = None,
        *,
        fractions: dict[str, float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vault = vault
        self.state = state
        self.alerts = alerts
        self.metrics = metrics
        self.fractions = fractions
        self.clock = clock
        self._busy = threading.Lock()
        self._cancel = threading.Event()
        for mode in fractions:
            last = state.get(f"verify:last:{mode}")
            if last and last.get("status") in ("ok", "damaged", "error"):
                self._gauges(mode, last["status"], int(last["errors"]), float(last["finished"]), 0.0)

    async def run(self, mode: str) -> VerifyOutcome:
        """The schedule's entry point: the verify runs on a thread, the event loop stays free."""
        return await asyncio.to_thread(self.verify_now, mode)

    def cancel(self) -> None:
        self._cancel.set()

    def last(self) -> dict[str, Any]:
        return {m: self.state.get(f"verify:last:{m}") for m in self.fractions}

    def verify_now(self, mode: str) -> VerifyOutcome:
        started = self.clock()
        if not self._busy.acquire(blocking=False):
            log.warning("%s skipped: another verify is running", mode)
            return self._done(mode, "skipped", [], started, {})
        try:
            return self._verify(mode, started)
        finally:
            self._busy.release()

    def _verify(self, mode: str, started: float) -> VerifyOutcome:
        fraction = self.fractions.get(mode, 1.0)
        lock = self.vault.lock(exclusive=False)
        try:
            lock.acquire()
        except VaultLocked as exc:
            log.warning("%s skipped: %s", mode, exc)
            return self._done(mode, "skipped", [], started, {})
        try:
            report = verify(
                self.vault,
                read_data=fraction > 0,
                subset=fraction if 0 < fraction < 1 else None,
                progress=self._progress(lock),
            )
            problems = self._confirmed(report.errors)
            status = "damaged" if problems else "ok"
            counters = dict(report.counters)
        except VerifyCancelled:
            log.info("%s abandoned: the service is stopping", mode)
            return self._done(mode, "cancelled", [], started, {})
        except Exception as exc:  # a verify that cannot finish proves nothing: report it
            log.exception("%s failed", mode)
            problems = [Problem("vault", f"the verify could not finish: {type(exc).__name__}: {exc}")]
            status, counters = "error", {}
        finally:
            lock.release()
        if status != "error":
            self.state.put(_DAMAGED, sorted({p.object for p in problems if parse_pack_key(p.object)}))
        return self._done(mode, status, problems, started, counters)

    def _progress(self, lock: Any) -> Callable[[str, int, int], None]:
        def progress(_phase: str, _done: int, _total: int) -> None:
            if self._cancel.is_set():
                raise VerifyCancelled()
            lock.refresh()  # throttled; keeps a long verify's lock from looking stale

        return progress

    def _confirmed(self, errors: list[Problem]) -> list[Problem]:
        """The report's errors, less the false "missing" of a pack written during the verify,
        plus the packs an earlier verify found damaged that still do not read back whole."""
        indexed = {
            pack_object_key(cls, pid): (pid, size) for pid, cls, _salt, size in self.vault.index.packs()
        }
        out = list(errors)
        if any(_is_presence_error(p) for p in out):
            # verify lists the packs, then reads the in-memory index: a pack the capture stored
            # and indexed in between looks missing. Listed again now, it is there.
            listed = {i.key: i.size for i in self.vault.backend.list("data/")}
            out = [
                p for p in out
                if not (_is_presence_error(p) and p.object in indexed and listed.get(p.object) == indexed[p.object][1])
            ]  # fmt: skip
        flagged = {p.object for p in out}
        codec = SegmentCodec()
        for key in self.state.get(_DAMAGED) or []:
            if key in flagged or key not in indexed:
                continue  # reported already, or no longer indexed (nothing refers to it)
            try:
                found = check_pack_object(self.vault, self.vault.backend, key, indexed[key][0], codec)
            except LevelNotAvailable:
                continue
            out += [Problem(key, msg) for msg in found]
        return out

    def _done(
        self, mode: str, status: str, problems: list[Problem], started: float, counters: dict[str, int]
    ) -> VerifyOutcome:
        finished = self.clock()
        damaged = tuple(sorted({p.object for p in problems}))
        outcome = VerifyOutcome(
            mode, status, tuple(str(p) for p in problems), damaged, started, finished, counters
        )
        if self.metrics is not None:
            self.metrics.verify_runs.labels(kind=mode, status=status).inc()
        if status in ("skipped", "cancelled"):
            return outcome  # nothing learnt about the vault: alerts and gauges stay as they were
        self.state.put(f"verify:last:{mode}", outcome.to_dict())
        self._gauges(mode, status, len(damaged), finished, finished - started)
        if problems:
            shown = "\n".join(f"- {p}" for p in outcome.problems[:10])
            more = f"\n- ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            self.alerts.raise_(
                VERIFY_ALERT,
                f"vault verification failed: {len(damaged)} damaged object(s)",
                f"The scheduled {mode} found:\n{shown}{more}\n\n"
                "Run `dingvault vault verify --read-data` for the full list, then `dingvault vault repair`.",
            )
        else:
            self.alerts.clear(VERIFY_ALERT, f"The scheduled {mode} found the vault whole.")
        log.info("%s: %s (%d damaged objects) in %.1f s", mode, status, len(damaged), finished - started)
        return outcome

    def _gauges(self, mode: str, status: str, errors: int, finished: float, duration: float) -> None:
        if self.metrics is None:
            return
        self.metrics.verify_last.labels(kind=mode).set(finished)
        self.metrics.verify_ok.labels(kind=mode).set(1 if status == "ok" else 0)
        self.metrics.verify_errors.labels(kind=mode).set(errors)
        self.metrics.verify_duration.labels(kind=mode).set(duration)


def _is_presence_error(p: Problem) -> bool:
    return p.message.startswith(("pack is missing", "pack has ")) and parse_pack_key(p.object) is not None
