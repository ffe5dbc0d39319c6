"""Rate limits, fault injection and call statistics, as one ASGI wrapper.

Interface (stable; the rest of the emulator codes against it):

    guard = Guard(limits="realistic"|"off", faults=SPEC|None, seed=N,
                  monthly_quota=None|int, on_token_fault=callable)
    app = guard.wrap(app)             -> ASGI app that throttles / injects faults / counts calls
    guard.routes()                    -> Starlette routes: GET /_emulator/stats, PUT /_emulator/faults
    guard.stats()                     -> dict (calls per API path, throttled, failed)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Guard:  # placeholder until the real guard lands; keeps the interface importable
    def __init__(
        self,
        *,
        limits: str = "realistic",
        faults: str | None = None,
        seed: int = 0,
        monthly_quota: int | None = None,
        on_token_fault: Callable[[], None] | None = None,
    ) -> None:
        self.limits = limits
        self.faults = faults
        self.seed = seed
        self.monthly_quota = monthly_quota
        self.on_token_fault = on_token_fault

    def wrap(self, app: Any) -> Any:
        return app

    def routes(self) -> list[Any]:
        return []

    def stats(self) -> dict[str, Any]:
        return {}
