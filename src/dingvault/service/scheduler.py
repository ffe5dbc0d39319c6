"""Scheduled runs: APScheduler's cron triggers, a jitter, catch-up of missed runs, no overlap.

``CronTrigger`` (APScheduler 3) computes the fire times in the configured timezone (Asia/Macau by
default); the loop around it is ours because the service needs three things a plain
``AsyncIOScheduler`` job does not give without a persistent job store: the time a schedule last
fired is kept in ``ServiceState`` (so a run missed while the service was down is run at
start-up, once, however many were missed), an injectable clock (tests), and runs that go through
the ``RunCoordinator``'s lock (a run that is due while another runs waits for it; it never
overlaps). When the full and the incremental are both due, only the full runs: it covers the
incremental.

Jitter: each fire time is moved later by a fixed pseudo-random offset in ``[0, jitter_seconds)``
derived from the fire time itself, so a restart does not re-draw it, and installations do not all
hit DingTalk at the top of the hour (DingTalk's advice for scheduled syncs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

from dingvault.service.state import ServiceState

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
    ) -> None:
        self.triggers = triggers
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
        for mode in MODES:
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
        to_run = ["full"] if "full" in modes else ["incremental"]
        for mode in to_run:
            started = self.clock()
            log.info("scheduled %s run", mode)
            try:
                await self.run(mode)
            except Exception as exc:  # the coordinator alerts; the schedule goes on
                log.error("scheduled %s run failed: %s", mode, exc)
            ran.append(mode)
            self.fired += [(m, f, started) for m, f in due]
        # Both schedules are satisfied by the run made (a full covers an incremental).
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
                datetime.fromtimestamp(fire + self.jitter(fire), UTC).isoformat() if fire is not None else None
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
