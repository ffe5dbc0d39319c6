"""Prometheus metrics of the service (``/metrics``), on a registry of its own.

A registry per service instance (not the process-global default) so that tests can run several
services in one process and read each one's figures.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Capture latency buckets: the targets are p99 <= 10 s locally and <= 60 s on the replicas.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "dingvault_runs", "Backup runs by mode and outcome", ["mode", "status"], registry=r
        )
        self.items = Counter(
            "dingvault_items", "Items handled by runs, by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.api_calls = Counter(
            "dingvault_api_calls", "DingTalk API calls by endpoint", ["endpoint"], registry=r
        )
        self.api_throttles = Counter(
            "dingvault_api_throttles", "DingTalk throttling and error answers by kind", ["error"], registry=r
        )
        self.events_received = Counter(
            "dingvault_events_received",
            "Stream events and robot messages made durable",
            ["source", "duplicate"],
            registry=r,
        )
        self.events_handled = Counter(
            "dingvault_events_handled", "Inbox events by outcome", ["outcome"], registry=r
        )
        self.inbox_pending = Gauge(
            "dingvault_inbox_pending", "Events durable but not yet captured", registry=r
        )
        self.reconnects = Counter("dingvault_stream_reconnects", "Stream reconnect attempts", registry=r)
        self.stream_connected = Gauge(
            "dingvault_stream_connected", "1 while the Stream connection is up", registry=r
        )
        self.catchups = Counter("dingvault_catchup_runs", "Catch-up incrementals after a gap", registry=r)
        self.replica_lag = Gauge(
            "dingvault_replica_lag_seconds",
            "Age of the oldest object not yet on the replica",
            ["replica"],
            registry=r,
        )
        self.replica_pending = Gauge(
            "dingvault_replica_pending_objects", "Objects waiting to be shipped", ["replica"], registry=r
        )
        self.replica_reachable = Gauge(
            "dingvault_replica_reachable", "1 when the last pass reached the replica", ["replica"], registry=r
        )
        self.capture_latency = Histogram(
            "dingvault_capture_latency_seconds",
            "Event time to durable: stage=local (vault + catalog) or replica:<name>",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "dingvault_family_last_success_timestamp",
            "Epoch seconds of the last good capture",
            ["family"],
            registry=r,
        )
        self.alerts_active = Gauge("dingvault_alerts_active", "Alert conditions currently raised", registry=r)
        # Scheduled vault verification, per kind ("verify": the weekly one, "verify-sample").
        self.verify_runs = Counter(
            "dingvault_verify_runs",
            "Vault verifies by kind and outcome (ok, damaged, error, skipped)",
            ["kind", "status"],
            registry=r,
        )
        self.verify_last = Gauge(
            "dingvault_verify_last_timestamp_seconds",
            "Epoch seconds when the last verify finished",
            ["kind"],
            registry=r,
        )
        self.verify_ok = Gauge(
            "dingvault_verify_ok",
            "1 when the last verify found the vault whole, 0 when not",
            ["kind"],
            registry=r,
        )
        self.verify_errors = Gauge(
            "dingvault_verify_errors",
            "Damaged or missing objects the last verify found",
            ["kind"],
            registry=r,
        )
        self.verify_duration = Gauge(
            "dingvault_verify_duration_seconds", "How long the last verify took", ["kind"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
