"""Alerts: failed runs, stale families, replica lag, verification failures - each once until it clears.

Senders:

* ``DingTalkRobotSender`` - a custom group robot's webhook, signed as DingTalk documents it:
  ``sign = urlencode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}")))`` with the
  timestamp in milliseconds, sent as ``...robot/send?access_token=...&timestamp=...&sign=...`` with
  a ``markdown`` body. The answer is ``{"errcode": 0, "errmsg": "ok"}`` on success.
* ``EmailSender`` - SMTP through the standard library (``smtplib``), STARTTLS when configured.

``AlertManager.raise_(key, title, text)`` sends only when ``key`` is not already raised;
``clear(key)`` sends one "resolved" message and re-arms it. A sender that fails is logged and
retried at the next raise of another condition; it never stops the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import smtplib
import threading
import time
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from dingvault.service.config import DingTalkAlertConfig, EmailAlertConfig

log = logging.getLogger(__name__)


class AlertSender(Protocol):
    def send(self, title: str, text: str) -> None: ...


def robot_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value of a signed custom robot (already URL-encoded)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_webhook_url(webhook: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return webhook
    sep = "&" if "?" in webhook else "?"
    return f"{webhook}{sep}timestamp={timestamp_ms}&sign={robot_sign(secret, timestamp_ms)}"


class AlertSendError(Exception):
    """The alert could not be delivered (the message says where; never the token or secret)."""


class DingTalkRobotSender:
    def __init__(self, config: DingTalkAlertConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock

    def send(self, title: str, text: str) -> None:
        url = signed_webhook_url(self.config.webhook, self.config.secret, int(self._clock() * 1000))
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": f"### {title}\n\n{text}"}}
        try:
            r = httpx.post(url, json=body, timeout=15)
            answer = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AlertSendError(f"DingTalk robot webhook: {type(exc).__name__}") from None
        if r.status_code != 200 or answer.get("errcode") != 0:
            raise AlertSendError(
                f"DingTalk robot webhook answered {r.status_code} errcode={answer.get('errcode')}: "
                f"{answer.get('errmsg')}"
            )


class EmailSender:
    def __init__(self, config: EmailAlertConfig) -> None:
        self.config = config

    def send(self, title: str, text: str) -> None:
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = f"[dingvault] {title}"
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.to)
        msg.set_content(text)
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout) as smtp:
                if c.starttls:
                    smtp.starttls()
                if c.username and c.password:
                    smtp.login(c.username, c.password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise AlertSendError(f"SMTP {c.host}:{c.port}: {type(exc).__name__}: {exc}") from None


class AlertManager:
    def __init__(self, senders: list[AlertSender], *, metrics: Any = None) -> None:
        self.senders = senders
        self.metrics = metrics
        self.active: dict[str, str] = {}  # key -> title
        self.sent: list[tuple[str, str]] = []  # (key, "raised"|"cleared"), for status and tests
        self._lock = threading.Lock()

    def raise_(self, key: str, title: str, text: str) -> bool:
        """Raise condition ``key``; True when this call sent it (it was not raised yet)."""
        with self._lock:
            if key in self.active:
                return False
            self.active[key] = title
            self._gauge()
        log.warning("alert: %s: %s", title, text)
        self._send(key, "raised", title, text)
        return True

    def clear(self, key: str, text: str = "") -> bool:
        with self._lock:
            title = self.active.pop(key, None)
            self._gauge()
        if title is None:
            return False
        log.info("alert cleared: %s", title)
        self._send(key, "cleared", f"Resolved: {title}", text or "The condition has cleared.")
        return True

    def set(self, key: str, condition: bool, title: str, text: str) -> None:
        """Raise while ``condition`` holds, clear when it stops holding."""
        if condition:
            self.raise_(key, title, text)
        else:
            self.clear(key)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.alerts_active.set(len(self.active))

    def _send(self, key: str, what: str, title: str, text: str) -> None:
        self.sent.append((key, what))
        for sender in self.senders:
            try:
                sender.send(title, text)
            except AlertSendError as exc:
                log.error("alert %s could not be sent: %s", key, exc)
            except Exception:  # a sender bug must not stop the service
                log.exception("alert %s: sender %s failed", key, type(sender).__name__)


def senders_from_config(
    dingtalk: DingTalkAlertConfig | None, email: EmailAlertConfig | None
) -> list[AlertSender]:
    out: list[AlertSender] = []
    if dingtalk is not None:
        out.append(DingTalkRobotSender(dingtalk))
    if email is not None:
        out.append(EmailSender(email))
    return out
