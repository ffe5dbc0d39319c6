"""Helpers for the service's acceptance tests: ``ServiceApp`` in a thread against the emulator."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from backup.emulator_env import FAST_CLIENT, Installation, control
from dingvault.backup.session import Session
from dingvault.service.app import ServiceApp
from dingvault.service.config import ServiceConfig

# Event runs in tests: commit at once; the engine's defaults are for big runs.
FAST_SERVICE = {
    "listen": "127.0.0.1:0",
    "batch_seconds": 0.1,
    "jitter_seconds": 0.0,
    "reconnect_initial": 0.2,
    "reconnect_max": 2.0,
    "reconnect_stable_after": 5.0,
    "replication_interval": 0.3,
    "replication_max_backoff": 1.0,
    "alert_check_seconds": 0.5,
}


class RunningService:
    """A ``ServiceApp`` on its own event loop in a thread; ``stop()`` is the graceful shutdown."""

    def __init__(
        self, inst: Installation, *, backend_opts: dict[str, Any] | None = None, **config: Any
    ) -> None:
        self.inst = inst
        self.session: Session = inst.session()
        config.setdefault("extra", {"corp_id": control(inst.emu, "GET", "org?counts=false")["corpId"]})
        self.config = ServiceConfig(**{**FAST_SERVICE, **config})
        self.app = ServiceApp(
            self.session,
            self.config,
            client_overrides=FAST_CLIENT,
            backend_opts=backend_opts,
            shutdown_grace=30,
        )
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="service", daemon=True)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self.app.run(ready=lambda _a: self._ready.set()))
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 60) -> RunningService:
        self._thread.start()
        assert self._ready.wait(timeout), "service did not start"
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.app.stop)
            self._thread.join(90)
        self.session.close()
        if self._error:
            raise self._error

    def __enter__(self) -> RunningService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Any, timeout: float = 120) -> Any:
        """Run a coroutine on the service's loop (e.g. a scheduled run now) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def url(self) -> str:
        assert self.app.http is not None
        return f"http://127.0.0.1:{self.app.http.port}"

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/healthz", timeout=10).json()

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text

    def wait_idle(self, timeout: float = 90, quiet: float = 0.5) -> None:
        """Until the inbox is drained, no catch-up is due and no run holds the lock for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        calm_since: float | None = None
        while time.monotonic() < deadline:
            c = self.app.coordinator
            idle = not self.app.state.pending(1) and not c.catchup_pending and not c.lock.locked()
            if idle:
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= quiet:
                    return
            else:
                calm_since = None
            time.sleep(0.05)
        raise AssertionError(f"service not idle after {timeout} s: inbox {self.app.state.counts()}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def mutate(inst: Installation, op: str, **params: Any) -> dict[str, Any]:
    return control(inst.emu, "POST", "mutate", json={"op": op, **params})


def random_mutations(inst: Installation, count: int, seed: int, spread: float = 0.0) -> list[dict[str, Any]]:
    """``count`` random mutations over every family, one at a time, ``spread`` seconds apart."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        answer = control(
            inst.emu, "POST", "mutate", json={"op": "random", "count": 1, "seed": seed * 100_003 + i}
        )
        out += answer["results"]
        if spread:
            time.sleep(spread)
    return out
