"""The emulator's shared state: configuration, clock, the generated company, and registries.

Every family module under `api/` exposes two functions:

    routes(state) -> list[starlette Route]     its DingTalk endpoints
    register(state) -> None                    adds its mutation handlers and truth providers:
        state.mutations["file.upload"] = handler(state, params: dict) -> dict
        state.truth["file"] = provider(state) -> Iterable[dict]   (each dict has "id")

so `control.py` (`/_emulator/mutate`, `/_emulator/truth`) dispatches without knowing the families.

Optionally `state.counts["file"] = fn(state) -> int` gives a cheap count for `/_emulator/org`
(otherwise the truth provider is iterated).

Mutation handlers:
- are called with the JSON params of `POST /_emulator/mutate` minus "op";
- must also work when called with only `{"rand": <int>}` (that is how `{"op":"random"}` calls them):
  they then pick their own target deterministically from that number;
- raise `MutationError` (or KeyError/ValueError) for bad params → HTTP 400, nothing changed;
- must be deterministic given params, the seed and `state.now_ms()`: with `--state DIR` each applied
  mutation is journaled (op, params, time) and replayed on restart with the clock set to that time.
- call `state.hub.publish_event(event_type, data)` with the §7.5 event.

Truth providers run in a worker thread (big kinds take seconds) while mutations may run on the event
loop: iterate copies of mutable containers (`list(...)`), never a dict or list a mutation may change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class MovableClock:
    """Wall-clock time plus an offset that tests (and `POST /_emulator/clock`) can advance.

    It is a plain callable returning epoch seconds, so `state.clock()` reads like `time.time()`.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class MutationError(ValueError):
    """Bad mutation parameters (unknown target, invalid value): answered with HTTP 400."""


MutationHandler = Callable[["EmulatorState", dict[str, Any]], dict[str, Any]]
TruthProvider = Callable[["EmulatorState"], Iterable[dict[str, Any]]]


@dataclass
class EmulatorConfig:
    port: int = 0
    host: str = "127.0.0.1"
    profile: str = "demo"  # demo | small | medium | large
    seed: int = 1
    limits: str = "realistic"  # realistic | off
    faults: str | None = None
    state_dir: str | None = None
    # Permission scopes granted to the app; None = every scope the emulator knows.
    scopes: set[str] | None = None
    exclusive: bool = False  # Exclusive DingTalk (专属钉钉) endpoints
    monthly_quota: int | None = None  # standard-edition monthly call quota (90020); None = off


@dataclass
class EmulatorState:
    config: EmulatorConfig
    clock: Callable[[], float] = field(default_factory=MovableClock)
    mutations: dict[str, MutationHandler] = field(default_factory=dict)
    truth: dict[str, TruthProvider] = field(default_factory=dict)
    counts: dict[str, Callable[[EmulatorState], int]] = field(default_factory=dict)
    # Filled in by server.create_app: the generated company, token store, stream hub, guard.
    org: Any = None
    tokens: Any = None
    hub: Any = None
    guard: Any = None
    base_url: str = ""  # e.g. http://127.0.0.1:PORT, set once the server is bound

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
