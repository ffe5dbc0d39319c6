"""The emulator's shared state: configuration, clock, the generated company, and registries.

Every family module under `api/` exposes two functions:

    routes(state) -> list[starlette Route]     its DingTalk endpoints
    register(state) -> None                    adds its mutation handlers and truth providers:
        state.mutations["file.upload"] = handler(state, params: dict) -> dict
        state.truth["file"] = provider(state) -> Iterable[dict]   (each dict has "id")

so `control.py` (`/_emulator/mutate`, `/_emulator/truth`) dispatches without knowing the families.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

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
    clock: Callable[[], float] = time.time
    mutations: dict[str, MutationHandler] = field(default_factory=dict)
    truth: dict[str, TruthProvider] = field(default_factory=dict)
    # Filled in by server.create_app: the generated company, token store, stream hub, guard.
    org: Any = None
    tokens: Any = None
    hub: Any = None
    guard: Any = None
    base_url: str = ""  # e.g. http://127.0.0.1:PORT, set once the server is bound

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
