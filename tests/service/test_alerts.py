"""Alerts: the signed DingTalk robot webhook and SMTP, each condition sent once until it clears."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dingvault.service.alerts import (
    AlertManager,
    AlertSendError,
    DingTalkRobotSender,
    EmailSender,
    robot_sign,
    signed_webhook_url,
)
from dingvault.service.config import DingTalkAlertConfig, EmailAlertConfig

SECRET = "SEC0123456789abcdef"


class _Receiver:
    """A loopback stand-in for oapi.dingtalk.com/robot/send that checks the signature itself."""

    def __init__(self, answer: dict | None = None) -> None:
        self.requests: list[tuple[dict[str, list[str]], dict]] = []
        self.answer = answer or {"errcode": 0, "errmsg": "ok"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((query, body))
                data = json.dumps(receiver.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/robot/send?access_token=tok123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def test_the_sign_is_the_documented_hmac_sha256_of_timestamp_newline_secret():
    ts = 1_700_000_000_123
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert urllib.parse.unquote_plus(robot_sign(SECRET, ts)) == expected
    url = signed_webhook_url("https://oapi.dingtalk.com/robot/send?access_token=x", SECRET, ts)
    assert url.startswith(f"https://oapi.dingtalk.com/robot/send?access_token=x&timestamp={ts}&sign=")
    assert (
        signed_webhook_url("https://h/robot/send?access_token=x", None, ts)
        == "https://h/robot/send?access_token=x"
    )


def test_the_robot_webhook_receives_a_signed_markdown_message(receiver):
    sender = DingTalkRobotSender(DingTalkAlertConfig(receiver.url, SECRET), clock=lambda: 1_700_000_000.5)
    sender.send("replica s3 lags 400 s", "details **here**")
    (query, body) = receiver.requests[0]
    assert query["access_token"] == ["tok123"]
    ts = int(query["timestamp"][0])
    assert ts == 1_700_000_000_500
    digest = hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "replica s3 lags 400 s"
    assert "details **here**" in body["markdown"]["text"]


def test_a_refusing_webhook_is_a_clear_error_without_the_token():
    r = _Receiver({"errcode": 310000, "errmsg": "sign not match"})
    try:
        with pytest.raises(AlertSendError) as info:
            DingTalkRobotSender(DingTalkAlertConfig(r.url, SECRET)).send("t", "x")
        assert "310000" in str(info.value) and "tok123" not in str(info.value)
    finally:
        r.close()
    assert "tok123" not in repr(DingTalkAlertConfig(r.url, SECRET))


def test_each_condition_is_sent_once_until_it_clears(receiver):
    manager = AlertManager([DingTalkRobotSender(DingTalkAlertConfig(receiver.url, SECRET))])
    assert manager.raise_("replica-lag:s3", "replica s3 lags", "x") is True
    assert manager.raise_("replica-lag:s3", "replica s3 lags", "x") is False
    manager.set("replica-lag:s3", True, "replica s3 lags", "x")
    assert len(receiver.requests) == 1
    manager.set("replica-lag:s3", False, "replica s3 lags", "x")
    manager.set("replica-lag:s3", False, "replica s3 lags", "x")
    assert len(receiver.requests) == 2
    assert receiver.requests[1][1]["markdown"]["title"].startswith("Resolved")
    manager.set("replica-lag:s3", True, "replica s3 lags", "x")  # re-armed after it cleared
    assert len(receiver.requests) == 3
    assert manager.sent == [
        ("replica-lag:s3", "raised"),
        ("replica-lag:s3", "cleared"),
        ("replica-lag:s3", "raised"),
    ]


def test_a_failing_sender_never_stops_the_others(receiver):
    class Broken:
        def send(self, title: str, text: str) -> None:
            raise AlertSendError("down")

    manager = AlertManager([Broken(), DingTalkRobotSender(DingTalkAlertConfig(receiver.url, None))])
    manager.raise_("k", "title", "text")
    assert len(receiver.requests) == 1
    assert "sign" not in receiver.requests[0][0]  # no secret configured: unsigned (keyword robots)


def test_email_alert_reaches_a_loopback_smtp_server():
    from aiosmtpd.controller import Controller

    received: list[tuple[str, list[str], bytes]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = EmailAlertConfig(host="127.0.0.1", port=port, sender="dv@example.mo", to=["it@example.mo"])
        AlertManager([EmailSender(config)]).raise_(
            "run-failed:full", "full run partial", "family files stopped"
        )
    finally:
        controller.stop()
    (mail_from, to, content) = received[0]
    assert mail_from == "dv@example.mo" and to == ["it@example.mo"]
    assert b"Subject: [dingvault] full run partial" in content and b"family files stopped" in content


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_smtp_server_is_a_clear_error():
    port = _free_port()
    config = EmailAlertConfig(host="127.0.0.1", port=port, sender="a@b", to=["c@d"], timeout=2)
    with pytest.raises(AlertSendError, match=f"SMTP 127.0.0.1:{port}"):
        EmailSender(config).send("t", "x")
