"""The client's HTTP layer: httpx on aiohttp, or httpx's own transport in shards behind a proxy.

The loopback tests talk to tiny asyncio servers, so the real aiohttp transport is exercised:
garbled or cut answers become a retried `TransientError`, a cut download resumes with `Range`,
proxies from the environment are used, and pre-signed download URLs reach the server byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import respx

from dingvault.source._aiohttp_transport import AiohttpTransport
from dingvault.source._http import SHARD_CONNECTIONS, HttpShards, OneClient
from dingvault.source.client import DingTalkClient
from dingvault.source.errors import DownloadError, TransientError

from .conftest import API, fast_config

TOKEN_ANSWER = b'{"accessToken": "tok-1", "expireIn": 7200}'


def shards(max_concurrency: int, transport: httpx.AsyncBaseTransport | None = None) -> HttpShards:
    return HttpShards(max_concurrency=max_concurrency, timeout=5.0, user_agent="t", transport=transport)


def test_shard_count_follows_the_concurrency() -> None:
    assert len(shards(32)) == 32 // SHARD_CONNECTIONS
    assert len(shards(5)) == 2
    assert len(shards(1)) == 1


def test_a_given_transport_is_used_by_one_shard() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    assert len(shards(32, transport)) == 1


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def behind_proxy(no_proxy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")


def test_requests_run_on_aiohttp_unless_a_transport_or_a_proxy_is_given(
    no_proxy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = DingTalkClient(fast_config())._http
    assert isinstance(http, OneClient)
    assert isinstance(http.http._transport, AiohttpTransport)
    given = httpx.MockTransport(lambda request: httpx.Response(200))
    http = DingTalkClient(fast_config(), transport=given)._http
    assert isinstance(http, OneClient)
    assert http.http._transport is given
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert isinstance(DingTalkClient(fast_config())._http, HttpShards)


async def test_leases_spread_over_the_least_busy_shards_and_are_returned() -> None:
    pool = shards(16)
    try:
        held = [pool.lease() for _ in range(8)]
        clients = [lease.__enter__() for lease in held]
        # Eight leases over four shards: two each, never three on one while another has one.
        assert pool._busy == [2, 2, 2, 2]
        assert len({id(c) for c in clients}) == 4
        held[0].__exit__(None, None, None)
        assert pool._busy == [1, 2, 2, 2]
        with pool.lease() as again:
            assert again is clients[0]  # the freed shard is the least busy one
        for lease in held[1:]:
            lease.__exit__(None, None, None)
        assert pool._busy == [0, 0, 0, 0]
    finally:
        await pool.aclose()


async def test_behind_a_proxy_a_download_holds_its_shard_and_calls_use_another(
    behind_proxy: None, mock: respx.MockRouter
) -> None:
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
        await client.api("GET", "/v1.0/y")
        assert busy_during_call == [[1, 1]]  # the call went to the other shard
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert client._http._busy == [0, 0]


async def test_behind_a_proxy_a_failed_download_returns_its_lease(
    behind_proxy: None, mock: respx.MockRouter
) -> None:
    mock.get("https://files.test/gone").respond(404, content=b"no")
    async with DingTalkClient(fast_config(max_concurrency=8)) as client:
        with pytest.raises(DownloadError):
            async for _ in client.download("https://files.test/gone"):
                pass
        assert client._http._busy == [0, 0]


# ---------------------------------------------------------------- loopback servers

# (request head, request number) -> raw answer; None: close without a word; (raw, True): write
# the answer, then close the connection.
Answer = Callable[[bytes, int], bytes | tuple[bytes, bool] | None]


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server that writes `answer(head, n)` verbatim."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                heads.append(head)
                raw = answer(head, len(heads))
                if raw is None:
                    break
                close = isinstance(raw, tuple)
                writer.write(raw[0] if isinstance(raw, tuple) else raw)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


def json_answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def first_path(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


@pytest.mark.parametrize(
    "broken",
    [
        b"NOT-HTTP garbage\r\n\r\n",  # a status line no parser accepts
        (b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"ok"', True),  # cut short, then closed
        None,  # connection closed without an answer
    ],
    ids=["garbled", "truncated", "closed"],
)
async def test_a_broken_answer_over_aiohttp_is_retried(
    no_proxy: None, broken: bytes | tuple[bytes, bool] | None
) -> None:
    def answer(head: bytes, n: int) -> bytes | tuple[bytes, bool] | None:
        if b"accessToken" in first_path(head):
            return json_answer(TOKEN_ANSWER)
        if n == 2:  # the first API call gets the broken answer
            return broken
        return json_answer(b'{"ok": true}')

    async with raw_server(answer) as (base, heads):
        async with DingTalkClient(fast_config(api_base=base, oapi_base=base)) as client:
            assert await client.api("POST", "/v1.0/thing", json={}) == {"ok": True}
            assert client.retries == 1
    assert [first_path(h) for h in heads[1:]] == [b"/v1.0/thing", b"/v1.0/thing"]


async def test_an_answer_that_never_comes_is_a_transient_error_naming_the_endpoint(no_proxy: None) -> None:
    def answer(head: bytes, n: int) -> bytes | None:
        if b"accessToken" in first_path(head):
            return json_answer(TOKEN_ANSWER)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"  # never completed

    async with raw_server(answer) as (base, _heads):
        config = fast_config(api_base=base, oapi_base=base, timeout=0.3)
        async with DingTalkClient(config) as client:
            with pytest.raises(TransientError, match="gave up after 4 attempts") as caught:
                await client.api("GET", "/v1.0/slow")
    assert caught.value.endpoint == "/v1.0/slow"


async def test_api_calls_use_the_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The "proxy" answers everything itself; a proxied request carries the absolute URL.
    def answer(head: bytes, n: int) -> bytes | None:
        if b"accessToken" in first_path(head):
            return json_answer(TOKEN_ANSWER)
        return json_answer(b'{"via": "proxy"}')

    async with raw_server(answer) as (proxy, heads):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        config = fast_config(api_base="http://api.dingtalk.invalid", oapi_base="http://oapi.dingtalk.invalid")
        async with DingTalkClient(config) as client:
            assert await client.api("GET", "/v1.0/x") == {"via": "proxy"}
    assert first_path(heads[-1]) == b"http://api.dingtalk.invalid/v1.0/x"


async def test_a_presigned_download_url_reaches_the_server_byte_for_byte(no_proxy: None) -> None:
    # A signature's percent-encoding must not be normalised on the way (e.g. `%2f` kept as is).
    signed = "/f/a%7Eb?Expires=1&Signature=ab%2Bc%2fd%3D"

    def answer(head: bytes, n: int) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"

    async with raw_server(answer) as (base, heads):
        async with DingTalkClient(fast_config(api_base=base, oapi_base=base)) as client:
            data = b"".join([chunk async for chunk in client.download(base + signed)])
    assert data == b"abc"
    assert first_path(heads[0]) == signed.encode()


async def test_a_download_cut_short_over_aiohttp_resumes_with_range(no_proxy: None) -> None:
    content = bytes(range(256)) * 4096  # 1 MiB

    def answer(head: bytes, n: int) -> bytes | tuple[bytes, bool] | None:
        if n == 1:  # the first answer promises everything, sends 300,000 bytes and hangs up
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(content) + content[:300_000], True
        assert b"range: bytes=300000-" in head.lower()
        rest = content[300_000:]
        return (
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b"Content-Range: bytes 300000-%d/%d\r\n\r\n" % (len(rest), len(content) - 1, len(content))
        ) + rest

    async with raw_server(answer) as (base, heads):
        async with DingTalkClient(fast_config(api_base=base, oapi_base=base)) as client:
            data = b"".join([c async for c in client.download(base + "/f", expected_size=len(content))])
    assert data == content
    assert len(heads) == 2


def cookie_answer(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: lb=node-7; Path=/\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def test_cookies_a_server_sets_are_neither_kept_nor_sent_back_over_aiohttp(no_proxy: None) -> None:
    def answer(head: bytes, n: int) -> bytes | None:
        if b"accessToken" in first_path(head):
            return cookie_answer(TOKEN_ANSWER)
        return cookie_answer(b'{"ok": true}')

    async with raw_server(answer) as (base, heads):
        async with DingTalkClient(fast_config(api_base=base, oapi_base=base)) as client:
            for _ in range(3):
                assert await client.api("GET", "/v1.0/x") == {"ok": True}
            data = b"".join([chunk async for chunk in client.download(base + "/f/1")])
    assert len(heads) == 5 and data == b'{"ok": true}'
    assert not [h for h in heads if b"cookie:" in h.lower()], "no request carried a cookie"


async def test_cookies_a_server_sets_are_not_kept_by_a_given_transport_or_the_proxy_shards() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        body = (
            {"accessToken": "tok-1", "expireIn": 7200} if "accessToken" in request.url.path else {"ok": True}
        )
        return httpx.Response(200, headers={"Set-Cookie": "lb=node-7; Path=/"}, json=body)

    transport = httpx.MockTransport(handler)
    async with DingTalkClient(fast_config(), transport=transport) as client:
        for _ in range(3):
            await client.api("GET", "/v1.0/x")
    http = shards(4, transport)
    with http.lease() as one:
        await one.get(API + "/v1.0/x")
        await one.get(API + "/v1.0/x")
        assert len(one.cookies) == 0
    await http.aclose()
    assert seen and seen == [None] * len(seen)
