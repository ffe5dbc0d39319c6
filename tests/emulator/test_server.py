"""A real server on a free loopback port, the CLI parser, and the demo walkthrough."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from dingtalk_emulator.cli import build_parser, config_from_args
from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig


def test_real_server_serves_both_generations_on_one_port() -> None:
    with RunningEmulator(EmulatorConfig(limits="off")) as emu:
        with httpx.Client(base_url=emu.base_url, timeout=5) as http:
            org = http.get("/_emulator/org").json()
            assert org["apiBase"] == org["oapiBase"] == emu.base_url
            tok = http.get(
                "/gettoken", params={"appkey": org["appKey"], "appsecret": org["appSecret"]}
            ).json()["access_token"]
            legacy = http.post(
                "/topapi/v2/department/listsub", params={"access_token": tok}, json={"dept_id": 1}
            ).json()
            assert legacy["errcode"] == 0
            new = http.get(
                "/v1.0/contact/empLeaveRecords",
                params={"startTime": "2026-01-01T00:00:00Z", "maxResults": 5},
                headers={"x-acs-dingtalk-access-token": tok},
            )
            assert new.status_code == 200 and "records" in new.json()


def test_cli_parser_builds_the_config() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--port",
            "0",
            "--profile",
            "small",
            "--seed",
            "5",
            "--limits",
            "off",
            "--scopes",
            "qyapi_get_member, Workflow.Instance.Read",
            "--exclusive",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.profile, cfg.seed, cfg.limits, cfg.exclusive) == ("small", 5, "off", True)
    assert cfg.scopes == {"qyapi_get_member", "Workflow.Instance.Read"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--profile", "huge"])


@pytest.mark.slow
def test_cli_serve_starts_and_answers(tmp_path) -> None:
    from dingtalk_emulator.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dingtalk_emulator.cli", "serve", "--port", str(port), "--limits", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/_emulator/org", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.1)
        assert r.json()["profile"] == "demo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out = proc.stdout.read()
    assert "corpId=" in out and r.json()["appSecret"] not in out  # the secret is not printed


def test_demo_walkthrough_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    from dingtalk_emulator.demo import show_demo

    assert show_demo(port=0) == 0
    out = capsys.readouterr().out
    for word in (
        "corpId",
        "appSecret",
        "robotCode",
        "agentId",
        "approval",
        "/v1.0/oauth2/accessToken",
        "/topapi/v2/department/listsub",
    ):
        assert word in out


def test_truth_walks_survive_concurrent_mutations() -> None:
    import threading

    with RunningEmulator(EmulatorConfig(limits="off", profile="small")) as emu:
        results: dict[str, object] = {}

        def walk(kind: str) -> None:
            with httpx.Client(base_url=emu.base_url, timeout=60) as http:
                r = http.get("/_emulator/truth", params={"kind": kind, "format": "jsonl"})
                results[kind] = (r.status_code, len(r.text.splitlines()))

        threads = [
            threading.Thread(target=walk, args=(k,)) for k in ("calendar_event", "todo", "user", "report")
        ]
        for t in threads:
            t.start()
        with httpx.Client(base_url=emu.base_url, timeout=30) as http:
            for seed in range(5):
                r = http.post("/_emulator/mutate", json={"op": "random", "count": 10, "seed": seed})
                assert r.status_code == 200, r.text
        for t in threads:
            t.join(timeout=60)
        assert all(code == 200 and n > 0 for code, n in results.values()), results
        assert len(results) == 4


def test_demo_on_a_taken_port_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from dingtalk_emulator.demo import show_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert show_demo(port=s.getsockname()[1]) == 1
    assert "could not start" in capsys.readouterr().err
