"""Helpers for the emulator's contract tests: an app on a fixed, movable clock, tokens, truth, mutations."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from dingtalk_emulator.server import create_app
from dingtalk_emulator.state import EmulatorConfig

# 2026-03-02 10:00 Macau time: a Monday, so attendance windows hold weekdays.
T0 = 1772416800.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Emu:
    client: Any
    state: Any
    clock: FakeClock
    org: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def token(self) -> str:
        r = self.client.post(
            "/v1.0/oauth2/accessToken",
            json={"appKey": self.org["appKey"], "appSecret": self.org["appSecret"]},
        )
        assert r.status_code == 200, r.text
        return r.json()["accessToken"]

    def h(self) -> dict[str, str]:
        return {"x-acs-dingtalk-access-token": self.token()}

    def q(self) -> dict[str, str]:
        return {"access_token": self.token()}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def truth(self, kind: str) -> list[dict[str, Any]]:
        r = self.client.get("/_emulator/truth", params={"kind": kind})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["items"])
        return body["items"]

    def mutate(self, op: str, **params: Any) -> dict[str, Any]:
        r = self.client.post("/_emulator/mutate", json={"op": op, **params})
        assert r.status_code == 200, r.text
        return r.json()


def make_emu(*, fetch_org: bool = True, **config: Any) -> Emu:
    config.setdefault("limits", "off")
    clock = FakeClock()
    app, state = create_app(EmulatorConfig(**config), clock=clock)
    state.base_url = "http://testserver"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about its httpx transport
        from starlette.testclient import TestClient

        client = TestClient(app)
    org = client.get("/_emulator/org").json() if fetch_org else {**state.org.credentials(), "counts": {}}
    emu = Emu(client, state, clock, org)
    real_publish = state.hub.publish_event

    def record(event_type: str, data: dict[str, Any]) -> str:
        emu.events.append((event_type, data))
        return real_publish(event_type, data)

    state.hub.publish_event = record
    return emu
