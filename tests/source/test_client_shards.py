"""The client's connection-pool shards: small pools, least busy first, leases always returned."""

from __future__ import annotations

import httpx
import pytest
import respx

from dingvault.source.client import SHARD_CONNECTIONS, DingTalkClient, HttpShards
from dingvault.source.errors import DownloadError

from .conftest import API, fast_config


def test_shard_count_follows_the_concurrency() -> None:
    assert len(HttpShards(fast_config(max_concurrency=32), None)) == 32 // SHARD_CONNECTIONS
    assert len(HttpShards(fast_config(max_concurrency=5), None)) == 2
    assert len(HttpShards(fast_config(max_concurrency=1), None)) == 1


def test_a_given_transport_is_used_by_one_shard() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    assert len(HttpShards(fast_config(max_concurrency=32), transport)) == 1


async def test_leases_spread_over_the_least_busy_shards_and_are_returned() -> None:
    shards = HttpShards(fast_config(max_concurrency=16), None)
    try:
        held = [shards.lease() for _ in range(8)]
        clients = [lease.__enter__() for lease in held]
        # Eight leases over four shards: two each, never three on one while another has one.
        assert shards._busy == [2, 2, 2, 2]
        assert len({id(c) for c in clients}) == 4
        held[0].__exit__(None, None, None)
        assert shards._busy == [1, 2, 2, 2]
        with shards.lease() as again:
            assert again is clients[0]  # the freed shard is the least busy one
        for lease in held[1:]:
            lease.__exit__(None, None, None)
        assert shards._busy == [0, 0, 0, 0]
    finally:
        await shards.aclose()


async def test_a_failed_request_returns_its_lease(mock: respx.MockRouter) -> None:
    mock.get(f"{API}/v1.0/x").mock(side_effect=httpx.ConnectError("refused"))
    async with DingTalkClient(fast_config(max_concurrency=8)) as client:
        with pytest.raises(Exception, match="ConnectError"):
            await client.api("GET", "/v1.0/x")
        assert client._http._busy == [0, 0]


async def test_a_download_holds_its_shard_while_it_streams(mock: respx.MockRouter) -> None:
    busy_during_call: list[list[int]] = []
    mock.get("https://files.test/a").respond(200, content=b"abcdef")
    async with DingTalkClient(fast_config(max_concurrency=8)) as client:

        def answer(request: httpx.Request) -> httpx.Response:
            busy_during_call.append(list(client._http._busy))
            return httpx.Response(200, json={"ok": True})

        mock.get(f"{API}/v1.0/y").mock(side_effect=answer)
        stream = client.download("https://files.test/a")
        assert await anext(stream) == b"abcdef"
        assert client._http._busy == [1, 0]
        # A call made while the download is open goes to the other shard.
        await client.api("GET", "/v1.0/y")
        assert busy_during_call == [[1, 1]]
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert client._http._busy == [0, 0]


async def test_a_failed_download_returns_its_lease(mock: respx.MockRouter) -> None:
    mock.get("https://files.test/gone").respond(404, content=b"no")
    async with DingTalkClient(fast_config(max_concurrency=8)) as client:
        with pytest.raises(DownloadError):
            async for _ in client.download("https://files.test/gone"):
                pass
        assert client._http._busy == [0, 0]
