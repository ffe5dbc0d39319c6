"""The HTTP connections under `DingTalkClient`.

API calls and downloads go through httpx on aiohttp (`_aiohttp_transport.py`): one connection pool,
HTTP parsed in C, half the client's CPU per request against httpx's own pure-Python transport
(`bench/client_transport.py`). At the rate DingTalk allows (20 calls/s per API, dozens of APIs)
and with the many small files of a company drive, that per-request CPU is what a backup spends
most of its time on besides storing.

When the environment names a proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`), httpx's own
transport is used instead, which applies the proxy and `NO_PROXY` as httpx always has. aiohttp
could read them too, but only by re-reading the environment and `~/.netrc` (on a worker thread)
on every request, which costs more than it saves. A transport given by a test is used as is.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import aiohttp
import httpx

from dingvault.source._aiohttp_transport import AiohttpTransport

# Requests in flight per connection-pool shard of httpx's own transport (see `HttpShards`).
SHARD_CONNECTIONS = 4
# Idle connections are closed after this many seconds, below the 5 s after which common servers
# (uvicorn, many load balancers' defaults are longer) close them: a POST sent on a connection the
# server is closing at that moment fails and costs a retry. (httpcore checks each idle connection
# for readability before reuse instead, which is much of its per-request cost.)
KEEPALIVE_SECONDS = 4.0
# Connections of the aiohttp pool, API calls and downloads together (httpx's default bound). The
# client's own semaphores are what limit requests in flight; the pool must not be the one.
POOL_CONNECTIONS = 100


class _NoCookies(httpx.Cookies):
    """An empty cookie store that keeps nothing it is given."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        pass


class CookielessClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that neither keeps nor sends cookies.

    DingTalk's APIs authenticate with the access token (a query parameter for the legacy API, the
    ``x-acs-dingtalk-access-token`` header for the new one) and downloads with signed URLs; the
    API reference names no cookie anywhere. httpx has no switch for it, and parses
    every response for cookies to keep (building urllib request and response stand-ins each
    time): 5 % of the event loop's interpreter time in a backup with limits off (py-spy, medium
    company). Cookies a server sets (a load balancer's affinity cookie) are dropped rather than
    sent back, which no request here needs. Per-request ``cookies=`` still work.
    """

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, value: Any) -> None:
        pass


class Http(Protocol):
    """What `DingTalkClient` sends requests through."""

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...

    def lease(self) -> Any:
        """A context manager giving the `httpx.AsyncClient` for one whole download."""
        ...

    async def aclose(self) -> None: ...


def environment_proxies() -> bool:
    """Whether the environment names an HTTP proxy (what httpx's `trust_env` would apply)."""
    return any(scheme in ("http", "https", "all") for scheme in urllib.request.getproxies_environment())


def open_http(
    *, max_concurrency: int, timeout: float, user_agent: str, transport: httpx.AsyncBaseTransport | None
) -> Http:
    """The connections for one client: aiohttp's pool, or httpx's own shards behind a proxy."""
    tls = httpx.create_ssl_context() if transport is None else None  # built once: it costs ms
    if transport is None and environment_proxies():
        return HttpShards(
            max_concurrency=max_concurrency, timeout=timeout, user_agent=user_agent, transport=None, tls=tls
        )
    if transport is None:

        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=max(POOL_CONNECTIONS, 2 * max_concurrency), ssl=tls, keepalive_timeout=KEEPALIVE_SECONDS
            )
            # No cookies here either (see CookielessClient): aiohttp's own jar is skipped.
            return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

        transport = AiohttpTransport(session)
    return OneClient(
        CookielessClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=True,
        )
    )


class OneClient:
    """One `httpx.AsyncClient` for everything (its transport keeps one pool)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, url, **kwargs)

    @contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        yield self.http

    async def aclose(self) -> None:
        await self.http.aclose()


class HttpShards:
    """Several `httpx.AsyncClient`s on httpx's own transport with small connection pools, used as
    one (behind a proxy).

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
            CookielessClient(
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
