"""Shared fixtures for the connector tests: a client with tiny back-off delays, mocked with respx;
the demo company's emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import respx

from dingtalk_emulator.server import RunningEmulator, serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.client import ClientConfig, DingTalkClient, RetryPolicy

API = "https://api.test"
OAPI = "https://oapi.test"


def fast_config(**overrides: object) -> ClientConfig:
    values: dict[str, object] = {
        "app_key": "dingappkey",
        "app_secret": "s3cret-value",
        "api_base": API,
        "oapi_base": OAPI,
        "retry": RetryPolicy(
            max_attempts=4, base_delay=0.001, max_delay=0.01, throttle_delay=0.001, qpm_delay=0.002
        ),
        "ban_default_wait": 0.05,
        "ban_wait_unit": 0.01,
    }
    values.update(overrides)
    return ClientConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def mock() -> respx.MockRouter:
    # `using="httpx"` mocks at the client, whatever transport is under it (API calls run on aiohttp).
    with respx.mock(assert_all_called=False, using="httpx") as router:
        router.post(f"{API}/v1.0/oauth2/accessToken").respond(json={"accessToken": "tok-1", "expireIn": 7200})
        yield router


@pytest.fixture
async def client(mock: respx.MockRouter) -> AsyncIterator[DingTalkClient]:
    async with DingTalkClient(fast_config()) as c:
        yield c


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """The demo company, limits off, one per test module; a module that needs another (a seed,
    realistic limits, a fresh one per test) defines its own."""
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    yield emu
    emu.stop()
