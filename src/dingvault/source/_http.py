"""The HTTP connections under `DingTalkClient`: one pool for API calls, shards for downloads.

API calls go through httpx on aiohttp's transport (`httpx-aiohttp`). httpx stays the client the
rest of the code sees (requests, responses, exceptions, test mocks), while aiohttp parses HTTP in C
and keeps one connection pool without per-request bookkeeping: in `bench/client_transport.py` the
client's CPU per API call halves against httpx's own pure-Python transport (h11 + httpcore). At
the rate DingTalk allows (20 calls/s per API, dozens of APIs) that CPU is what a backup of a large
organisation spends most of its time on besides storing.

Downloads stay on httpx's own transport. Their URLs are pre-signed (OSS signatures in the query,
§4.4/§5.4): httpcore sends the URL exactly as DingTalk gave it, whereas aiohttp re-quotes it
(`yarl` decodes e.g. `%2f` in a query). A download costs one request for many kilobytes, so the
per-request saving matters little there.

When the environment names a proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`), API calls stay on
httpx's own transport as well, which applies the proxy and `NO_PROXY` as before. aiohttp could read
them too, but only by re-reading the environment and `~/.netrc` (on a worker thread) on every
request, which costs more than the transport saves.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Requests in flight per download connection-pool shard (see `HttpShards`).
SHARD_CONNECTIONS = 4
# Idle connections are closed after this many seconds (httpx's default), below the usual 5–15 s
# after which servers close them: reusing a connection the server has just closed costs a retry.
KEEPALIVE_SECONDS = 5.0
# aiohttp errors the transport may let through unmapped; the client treats them as transient.
AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


class Requester(Protocol):
    """What `DingTalkClient` sends API calls through: an httpx client, or the shards."""

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...

    async def aclose(self) -> None: ...


def environment_proxies() -> bool:
    """Whether the environment names an HTTP proxy (what httpx's `trust_env` would apply)."""
    return any(scheme in ("http", "https", "all") for scheme in urllib.request.getproxies_environment())


def api_http_client(
    *,
    max_concurrency: int,
    timeout: float,
    user_agent: str,
    transport: httpx.AsyncBaseTransport | None,
    tls: ssl.SSLContext | None = None,
) -> Requester:
    """The client for API calls: httpx on aiohttp, unless a transport is given (tests) or the
    environment names a proxy (httpx's own transport, sharded, applies it)."""
    if transport is None and environment_proxies():
        return HttpShards(
            max_concurrency=max_concurrency, timeout=timeout, user_agent=user_agent, transport=None, tls=tls
        )
    if transport is None:
        context = tls or httpx.create_ssl_context()

        def session() -> aiohttp.ClientSession:
            # Created on the first request, inside the running event loop (aiohttp requires it).
            # `limit` above the client's own concurrency bound: the semaphore in DingTalkClient is
            # the one that counts; the pool must never be the one to make a call wait.
            connector = aiohttp.TCPConnector(
                limit=max_concurrency + 4, ssl=context, keepalive_timeout=KEEPALIVE_SECONDS
            )
            return aiohttp.ClientSession(connector=connector)

        transport = AiohttpTransport(verify=context, client=session)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        transport=transport,
        headers={"User-Agent": user_agent, "Accept": "application/json"},
        follow_redirects=True,
    )


class HttpShards:
    """Several `httpx.AsyncClient`s with small connection pools, used as one (downloads, and API
    calls behind a proxy).

    httpcore's pool scans every pooled connection (a `getpeername` and a readability poll on each
    idle one) twice per request: with one pool of `max_concurrency` connections that bookkeeping
    was about half of the client's CPU per request. Requests go to the shard with the fewest in
    flight, which keeps each pool at a few connections and the scan short.
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        timeout: float,
        user_agent: str,
        transport: httpx.AsyncBaseTransport | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        # A given transport (tests) is one object: a single shard keeps its behaviour unchanged.
        count = 1 if transport is not None else max(1, -(-max_concurrency // SHARD_CONNECTIONS))
        # httpx's defaults (100 connections, 20 kept alive) spread over the shards; a shard keeps
        # at least what its share of the concurrency needs.
        keepalive = max(SHARD_CONNECTIONS * 2, -(-20 // count))
        limits = httpx.Limits(
            max_connections=max(keepalive, -(-100 // count)),
            max_keepalive_connections=keepalive,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        # One TLS context for all shards: building one costs milliseconds of CPU.
        verify: ssl.SSLContext | bool = (tls or httpx.create_ssl_context()) if transport is None else True
        self._clients = [
            httpx.AsyncClient(
                verify=verify,
                timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                transport=transport,
                limits=limits,
                headers={"User-Agent": user_agent, "Accept": "application/json"},
                follow_redirects=True,
            )
            for _ in range(count)
        ]
        self._busy = [0] * count

    def __len__(self) -> int:
        return len(self._clients)

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """The least busy shard, counted busy until the block ends."""
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            busy[index] -= 1

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with self.lease() as http:
            return await http.request(method, url, **kwargs)

    async def aclose(self) -> None:
        for http in self._clients:
            await http.aclose()
