"""Schedules with an injected clock: fire at the configured times (plus jitter), catch up missed
runs once, a due full covers the incremental, and runs never overlap."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from dingvault.service.config import ServiceConfig
from dingvault.service.scheduler import ScheduleLoop
from dingvault.service.state import ServiceState

MACAU = ZoneInfo("Asia/Macau")


def at(*args: int) -> float:
    return datetime(*args, tzinfo=MACAU).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(tmp_path, clock, *, jitter=0.0, runs=None):
    config = ServiceConfig()  # daily 00:00 incremental, Sunday 01:00 full, Asia/Macau
    ran = runs if runs is not None else []

    async def run(mode: str) -> None:
        ran.append((mode, clock()))

    loop = ScheduleLoop(
        {"incremental": config.cron("incremental"), "full": config.cron("full")},
        ServiceState.in_home(tmp_path),
        run,
        jitter_seconds=jitter,
        clock=clock,
    )
    return loop, ran


def test_incremental_fires_daily_at_midnight_macau_and_full_on_sunday_at_one(tmp_path):
    clock = Clock(at(2026, 11, 26, 12, 0))  # Thursday noon
    loop, ran = make(tmp_path, clock)
    assert asyncio.run(loop.tick()) == []  # first start: nothing back-filled
    clock.t = at(2026, 11, 26, 23, 59, 59)
    assert asyncio.run(loop.tick()) == []
    clock.t = at(2026, 11, 27, 0, 0, 1)
    assert asyncio.run(loop.tick()) == ["incremental"]
    assert asyncio.run(loop.tick()) == []  # once per fire time
    for day in (28, 29):  # Saturday and Sunday midnights
        clock.t = at(2026, 11, day, 0, 0, 1)
        assert asyncio.run(loop.tick()) == ["incremental"]
    clock.t = at(2026, 11, 29, 0, 59)
    assert asyncio.run(loop.tick()) == []
    clock.t = at(2026, 11, 29, 1, 0, 1)  # Sunday 01:00
    assert asyncio.run(loop.tick()) == ["full"]
    assert [m for m, _ in ran] == ["incremental", "incremental", "incremental", "full"]


def test_jitter_moves_runs_off_the_top_of_the_hour_but_within_the_window(tmp_path):
    clock = Clock(at(2026, 11, 26, 12, 0))
    loop, ran = make(tmp_path, clock, jitter=300)
    asyncio.run(loop.tick())
    fire = at(2026, 11, 27, 0, 0)
    offset = loop.jitter(fire)
    assert 0 < offset < 300
    assert loop.jitter(fire) == offset  # the same after a restart
    clock.t = fire + offset - 1
    assert asyncio.run(loop.tick()) == []
    clock.t = fire + offset + 0.5
    assert asyncio.run(loop.tick()) == ["incremental"]
    assert (
        abs(loop.seconds_to_next() - (at(2026, 11, 28, 0, 0) + loop.jitter(at(2026, 11, 28)) - clock.t)) < 1
    )


def test_runs_missed_during_downtime_are_caught_up_once_at_start(tmp_path):
    clock = Clock(at(2026, 11, 23, 12, 0))  # Monday
    loop, ran = make(tmp_path, clock)
    asyncio.run(loop.tick())
    loop.state.close()
    # Down from Monday noon to Wednesday 09:00: two midnights missed -> one incremental.
    clock.t = at(2026, 11, 25, 9, 0)
    loop2, ran2 = make(tmp_path, clock)
    assert asyncio.run(loop2.tick()) == ["incremental"]
    assert asyncio.run(loop2.tick()) == []
    # Down over a Sunday: the full and the incremental were missed -> the full alone runs.
    loop2.state.close()
    clock.t = at(2026, 12, 1, 9, 0)
    loop3, ran3 = make(tmp_path, clock)
    assert asyncio.run(loop3.tick()) == ["full"]
    assert asyncio.run(loop3.tick()) == []


def test_scheduled_runs_wait_for_a_run_in_progress_and_never_overlap(tmp_path):
    """The service passes RunCoordinator.backup, which holds one lock for every run."""
    clock = Clock(at(2026, 11, 26, 12, 0))
    lock = asyncio.Lock()
    active = [0, 0]  # now, max
    order: list[str] = []

    async def scenario() -> None:
        async def guarded(mode: str) -> None:
            async with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
                order.append(mode)
                await asyncio.sleep(0.05)
                active[0] -= 1

        loop = ScheduleLoop(
            {"incremental": ServiceConfig().cron("incremental")},
            ServiceState.in_home(tmp_path),
            guarded,
            jitter_seconds=0,
            clock=clock,
        )
        await loop.tick()
        clock.t = at(2026, 11, 27, 0, 0, 1)
        event_run = asyncio.create_task(guarded("events"))
        await asyncio.sleep(0)
        await asyncio.gather(loop.tick(), event_run)

    asyncio.run(scenario())
    assert order == ["events", "incremental"] and active[1] == 1


def test_custom_cron_expressions_and_a_bad_one(tmp_path):
    import pytest

    from dingvault.service.config import ServiceConfigError

    config = ServiceConfig(incremental_cron="*/15 * * * *")
    trigger = config.cron("incremental")
    start = datetime(2026, 11, 26, 10, 7, tzinfo=MACAU)
    assert trigger.get_next_fire_time(None, start) == datetime(2026, 11, 26, 10, 15, tzinfo=MACAU)
    with pytest.raises(ServiceConfigError, match="incremental_cron"):
        ServiceConfig(incremental_cron="every day").cron("incremental")


def test_verify_fires_weekly_on_saturday_at_three_and_covers_the_daily_sample(tmp_path):
    from dingvault.service.scheduler import VERIFY_MODES

    config = ServiceConfig(verify_sample_cron="30 3 * * *")
    schedules = config.verify_schedules()
    clock = Clock(at(2026, 11, 26, 12, 0))  # Thursday noon
    ran: list[str] = []

    async def run(mode: str) -> None:
        ran.append(mode)

    loop = ScheduleLoop(
        {m: t for m, (t, _f) in schedules.items()},
        ServiceState.in_home(tmp_path),
        run,
        jitter_seconds=0,
        clock=clock,
        modes=VERIFY_MODES,
    )
    assert asyncio.run(loop.tick()) == []
    clock.t = at(2026, 11, 27, 3, 30, 1)  # Friday: the daily sample only
    assert asyncio.run(loop.tick()) == ["verify-sample"]
    clock.t = at(2026, 11, 28, 2, 59, 59)
    assert asyncio.run(loop.tick()) == []
    clock.t = at(2026, 11, 28, 3, 0, 1)  # Saturday 03:00: the weekly verify
    assert asyncio.run(loop.tick()) == ["verify"]
    clock.t = at(2026, 11, 28, 3, 30, 1)
    assert asyncio.run(loop.tick()) == ["verify-sample"]
    # Down from Friday night to Saturday noon: both were missed; the weekly one runs, once.
    clock.t = at(2026, 12, 4, 23, 0)
    assert asyncio.run(loop.tick()) == ["verify-sample"]  # Friday 03:30
    clock.t = at(2026, 12, 5, 12, 0)
    assert asyncio.run(loop.tick()) == ["verify"]
    assert asyncio.run(loop.tick()) == []
    assert ran == ["verify-sample", "verify", "verify-sample", "verify-sample", "verify"]
    # The verify schedule keeps its own times: the backup schedules are not touched.
    assert loop.state.get("schedule:full:last") is None
