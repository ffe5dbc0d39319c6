"""One asynchronous client for both DingTalk API generations (dingtalk-api.md §0, §1).

    client = DingTalkClient(ClientConfig(app_key=..., app_secret=...))
    users = await client.oapi("POST", "/topapi/v2/user/list", json={"dept_id": 1, "cursor": 0, "size": 100})
    spaces = await client.api("GET", "/v1.0/drive/spaces", params={"unionId": u, "spaceType": "org"})
    dentries = await client.api("GET", "/v1.0/storage/spaces/{spaceId}/dentries",
                                path={"spaceId": sid}, params={"parentId": "0", "unionId": u})
    async for chunk in client.download(url, headers): ...

What it does for every call:
  * adds the app token (cached, refreshed before expiry; refreshed once and retried when DingTalk
    says it is invalid or expired);
  * paces calls per API path template (default 20 calls/s per API, §0.5) while different APIs run
    in parallel, with a bound on concurrent requests overall;
  * maps both error envelopes onto `dingvault.source.errors`;
  * retries throttling answers, timeouts, 5xx, connection errors and garbled answers (malformed
    JSON, HTML pages) with exponential back-off and jitter, a bounded number of times;
  * on the per-IP ban answer, stops *all* calls of this client for the announced time;
  * after the monthly quota answer, fails non-exempt calls at once (exempt contacts APIs go on);
  * counts calls per endpoint template for the run statistics.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from dingvault.source._download import Refresh, stream_download
from dingvault.source._http import open_http
from dingvault.source._ratelimit import ApiLimiters, BanGate
from dingvault.source._responses import interpret
from dingvault.source._tokens import TOKEN_ENDPOINT, TokenCache
from dingvault.source.errors import (
    AuthenticationError,
    DingTalkError,
    IpBanned,
    QuotaExhausted,
    Throttled,
    TokenExpired,
    TransientError,
)
from dingvault.source.scopes import QUOTA_EXEMPT

Generation = Literal["api", "oapi"]

__all__ = ["ClientConfig", "DingTalkClient", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # per call, for retryable errors
    base_delay: float = 0.5  # seconds; doubled per attempt, with full jitter
    max_delay: float = 30.0
    # The QPS limit window is 1 s (§0.5): waiting about that long is enough after a 90018.
    throttle_delay: float = 1.0
    # The per-minute limit (QpmLimitForAppkeyAndApi) needs a wait of a good part of a minute.
    qpm_delay: float = 20.0


@dataclass
class ClientConfig:
    app_key: str
    app_secret: str = field(repr=False)
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"
    rate_per_api: int = 20  # calls per `rate_period` per API path template
    rate_period: float = 1.0
    rate_overrides: dict[str, int] = field(default_factory=dict)
    max_concurrency: int = 16  # requests in flight, all APIs together
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_refresh_margin: float = 600.0  # refresh this many seconds before expiry (§1.1)
    # Per-IP ban (§0.5): `wait` is read in units of `ban_wait_unit` seconds (minutes by default);
    # without a `wait`, back off `ban_default_wait` seconds. Tests shrink both.
    ban_default_wait: float = 300.0
    ban_wait_unit: float = 60.0
    max_ban_waits: int = 3
    download_attempts: int = 6
    user_agent: str = "dingvault/0.1"


class DingTalkClient:
    def __init__(self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._http = open_http(
            max_concurrency=config.max_concurrency,
            timeout=config.timeout,
            user_agent=config.user_agent,
            transport=transport,
        )
        self._limiters = ApiLimiters(config.rate_per_api, config.rate_period, overrides=config.rate_overrides)
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self.ban_gate = BanGate()
        self._tokens = TokenCache(self._fetch_token, refresh_margin=config.token_refresh_margin)
        self.calls: Counter[str] = Counter()  # requests sent, per endpoint template
        self.errors: Counter[str] = Counter()  # error answers, per "template code"
        self.retries = 0
        self.throttled = 0
        self.quota_exhausted: QuotaExhausted | None = None

    async def __aenter__(self) -> DingTalkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ public calls

    async def api(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Call the new API (api.dingtalk.com, `/v1.0/...`); returns the JSON body."""
        return await self.call("api", method, template, path=path, params=params, json=json)

    async def oapi(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Call the legacy API (oapi.dingtalk.com); returns the whole envelope (errcode 0)."""
        return await self.call("oapi", method, template, path=path, params=params, json=json)

    async def call(
        self,
        generation: Generation,
        method: str,
        template: str,
        *,
        path: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        authenticated: bool = True,
    ) -> dict[str, Any]:
        if self.quota_exhausted is not None and template not in QUOTA_EXEMPT:
            raise QuotaExhausted(
                f"monthly call quota already exhausted ({self.quota_exhausted.code})",
                code=self.quota_exhausted.code,
                endpoint=template,
            )
        url = self._url(generation, template, path)
        policy = self.config.retry
        attempt = 0
        ban_waits = 0
        refreshed = False
        while True:
            attempt += 1
            token: str | None = None
            try:
                if authenticated:
                    token = await self._tokens.get()
                return await self._send_once(generation, method, template, url, params, json, token)
            except TokenExpired as exc:
                if refreshed or not authenticated:
                    raise AuthenticationError(
                        f"token refused even after a refresh: {exc.message}",
                        code=exc.code,
                        request_id=exc.request_id,
                        endpoint=template,
                        status=exc.status,
                    ) from exc
                refreshed = True
                attempt -= 1  # a token refresh is not a failed attempt
                await self._tokens.invalidate(token)
            except IpBanned as exc:
                ban_waits += 1
                attempt -= 1
                self.ban_gate.ban(exc.wait_seconds)
                if ban_waits > self.config.max_ban_waits:
                    raise
            except QuotaExhausted as exc:
                self.quota_exhausted = exc
                raise
            except DingTalkError as exc:
                if not exc.retryable or attempt >= policy.max_attempts:
                    if exc.retryable:
                        raise type(exc)(
                            f"gave up after {attempt} attempts; last answer: {exc.message}",
                            code=exc.code,
                            request_id=exc.request_id,
                            endpoint=template,
                            status=exc.status,
                        ) from exc
                    raise
                self.retries += 1
                await asyncio.sleep(self._backoff(attempt, exc))

    async def download(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        expected_size: int | None = None,
        refresh: Refresh | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream `url`'s content, resuming with `Range` after a cut and checking the length."""
        self.calls["download"] += 1
        # The whole transfer (with its resumptions) stays on one client (one shard behind a proxy).
        with self._http.lease() as http:
            async for chunk in stream_download(
                http,
                url,
                headers,
                expected_size=expected_size,
                refresh=refresh,
                max_attempts=self.config.download_attempts,
                base_delay=self.config.retry.base_delay,
                max_delay=self.config.retry.max_delay,
            ):
                yield chunk

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "retries": self.retries,
            "throttled": self.throttled,
            "ip_bans": self.ban_gate.bans,
            "token_fetches": self._tokens.fetches,
            "quota_exhausted": self.quota_exhausted is not None,
        }

    # ------------------------------------------------------------------ internals

    def _url(self, generation: Generation, template: str, path: Mapping[str, Any] | None) -> str:
        base = self.config.api_base if generation == "api" else self.config.oapi_base
        rendered = template
        if path:
            rendered = template.format(**{k: quote(str(v), safe="") for k, v in path.items()})
        return base.rstrip("/") + rendered

    def _backoff(self, attempt: int, exc: DingTalkError) -> float:
        policy = self.config.retry
        if isinstance(exc, Throttled):
            self.throttled += 1
            if exc.code in ("90018", "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"):
                # Per-app QPS: the window is one second, so about one second is enough.
                return policy.throttle_delay * random.uniform(1.0, 1.5)
            if exc.code == "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi":
                return policy.qpm_delay * random.uniform(1.0, 1.5)
        delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        return random.uniform(delay / 2, delay)

    async def _send_once(
        self,
        generation: Generation,
        method: str,
        template: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        token: str | None,
    ) -> dict[str, Any]:
        query = _encode_params(params, generation)
        headers: dict[str, str] = {}
        if token is not None:
            if generation == "api":
                headers["x-acs-dingtalk-access-token"] = token
            else:
                query["access_token"] = token
        content: bytes | None = None
        if json is not None:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json; charset=utf-8"
        await self.ban_gate.wait()
        await self._limiters.for_api(template).acquire()
        async with self._slots:
            self.calls[template] += 1
            try:
                response = await self._http.request(
                    method, url, params=query, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                self.errors[f"{template} {type(exc).__name__}"] += 1
                raise TransientError(f"{type(exc).__name__}: {exc}", endpoint=template) from exc
        try:
            return interpret(
                generation=generation,
                endpoint=template,
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                body=response.content,
                ban_default_wait=self.config.ban_default_wait,
                ban_wait_unit=self.config.ban_wait_unit,
            )
        except DingTalkError as exc:
            self.errors[f"{template} {exc.code or type(exc).__name__}"] += 1
            raise

    async def _fetch_token(self) -> dict[str, Any]:
        body = {"appKey": self.config.app_key, "appSecret": self.config.app_secret}
        # Not retried through `call` recursion on token errors: bad credentials are final.
        return await self.call("api", "POST", TOKEN_ENDPOINT, json=body, authenticated=False)


def _encode_params(params: Mapping[str, Any] | None, generation: Generation) -> dict[str, str]:
    """Query parameters as strings; new-API array parameters are JSON-encoded (§0.2)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | dict):
            out[key] = orjson.dumps(value).decode() if generation == "api" else ",".join(map(str, value))
        else:
            out[key] = str(value)
    return out
