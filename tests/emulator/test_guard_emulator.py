"""The Guard inside the full emulator: real routes give the templates, the token store takes the faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dingtalk_emulator.server import RunningEmulator
from dingtalk_emulator.state import EmulatorConfig


@pytest.fixture(scope="module")
def emu() -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorConfig(profile="demo", seed=4)) as running:
        yield running


@pytest.fixture()
def client(emu: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=30) as c:
        yield c
        # Leave the shared emulator as found.
        c.put("/_emulator/faults", json={})
        c.put("/_emulator/limits", json={"mode": "realistic", "qps": 20, "reset": True})
        c.post("/_emulator/stats/reset")


def app_token(c: httpx.Client) -> str:
    org = c.get("/_emulator/org", params={"counts": "false"}).json()
    reply = c.post("/v1.0/oauth2/accessToken", json={"appKey": org["appKey"], "appSecret": org["appSecret"]})
    assert reply.status_code == 200, reply.text
    return reply.json()["accessToken"]


def some_instance(c: httpx.Client) -> dict[str, Any]:
    return c.get("/_emulator/truth", params={"kind": "approval"}).json()["items"][0]


def test_qps_limit_counts_per_route_template(client):
    token = app_token(client)
    inst = some_instance(client)
    assert client.put("/_emulator/limits", json={"qps": 2, "reset": True}).status_code == 200
    client.post("/_emulator/stats/reset")
    headers = {"x-acs-dingtalk-access-token": token}
    codes = []
    for _ in range(10):
        r = client.get(
            "/v1.0/workflow/processInstances", params={"processInstanceId": inst["id"]}, headers=headers
        )
        codes.append(r.status_code)
        if r.status_code == 403:
            assert r.json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
    assert 403 in codes and 200 in codes
    stats = client.get("/_emulator/stats").json()
    assert stats["calls"]["/v1.0/workflow/processInstances"] == 10
    assert stats["throttled_by"]["qps"] == codes.count(403)


def test_storage_paths_share_one_template(client):
    token = app_token(client)
    client.post("/_emulator/stats/reset")
    headers = {"x-acs-dingtalk-access-token": token}
    for space in ("1", "2", "3"):
        client.get(f"/v1.0/storage/spaces/{space}/dentries", params={"parentId": "0"}, headers=headers)
    calls = client.get("/_emulator/stats").json()["calls"]
    assert calls == {"/v1.0/storage/spaces/{spaceId}/dentries": 3}


def test_token_fault_invalidates_the_emulators_tokens(client):
    token = app_token(client)
    inst = some_instance(client)
    assert client.put("/_emulator/faults", json={"token_expire_after": 2}).status_code == 200
    headers = {"x-acs-dingtalk-access-token": token}
    first = client.get(
        "/v1.0/workflow/processInstances", params={"processInstanceId": inst["id"]}, headers=headers
    )
    second = client.get(
        "/v1.0/workflow/processInstances", params={"processInstanceId": inst["id"]}, headers=headers
    )
    assert first.status_code == 200
    assert second.status_code == 400 and second.json()["code"] == "InvalidAuthentication"
    assert client.get("/_emulator/stats").json()["faults"]["token_expire"] == 1


def test_reset_and_truncate_against_real_endpoints(client):
    token = app_token(client)
    assert client.put("/_emulator/faults", json={"reset": 1.0}).status_code == 200
    with pytest.raises(httpx.TransportError):
        client.get("/topapi/v2/user/list", params={"access_token": token, "dept_id": 1, "size": 10})
    assert client.put("/_emulator/faults", json={"truncate": 1.0}).status_code == 200
    inst = next(
        a
        for a in client.get("/_emulator/truth", params={"kind": "approval"}).json()["items"]
        if a["attachments"]
    )
    att = inst["attachments"][0]
    link = client.post(
        "/v1.0/workflow/processInstances/spaces/files/urls/download",
        json={"processInstanceId": inst["id"], "fileId": att["fileId"]},
        headers={"x-acs-dingtalk-access-token": token},
    )
    assert link.status_code == 200, link.text
    with pytest.raises(httpx.RemoteProtocolError):  # fewer bytes than Content-Length promised
        client.get(link.json()["result"]["downloadUri"])
    stats = client.get("/_emulator/stats").json()
    assert stats["faults"]["reset"] == 1 and stats["faults"]["truncate"] == 1
