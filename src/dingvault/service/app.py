"""``ServiceApp``: the one process of ``dingvault serve`` - wiring, start-up, checks, shutdown.

Start-up order: state and metrics; the DingTalk client; replication (so a backlog starts
draining at once); the HTTP endpoints; a catch-up incremental for the downtime (a crash or a
stop is a gap like any other) together with the inbox events that were durable but not yet
captured; then the Stream listener, the schedules and the periodic checks.

Graceful shutdown (SIGTERM, SIGINT, ``stop()``): the listener closes first (no new ACKs), the run
in progress finishes its commit (or, if it takes longer than ``shutdown_grace``, is abandoned -
its cursors were committed page by page, the next start resumes from them), then replication
ships what it can within its own timeout, and the endpoints close last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from dingvault.backup.session import APP_SECRET, Session
from dingvault.catalog import CatalogHolds
from dingvault.service.alerts import AlertManager, AlertSender, senders_from_config
from dingvault.service.config import ServiceConfig
from dingvault.service.events import Backoff, StreamListener
from dingvault.service.health import HealthServer, make_app
from dingvault.service.metrics import ServiceMetrics
from dingvault.service.offboarding import Offboarding
from dingvault.service.replicator import ReplicationGlue
from dingvault.service.runner import RunCoordinator
from dingvault.service.scheduler import VERIFY_MODES, ScheduleLoop, VaultVerifyJob
from dingvault.service.state import InboxEvent, ServiceHolds, ServiceState, migrate_legacy_holds
from dingvault.source.collectors import COLLECTOR_CLASSES

log = logging.getLogger(__name__)

STORAGE_SUBSCRIBE = "/v1.0/storage/events/subscribe"


class ServiceApp:
    def __init__(
        self,
        session: Session,
        config: ServiceConfig | None = None,
        *,
        client_overrides: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
        backend_opts: dict[str, Any] | None = None,
        senders: list[AlertSender] | None = None,
        clock: Callable[[], float] = time.time,
        shutdown_grace: float = 60.0,
    ) -> None:
        self.session = session
        self.config = config or ServiceConfig()
        self.clock = clock
        self.shutdown_grace = shutdown_grace
        self.started_at = clock()
        self.state = ServiceState.in_home(session.home.path)
        self.metrics = ServiceMetrics()
        self.alerts = AlertManager(
            senders
            if senders is not None
            else senders_from_config(self.config.dingtalk_alert, self.config.email_alert),
            metrics=self.metrics,
        )
        self.replication = ReplicationGlue(
            session.vault,
            session.home.path,
            metrics=self.metrics,
            alerts=self.alerts,
            lag_target=self.config.replica_lag_seconds,
            interval=self.config.replication_interval,
            max_backoff=self.config.replication_max_backoff,
            backend_opts=backend_opts,
            clock=clock,
        )
        self.coordinator = RunCoordinator(
            session,
            self.state,
            metrics=self.metrics,
            alerts=self.alerts,
            batch_seconds=self.config.batch_seconds,
            client_overrides=client_overrides,
            engine_options=engine_options,
            on_committed=self._committed,
            on_leavers=self._leavers,
            clock=clock,
        )
        # Holds live in the catalog; the provider also honours holds an older release left in the
        # state DB until start-up has moved them (run()).
        self.catalog_holds = CatalogHolds(session.catalog)
        self.holds = ServiceHolds(self.catalog_holds, self.state, clock=clock)
        self.offboarding = Offboarding(
            self.coordinator,
            self.state,
            session.home.path,
            hold_days=self.config.offboarding_hold_days,
            holds=self.catalog_holds,
        )
        self.schedule = ScheduleLoop(
            {"incremental": self.config.cron("incremental"), "full": self.config.cron("full")},
            self.state,
            self.coordinator.backup,
            jitter_seconds=self.config.jitter_seconds,
            clock=clock,
        )
        verify_schedules = self.config.verify_schedules()
        self.verifier = VaultVerifyJob(
            session.vault,
            self.state,
            self.alerts,
            self.metrics,
            fractions={mode: fraction for mode, (_t, fraction) in verify_schedules.items()},
            clock=clock,
        )
        self.verify_schedule = ScheduleLoop(
            {mode: trigger for mode, (trigger, _f) in verify_schedules.items()},
            self.state,
            self.verifier.run,
            jitter_seconds=self.config.jitter_seconds,
            clock=clock,
            modes=VERIFY_MODES,
        )
        self.listener: StreamListener | None = None
        self._stream_down_since: float | None = None
        self.http: HealthServer | None = None
        self.phase = "starting"
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    # ---- glue callbacks ------------------------------------------------------------------------
    def _committed(self, stats: Any, events: list[InboxEvent]) -> None:
        times = [e.born_ms / 1000 if e.born_ms else e.received for e in events]
        self.replication.committed(stats.snapshot_id, times)

    async def _leavers(self, userids: list[str]) -> None:
        try:
            await self.offboarding.handle(userids)
        except Exception as exc:
            log.error("offboarding of %s failed: %s", userids, exc)
            self.alerts.raise_(f"offboarding:{','.join(userids)}", "offboarding capture failed", f"{exc}")

    async def _migrate_holds(self) -> None:
        """Holds an older release kept in the state DB move into the catalog (once)."""
        try:
            await asyncio.to_thread(migrate_legacy_holds, self.state, self.catalog_holds)
        except Exception as exc:
            # They stay in the state DB and ServiceHolds keeps honouring them; retried next start.
            log.error("moving the state DB's holds into the catalog failed: %s", exc)
            self.alerts.raise_("holds-migration", "offboarding holds not moved into the catalog", str(exc))

    def _on_gap(self, start: float, end: float) -> None:
        log.info("stream gap of %.1f s: catch-up incremental", end - start)
        self.coordinator.request_catchup(start)

    def _on_corp(self, corp_id: str) -> None:
        if self.state.get("corp_id") != corp_id:
            self.state.put("corp_id", corp_id)
        if self.state.get("storage_subscribed") != corp_id:
            task = asyncio.get_running_loop().create_task(self._subscribe_file_events())
            self._tasks.append(task)

    # ---- run ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, ready: Callable[[ServiceApp], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        await self.coordinator.open()
        try:
            self.session.catalog.mark_interrupted_runs()
            await self._migrate_holds()
            self.replication.start()
            host, port = self.config.listen_address()
            self.http = HealthServer(make_app(self.health, self.metrics.render), host, port)
            await self.http.start()
            down_since = self.state.get("stream_down_since") or self.state.get("alive_at") or self.clock()
            self.coordinator.request_catchup(float(down_since))
            await self._subscribe_file_events()
            dt = self.session.settings.dingtalk
            self.listener = StreamListener(
                dt.app_key or "",
                self.session.secrets.get(APP_SECRET),
                api_base=dt.api_base,
                state=self.state,
                on_stored=self.coordinator.notify,
                on_gap=self._on_gap,
                on_corp=self._on_corp,
                backoff=Backoff(self.config.reconnect_initial, self.config.reconnect_max),
                stable_after=self.config.reconnect_stable_after,
                metrics=self.metrics,
            )
            self._tasks = [
                asyncio.create_task(self.coordinator.loop(self._stop), name="runner"),
                asyncio.create_task(self.listener.run(), name="stream"),
                asyncio.create_task(self.schedule.loop(self._stop), name="schedule"),
                asyncio.create_task(self.verify_schedule.loop(self._stop), name="verify"),
                asyncio.create_task(self._checks(), name="checks"),
            ]
            leftover = self.state.get("offboarding_pending") or []
            if leftover:
                log.info("resuming the offboarding of %s", leftover)
                self._tasks.append(asyncio.create_task(self._leavers(list(leftover)), name="offboarding"))
            self.phase = "running"
            if ready is not None:
                ready(self)
            await self._stop.wait()
        finally:
            self.phase = "stopping"
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        self._stop.set()
        self.verifier.cancel()  # a verify in progress gives up at its next step
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=self.shutdown_grace)
            for t in pending:
                log.warning(
                    "shutdown: %s did not finish within %.0f s; abandoned", t.get_name(), self.shutdown_grace
                )
                t.cancel()
            for t in _done:
                if not t.cancelled() and t.exception() is not None:
                    log.error("shutdown: %s had failed: %s", t.get_name(), t.exception())
        self.state.put("alive_at", self.clock())
        await asyncio.to_thread(self.replication.stop)
        if self.http is not None:
            await self.http.stop()
        await self.coordinator.close()
        self.state.close()
        self.phase = "stopped"

    async def _checks(self) -> None:
        last_slow = 0.0
        while not self._stop.is_set():
            every = min(self.config.alert_check_seconds, 1.0)
            slow_every = self.config.alert_check_seconds
            try:
                await asyncio.to_thread(self.replication.check)
                now = self.clock()
                self.state.put("alive_at", now)
                self._check_stream(now)
                if now - last_slow >= slow_every:
                    if now - last_slow >= 3600:
                        # Handled events older than a week no longer need their id for dedupe.
                        await asyncio.to_thread(self.state.forget_done, now - 7 * 86400)
                    last_slow = now
                    self._check_staleness(now)
                    self._check_verification()
            except Exception:
                log.exception("periodic checks failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)

    def _families(self) -> list[str]:
        scope = self.session.scope()
        return [
            c.family
            for c in COLLECTOR_CLASSES
            if c.family not in ("robot", "exclusive") and any(scope.includes_kind(k) for k in c.kinds)
        ]

    def _check_stream(self, now: float) -> None:
        if self.listener is None:
            return
        if self.listener.connected:
            self._stream_down_since = None
        elif self._stream_down_since is None:
            self._stream_down_since = now
        down = now - self._stream_down_since if self._stream_down_since is not None else 0.0
        self.alerts.set(
            "stream-down",
            down > self.config.stream_down_seconds,
            f"no Stream connection for {down:.0f} s",
            "Events are not arriving: the service keeps reconnecting with back-off and will run a "
            "catch-up incremental once connected. Check the app's Stream-mode setting, the network "
            "and `journalctl -u dingvault`.",
        )

    def _check_staleness(self, now: float) -> None:
        limit = self.config.staleness_minutes * 60
        for family in self._families():
            last = self.state.get(f"family_ok:{family}") or self.started_at
            self.alerts.set(
                f"stale:{family}",
                now - float(last) > limit,
                f"no successful capture of {family} for {(now - float(last)) / 60:.0f} min",
                f"The last good capture of {family} was at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(float(last)))}; "
                f"the limit is {self.config.staleness_minutes:.0f} min. See `dingvault status`.",
            )

    def _check_verification(self) -> None:
        for name, st in self.replication.status().items():
            self.alerts.set(
                f"verify:{name}",
                bool(st.corrupt_on_primary),
                f"{len(st.corrupt_on_primary)} vault objects fail verification",
                "Objects whose bytes do not match their name were found while shipping to "
                f"{name} (they were not shipped): {', '.join(st.corrupt_on_primary[:5])}. "
                "Run `dingvault vault verify` and `dingvault vault repair`.",
            )

    async def _subscribe_file_events(self) -> None:
        """``storage_dentry_*`` events flow only after a subscription (dingtalk-api.md §7.5)."""
        corp_id = self.config.extra.get("corp_id") or self.state.get("corp_id")
        if not corp_id:
            log.warning(
                "file-change events: corp_id not known yet (set corp_id in service.toml, or it is "
                "learned from the first event); until then files are captured by the scheduled runs"
            )
            return
        if self.state.get("storage_subscribed") == corp_id:
            return
        from dingvault.source.collectors.base import CollectorContext

        try:
            directory = await CollectorContext(self.coordinator.client).directory()
            admins = directory.admins() or list(directory.users)[:1]
            union = directory.unionid(admins[0]) if admins else None
            if not union:
                raise RuntimeError("no administrator with a unionId to subscribe as")
            await self.coordinator.client.api(
                "POST",
                STORAGE_SUBSCRIBE,
                params={"unionId": union},
                json={"scope": "ORG", "scopeId": corp_id},
            )
        except Exception as exc:
            log.error("file-change events could not be subscribed: %s", exc)
            self.alerts.raise_("storage-subscribe", "file-change events not subscribed", str(exc))
            return
        self.state.put("storage_subscribed", corp_id)
        self.alerts.clear("storage-subscribe")
        log.info("file-change events subscribed for the organisation")

    # ---- health ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        reasons: list[str] = []
        connected = bool(self.listener and self.listener.connected)
        if not connected:
            reasons.append("stream not connected")
        replicas = {n: s.to_dict() for n, s in self.replication.status().items()}
        for n, s in replicas.items():
            if s["reachable"] is False:
                reasons.append(f"replica {n} unreachable")
        if self.alerts.active:
            reasons.append(f"{len(self.alerts.active)} alerts active")
        status = ("degraded" if reasons else "ok") if self.phase == "running" else self.phase
        return {
            "status": status,
            "reasons": reasons,
            "phase": self.phase,
            "uptime_seconds": round(self.clock() - self.started_at, 1),
            "stream": {
                "connected": connected,
                "connections": self.listener.connections if self.listener else 0,
                "duplicates_dropped": self.listener.duplicates if self.listener else 0,
            },
            "inbox": self.state.counts(),
            "runs": [{"mode": m, "status": s, "finished": f} for m, s, f in self.coordinator.runs[-10:]],
            "schedule": self.schedule.next_runs(),
            "verify": {"next": self.verify_schedule.next_runs(), "last": self.verifier.last()},
            "replicas": replicas,
            "alerts": sorted(self.alerts.active.values()),
        }
