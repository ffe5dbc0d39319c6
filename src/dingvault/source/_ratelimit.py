"""Client-side pacing: one limiter per API, and the shared IP-ban gate.

DingTalk limits each app to 20 calls/s *per API* (§0.5), so calls to different APIs can run in
parallel while calls to one API are paced. The limiter keeps a log of the last `rate` call times
and lets a new call start only when the oldest of them is more than `period` (+ a small margin for
network jitter) in the past. That guarantees at most `rate` calls in *any* window of `period`
seconds — whether the server counts in fixed or sliding windows — while still allowing a burst
when the API has been idle.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most `rate` acquisitions in any `period`-second window."""

    def __init__(
        self,
        rate: int,
        period: float = 1.0,
        *,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 call per period")
        self.rate = rate
        self.period = period + margin
        self._clock = clock
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        # One waiter at a time computes its slot, so the order of calls is fair (FIFO on the lock).
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.period:
                    self._starts.popleft()
                if len(self._starts) < self.rate:
                    self._starts.append(now)
                    return
                await asyncio.sleep(self.period - (now - self._starts[0]))


class ApiLimiters:
    """A `SlidingWindowLimiter` per API path template, created on first use."""

    def __init__(self, rate: int, period: float = 1.0, *, overrides: dict[str, int] | None = None) -> None:
        self.rate = rate
        self.period = period
        self.overrides = dict(overrides or {})
        self._limiters: dict[str, SlidingWindowLimiter] = {}

    def for_api(self, template: str) -> SlidingWindowLimiter:
        limiter = self._limiters.get(template)
        if limiter is None:
            limiter = SlidingWindowLimiter(self.overrides.get(template, self.rate), self.period)
            self._limiters[template] = limiter
        return limiter


class BanGate:
    """Shared by every call of a client: after an IP-ban answer nobody calls until it has passed.

    The ban is per source IP for *all* APIs (§0.5), so hammering other APIs while banned would only
    prolong it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self.bans = 0

    def ban(self, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._until:
            self._until = until
        self.bans += 1

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        while (left := self.remaining) > 0:
            await asyncio.sleep(left)
