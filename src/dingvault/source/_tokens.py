"""The app access token (dingtalk-api.md §1.1), cached and refreshed before it expires.

The token from `POST /v1.0/oauth2/accessToken` works on both hosts (§1.2): as the
`x-acs-dingtalk-access-token` header on api.dingtalk.com and as `?access_token=` on oapi.
DingTalk returns the same token while it is valid, so refreshing early is cheap and safe.
The token is kept in memory only and never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dingvault.source.errors import BadResponse

TOKEN_ENDPOINT = "/v1.0/oauth2/accessToken"

Fetcher = Callable[[], Awaitable[dict[str, Any]]]


class TokenCache:
    def __init__(
        self,
        fetch: Fetcher,
        *,
        refresh_margin: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:  # never show the token itself
        return f"TokenCache(valid={self._token is not None}, fetches={self.fetches})"

    async def get(self) -> str:
        if self._token is not None and self._clock() < self._expires_at - self._margin:
            return self._token
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            if self._token is not None and self._clock() < self._expires_at - self._margin:
                return self._token
            return await self._refresh()

    async def invalidate(self, rejected: str | None) -> None:
        """Forget the token DingTalk refused (unless another task already replaced it)."""
        async with self._lock:
            if rejected is None or rejected == self._token:
                self._token = None
                self._expires_at = 0.0

    async def _refresh(self) -> str:
        body = await self._fetch()
        token = body.get("accessToken")
        expire_in = body.get("expireIn", 7200)
        if not isinstance(token, str) or not token:
            raise BadResponse("token answer without accessToken", endpoint=TOKEN_ENDPOINT)
        try:
            lifetime = float(expire_in)
        except (TypeError, ValueError):
            lifetime = 7200.0
        self._token = token
        # If DingTalk ever hands out a token shorter-lived than the margin, refresh at half-life.
        margin_adjusted = lifetime if lifetime > self._margin * 2 else lifetime / 2 + self._margin
        self._expires_at = self._clock() + margin_adjusted
        self.fetches += 1
        return token
