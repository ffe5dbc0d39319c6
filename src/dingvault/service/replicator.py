"""Continuous replication glue: the vault's ``Replicator`` inside the service.

* every replica in ``<home>/replicas.json`` gets its own shipping thread (``vault.replication``);
  it only reads the primary, so a replica outage never slows or stops local capture - the
  backlog grows, and drains when the replica is back;
* after each committed run the coordinator calls ``committed()``: the replicator is woken at once
  (``notify()``) and the run's snapshot is tracked until it is visible on each replica, which gives
  the replica stage of the capture latency (a snapshot is shipped only after its packs and index,
  so "snapshot on the replica" means "the run is durable there");
* ``check()`` (every few seconds) turns ``status()`` into metrics and into the replica-lag alert,
  raised once while a replica lags more than the target and cleared when it catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dingvault.vault.backends import BackendError
from dingvault.vault.replicas import ReplicaRegistry, open_replica_backend
from dingvault.vault.replication import ReplicaStatus, Replicator
from dingvault.vault.snapshot import SNAPSHOT_PREFIX

log = logging.getLogger(__name__)


class ReplicationGlue:
    def __init__(
        self,
        vault: Any,
        home: Path,
        *,
        metrics: Any = None,
        alerts: Any = None,
        lag_target: float = 300.0,
        interval: float = 2.0,
        max_backoff: float = 60.0,
        backend_opts: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = ReplicaRegistry.in_home(home)
        self.replicas = self.registry.list()
        self.metrics = metrics
        self.alerts = alerts
        self.lag_target = lag_target
        self.clock = clock
        self._backend_opts = dict(backend_opts or {})
        self.replicator: Replicator | None = None
        if self.replicas:
            self.replicator = Replicator.from_registry(
                vault,
                self.registry,
                interval=interval,
                max_backoff=max_backoff,
                backend_opts=self._backend_opts,
            )
        # snapshot id -> (event times still waiting, replicas not yet holding it)
        self._tracked: dict[str, tuple[list[float], set[str]]] = {}
        self._probes: dict[str, Any] = {}
        # (replica, event time -> snapshot on the replica, seconds) of recent events, for bench/rpo.py.
        self.latencies: deque[tuple[str, float]] = deque(maxlen=200_000)
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.replicator is not None:
            self.replicator.start()

    def stop(self) -> None:
        if self.replicator is not None:
            self.replicator.stop()
        for backend in self._probes.values():
            try:
                backend.close()
            except BackendError:
                pass

    def committed(self, snapshot_id: str | None, event_times: list[float]) -> None:
        if self.replicator is None:
            return
        self.replicator.notify()
        if snapshot_id and event_times:
            with self._lock:
                self._tracked[snapshot_id] = (event_times, {r.name for r in self.replicas})
                while len(self._tracked) > 10_000:  # a replica gone for days: keep the newest
                    self._tracked.pop(next(iter(self._tracked)))

    def status(self) -> dict[str, ReplicaStatus]:
        return self.replicator.status() if self.replicator is not None else {}

    def check(self) -> dict[str, ReplicaStatus]:
        """Metrics, alerts and replica-stage latencies; safe to call from any thread."""
        statuses = self.status()
        for name, st in statuses.items():
            if self.metrics is not None:
                self.metrics.replica_lag.labels(replica=name).set(st.lag_seconds)
                self.metrics.replica_pending.labels(replica=name).set(st.pending_objects)
                self.metrics.replica_reachable.labels(replica=name).set(1 if st.reachable else 0)
            if self.alerts is not None:
                self.alerts.set(
                    f"replica-lag:{name}",
                    st.lag_seconds > self.lag_target,
                    f"replica {name} lags {st.lag_seconds:.0f} s",
                    f"Replica {name} ({st.url}) holds back {st.pending_objects} objects "
                    f"({st.pending_bytes / 1e6:.1f} MB); target {self.lag_target:.0f} s. "
                    f"Last error: {st.last_error or '-'}. Local capture continues; the backlog "
                    "drains when the replica is reachable again.",
                )
        self._observe_shipped()
        return statuses

    def _probe(self, name: str) -> Any:
        if name not in self._probes:
            replica = self.registry.get(name)
            self._probes[name] = open_replica_backend(replica, **self._backend_opts)
        return self._probes[name]

    def _observe_shipped(self) -> None:
        with self._lock:
            tracked = list(self._tracked.items())
        now = self.clock()
        for sid, (times, waiting) in tracked:
            for name in sorted(waiting):
                try:
                    there = self._probe(name).exists(SNAPSHOT_PREFIX + sid)
                except BackendError:
                    there = False  # unreachable: the lag alert speaks for it
                if there:
                    waiting.discard(name)
                    for t in times:
                        self.latencies.append((name, max(0.0, now - t)))
                        if self.metrics is not None:
                            self.metrics.capture_latency.labels(stage=f"replica:{name}").observe(
                                max(0.0, now - t)
                            )
            if not waiting:
                with self._lock:
                    self._tracked.pop(sid, None)

    def wait_in_sync(self, timeout: float) -> bool:
        return self.replicator.wait_in_sync(timeout) if self.replicator is not None else True
