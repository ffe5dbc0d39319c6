"""The service's settings: ``<home>/service.toml`` (optional; every value has a default).

Example::

    timezone = "Asia/Macau"
    incremental_cron = "0 0 * * *"      # daily at 00:00
    full_cron = "0 1 * * sun"           # weekly, Sunday 01:00
    jitter_seconds = 300                # stay off the top of the hour (DingTalk's advice)
    listen = "127.0.0.1:8870"           # /healthz and /metrics
    staleness_minutes = 1500            # alert when a family had no successful capture for this long
    replica_lag_seconds = 300           # alert when a replica lags more than this
    offboarding_hold_days = 365
    verify_cron = "0 3 * * sat"         # weekly vault verify, Saturday 03:00 ("" turns it off)
    verify_read_fraction = 1.0          # share of packs that verify reads back (0: structure only)
    verify_sample_cron = ""             # e.g. "30 3 * * *": a daily sampled read-verify as well
    verify_sample_fraction = 0.05       # share of packs the sampled verify reads

    [alerts.dingtalk]
    webhook = "https://oapi.dingtalk.com/robot/send?access_token=..."   # the token is a secret:
    secret_file = "/etc/dingvault/robot-secret"                          # both may be files instead
    [alerts.email]
    host = "smtp.example.mo"
    port = 587
    starttls = true
    sender = "dingvault@example.mo"
    to = ["it@example.mo"]
    password_file = "/etc/dingvault/smtp-password"

Secrets (the robot's signing secret, the webhook's access token, the SMTP password) are never
read from this file: only from the files it names or from the environment
(``DINGVAULT_ALERT_ROBOT_SECRET``, ``DINGVAULT_ALERT_WEBHOOK``, ``DINGVAULT_SMTP_PASSWORD``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger


class ServiceConfigError(Exception):
    """service.toml is unreadable or holds a wrong value; the message names the key."""


@dataclass
class DingTalkAlertConfig:
    webhook: str  # https://oapi.dingtalk.com/robot/send?access_token=...
    secret: str | None = None  # the robot's "加签" secret (SEC...)

    def __repr__(self) -> str:  # never print the token or the secret
        return "DingTalkAlertConfig(webhook=<hidden>, secret=<hidden>)"


@dataclass
class EmailAlertConfig:
    host: str
    sender: str
    to: list[str]
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"EmailAlertConfig(host={self.host!r}, port={self.port}, to={self.to!r}, password=<hidden>)"


@dataclass
class ServiceConfig:
    timezone: str = "Asia/Macau"
    incremental_cron: str = "0 0 * * *"
    full_cron: str = "0 1 * * sun"
    jitter_seconds: float = 300.0
    listen: str = "127.0.0.1:8870"
    staleness_minutes: float = 1500.0  # a day and an hour: the daily incremental must have run
    replica_lag_seconds: float = 300.0
    stream_down_seconds: float = 300.0  # alert when no Stream connection for this long
    offboarding_hold_days: int = 365
    # Scheduled vault verification: every verify checks the whole structure (indexes, packs
    # present, snapshots, catalog exports) and reads back a share of the packs.
    verify_cron: str = "0 3 * * sat"
    verify_read_fraction: float = 1.0
    verify_sample_cron: str = ""
    verify_sample_fraction: float = 0.05
    # Event processing: events collected for at most this long go into one event-driven run.
    batch_seconds: float = 0.2
    # Reconnect back-off of the Stream connection (seconds).
    reconnect_initial: float = 0.5
    reconnect_max: float = 60.0
    # A connection that lived at least this long resets the back-off.
    reconnect_stable_after: float = 30.0
    # Replication poll interval and back-off ceiling (seconds).
    replication_interval: float = 2.0
    replication_max_backoff: float = 60.0
    alert_check_seconds: float = 15.0
    dingtalk_alert: DingTalkAlertConfig | None = None
    email_alert: EmailAlertConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def cron(self, which: str) -> CronTrigger:
        """The trigger of ``which`` ("incremental", "full", "verify" or "verify_sample")."""
        expr = getattr(self, f"{which}_cron", None)
        if not isinstance(expr, str):
            raise ServiceConfigError(f"no schedule named {which!r}")
        try:
            return CronTrigger.from_crontab(expr, timezone=self.timezone)
        except (ValueError, TypeError) as exc:
            raise ServiceConfigError(f"{which}_cron = {expr!r}: {exc}") from exc

    def verify_schedules(self) -> dict[str, tuple[CronTrigger, float]]:
        """Verify mode -> (trigger, share of packs read), for the schedules switched on.

        "verify" comes first: when both are due it runs alone, since it covers the sample."""
        out: dict[str, tuple[CronTrigger, float]] = {}
        for mode, which, key in (
            ("verify", "verify", "verify_read_fraction"),
            ("verify-sample", "verify_sample", "verify_sample_fraction"),
        ):
            if not str(getattr(self, f"{which}_cron")).strip():
                continue
            fraction = float(getattr(self, key))
            if not 0.0 <= fraction <= 1.0:
                raise ServiceConfigError(f"{key} = {fraction}: expected a share of packs between 0 and 1")
            out[mode] = (self.cron(which), fraction)
        return out

    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        try:
            return host or "127.0.0.1", int(port)
        except ValueError:
            raise ServiceConfigError(f"listen = {self.listen!r}: expected host:port") from None


def _secret(path: Any, env: str, what: str) -> str | None:
    if path:
        try:
            return Path(str(path)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ServiceConfigError(f"{what}: cannot read {path}: {exc}") from exc
    value = os.environ.get(env)
    return value.strip() if value else None


def load_service_config(path: Path) -> ServiceConfig:
    """Read ``service.toml``; a missing file means every default."""
    if not path.exists():
        return ServiceConfig()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ServiceConfigError(f"{path}: {exc}") from exc
    alerts = doc.pop("alerts", {}) or {}
    for forbidden in ("secret", "password", "access_token"):
        for table in alerts.values():
            if isinstance(table, dict) and forbidden in table:
                raise ServiceConfigError(
                    f"{path}: [alerts] {forbidden} must not be written in the file; use {forbidden}_file"
                )
    config = ServiceConfig()
    known = set(ServiceConfig.__dataclass_fields__) - {"dingtalk_alert", "email_alert", "extra"}
    for key, value in doc.items():
        if key not in known:
            config.extra[key] = value
            continue
        default = getattr(config, key)
        try:
            setattr(config, key, type(default)(value))
        except (TypeError, ValueError):
            raise ServiceConfigError(f"{path}: {key} = {value!r} is not a {type(default).__name__}") from None
    dt = alerts.get("dingtalk")
    if isinstance(dt, dict):
        webhook = _secret(dt.get("webhook_file"), "DINGVAULT_ALERT_WEBHOOK", "alerts.dingtalk.webhook_file")
        webhook = webhook or dt.get("webhook")
        if not webhook:
            raise ServiceConfigError(f"{path}: [alerts.dingtalk] needs webhook or webhook_file")
        secret = _secret(dt.get("secret_file"), "DINGVAULT_ALERT_ROBOT_SECRET", "alerts.dingtalk.secret_file")
        config.dingtalk_alert = DingTalkAlertConfig(webhook=str(webhook), secret=secret)
    em = alerts.get("email")
    if isinstance(em, dict):
        try:
            config.email_alert = EmailAlertConfig(
                host=str(em["host"]),
                sender=str(em["sender"]),
                to=[str(x) for x in em["to"]],
                port=int(em.get("port", 25)),
                starttls=bool(em.get("starttls", False)),
                username=em.get("username"),
                password=_secret(
                    em.get("password_file"), "DINGVAULT_SMTP_PASSWORD", "alerts.email.password_file"
                ),
            )
        except KeyError as exc:
            raise ServiceConfigError(f"{path}: [alerts.email] needs {exc.args[0]}") from None
    config.cron("incremental")
    config.cron("full")
    config.verify_schedules()
    config.listen_address()
    return config
