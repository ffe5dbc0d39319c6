"""Scheduled vault verification: fires at its time (injected clock), a damaged pack raises the
"verification failed" alert once through the robot webhook, a clean verify clears it, the result
is on /metrics, and a verify never overlaps another verify or a prune."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path

import pytest

from dingvault.service.alerts import AlertManager, DingTalkRobotSender
from dingvault.service.config import DingTalkAlertConfig, ServiceConfig
from dingvault.service.metrics import ServiceMetrics
from dingvault.service.scheduler import VERIFY_ALERT, VERIFY_MODES, ScheduleLoop, VaultVerifyJob
from dingvault.service.state import ServiceState
from dingvault.vault import Vault, from_url
from dingvault.vault.errors import VaultLocked
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

from .test_alerts import SECRET, _Receiver
from .test_scheduler import Clock, at


@pytest.fixture
def vault(tmp_path: Path):
    v, _ = Vault.init(
        from_url((tmp_path / "vault").as_uri()),
        "pass phrase",
        kdf=FAST_KDF_FOR_TESTS,
        cache_dir=tmp_path / "cache",
    )
    with v.writer() as w:
        recs = [(f"user/u{i}", [w.put_blob(f'{{"userid":"u{i}"}}'.encode(), "internal")]) for i in range(50)]
        recs.append(("file/a", w.put_stream(io.BytesIO(os.urandom(300_000)), "confidential")))
        w.commit_snapshot(recs)
    yield v
    v.close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def pack_file(vault: Vault, tmp_path: Path, level: str) -> Path:
    pack = next(p for p in vault.list_packs() if p.level == level)
    return tmp_path / "vault" / pack.key


def flip_bytes(path: Path) -> bytes:
    """Damage a pack in place (same size: only reading it back can tell); returns the original."""
    original = path.read_bytes()
    damaged = bytearray(original)
    for i in range(len(damaged) // 2, len(damaged) // 2 + 4):
        damaged[i] ^= 0xFF
    path.write_bytes(bytes(damaged))
    return original


def make_job(vault: Vault, tmp_path: Path, receiver: _Receiver, clock: Clock, **fractions: float):
    state = ServiceState.in_home(tmp_path / "home")
    metrics = ServiceMetrics()
    alerts = AlertManager([DingTalkRobotSender(DingTalkAlertConfig(receiver.url, SECRET))], metrics=metrics)
    job = VaultVerifyJob(
        vault,
        state,
        alerts,
        metrics,
        fractions={k.replace("_", "-"): f for k, f in fractions.items()},
        clock=clock,
    )
    return job, alerts, metrics


def titles(receiver: _Receiver) -> list[str]:
    return [body["markdown"]["title"] for _q, body in receiver.requests]


def metric(metrics: ServiceMetrics, name: str, kind: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"kind": kind})


def test_the_weekly_verify_fires_at_its_time_and_a_damaged_pack_alerts_once_until_repaired(
    vault: Vault, tmp_path: Path, receiver: _Receiver
) -> None:
    clock = Clock(at(2026, 11, 26, 12, 0))  # Thursday noon
    job, alerts, metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0)
    config = ServiceConfig()  # weekly, Saturday 03:00
    loop = ScheduleLoop(
        {"verify": config.cron("verify")},
        job.state,
        job.run,
        jitter_seconds=0,
        clock=clock,
        modes=VERIFY_MODES,
    )
    assert asyncio.run(loop.tick()) == []
    path = pack_file(vault, tmp_path, "internal")
    original = flip_bytes(path)
    clock.t = at(2026, 11, 28, 2, 59)
    assert asyncio.run(loop.tick()) == []  # not yet: nothing was verified
    assert metric(metrics, "dingvault_verify_ok", "verify") is None and receiver.requests == []

    clock.t = at(2026, 11, 28, 3, 0, 5)
    assert asyncio.run(loop.tick()) == ["verify"]
    assert titles(receiver) == ["vault verification failed: 1 damaged object(s)"]
    assert path.relative_to(tmp_path / "vault").as_posix() in receiver.requests[0][1]["markdown"]["text"]
    assert VERIFY_ALERT in alerts.active
    assert metric(metrics, "dingvault_verify_ok", "verify") == 0
    assert metric(metrics, "dingvault_verify_errors", "verify") == 1
    assert metric(metrics, "dingvault_verify_last_timestamp_seconds", "verify") == clock.t
    assert (
        metrics.registry.get_sample_value(
            "dingvault_verify_runs_total", {"kind": "verify", "status": "damaged"}
        )
        == 1
    )

    clock.t = at(2026, 12, 5, 3, 0, 5)  # a week later, still damaged: no second message
    assert asyncio.run(loop.tick()) == ["verify"]
    assert len(receiver.requests) == 1

    path.write_bytes(original)  # repaired
    clock.t = at(2026, 12, 12, 3, 0, 5)
    assert asyncio.run(loop.tick()) == ["verify"]
    assert titles(receiver) == [
        "vault verification failed: 1 damaged object(s)",
        "Resolved: vault verification failed: 1 damaged object(s)",
    ]
    assert VERIFY_ALERT not in alerts.active
    assert metric(metrics, "dingvault_verify_ok", "verify") == 1
    assert metric(metrics, "dingvault_verify_errors", "verify") == 0
    assert b'dingvault_verify_ok{kind="verify"} 1.0' in metrics.render()


def test_a_sampled_verify_cannot_clear_the_alert_by_not_reading_the_damaged_pack(
    vault: Vault, tmp_path: Path, receiver: _Receiver
) -> None:
    clock = Clock(at(2026, 11, 28, 3, 0))
    # The "sample" here reads no pack at all: only the memory of the damaged pack can find it.
    job, alerts, _metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0, verify_sample=0.0)
    path = pack_file(vault, tmp_path, "confidential")
    original = flip_bytes(path)
    assert job.verify_now("verify").status == "damaged"
    again = job.verify_now("verify-sample")
    assert again.status == "damaged" and again.damaged == (path.relative_to(tmp_path / "vault").as_posix(),)
    assert len(receiver.requests) == 1 and VERIFY_ALERT in alerts.active
    path.write_bytes(original)
    assert job.verify_now("verify-sample").status == "ok"
    assert VERIFY_ALERT not in alerts.active and len(receiver.requests) == 2
    # Forgotten once whole: the next sampled verify has nothing extra to read.
    assert job.state.get("verify:damaged_packs") == []


def test_a_verify_never_overlaps_another_verify_or_a_prune(
    vault: Vault, tmp_path: Path, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(at(2026, 11, 28, 3, 0))
    job, alerts, metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0)
    # A prune holds the exclusive lock: the verify does not start, and concludes nothing.
    prune_lock = vault.lock(exclusive=True).acquire()
    try:
        assert job.verify_now("verify").status == "skipped"
    finally:
        prune_lock.release()
    assert metric(metrics, "dingvault_verify_ok", "verify") is None and receiver.requests == []

    import dingvault.service.scheduler as scheduler

    inside, release = threading.Event(), threading.Event()
    real_verify = scheduler.verify

    def slow_verify(*args, **kwargs):
        inside.set()
        assert release.wait(30)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(scheduler, "verify", slow_verify)
    first: list[str] = []
    t = threading.Thread(target=lambda: first.append(job.verify_now("verify").status))
    t.start()
    try:
        assert inside.wait(30)
        assert job.verify_now("verify").status == "skipped"  # one verify at a time
        with pytest.raises(VaultLocked):
            vault.lock(exclusive=True).acquire()  # and no prune under a running verify
    finally:
        release.set()
        t.join(30)
    assert first == ["ok"] and not alerts.active
    assert (
        metrics.registry.get_sample_value(
            "dingvault_verify_runs_total", {"kind": "verify", "status": "skipped"}
        )
        == 2
    )
    vault.lock(exclusive=True).acquire().release()  # the verify released its lock


def test_a_pack_stored_while_verify_lists_is_not_reported_missing(
    vault: Vault, tmp_path: Path, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(at(2026, 11, 28, 3, 0))
    job, alerts, _metrics = make_job(vault, tmp_path, receiver, clock, verify=0.0)
    late = pack_file(vault, tmp_path, "internal").relative_to(tmp_path / "vault").as_posix()
    real_list = vault.backend.list
    calls = [0]

    def list_without_the_late_pack(prefix: str = ""):
        # The first pack listing is taken before the capture stored that pack.
        if prefix == "data/":
            calls[0] += 1
            if calls[0] == 1:
                return [i for i in real_list(prefix) if i.key != late]
        return real_list(prefix)

    monkeypatch.setattr(vault.backend, "list", list_without_the_late_pack)
    outcome = job.verify_now("verify")
    assert calls[0] >= 2  # listed again to confirm
    assert outcome.status == "ok" and not alerts.active
    # A pack that is really gone is still reported.
    (tmp_path / "vault" / late).unlink()
    calls[0] = 0
    outcome = job.verify_now("verify")
    assert outcome.status == "damaged" and any(late in p and "missing" in p for p in outcome.problems)


def test_a_stopping_service_abandons_the_verify_without_concluding(
    vault: Vault, tmp_path: Path, receiver: _Receiver
) -> None:
    clock = Clock(at(2026, 11, 28, 3, 0))
    job, alerts, metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0)
    flip_bytes(pack_file(vault, tmp_path, "internal"))
    job.cancel()
    assert job.verify_now("verify").status == "cancelled"
    assert not alerts.active and metric(metrics, "dingvault_verify_ok", "verify") is None
    vault.lock(exclusive=True).acquire().release()  # its lock was released


def test_the_last_result_is_on_metrics_after_a_restart(
    vault: Vault, tmp_path: Path, receiver: _Receiver
) -> None:
    clock = Clock(at(2026, 11, 28, 3, 0))
    job, _alerts, _metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0)
    flip_bytes(pack_file(vault, tmp_path, "internal"))
    assert job.verify_now("verify").status == "damaged"
    job.state.close()
    again, _alerts2, metrics = make_job(vault, tmp_path, receiver, clock, verify=1.0)
    assert metric(metrics, "dingvault_verify_ok", "verify") == 0
    assert metric(metrics, "dingvault_verify_errors", "verify") == 1
    assert metric(metrics, "dingvault_verify_last_timestamp_seconds", "verify") == clock.t
    assert again.last()["verify"]["status"] == "damaged"


def test_the_service_schedules_the_verify_and_publishes_its_result(installed) -> None:
    from .service_env import RunningService

    with RunningService(installed, verify_sample_cron="30 3 * * *", verify_sample_fraction=0.5) as svc:
        health = svc.health()
        assert set(health["verify"]["next"]) == {"verify", "verify-sample"}
        assert set(health["schedule"]) == {"incremental", "full"}  # the backup schedules unchanged
        outcome = svc.call(svc.app.verifier.run("verify"), timeout=300)
        assert outcome.status == "ok", outcome.problems
        assert outcome.counters["packs_read[primary]"] == outcome.counters["packs[primary]"] > 0
        metrics = svc.metrics()
        assert 'dingvault_verify_ok{kind="verify"} 1.0' in metrics
        assert 'dingvault_verify_errors{kind="verify"} 0.0' in metrics
        assert 'dingvault_verify_runs_total{kind="verify",status="ok"} 1.0' in metrics
        assert svc.health()["verify"]["last"]["verify"]["status"] == "ok"
        assert VERIFY_ALERT not in svc.app.alerts.active
