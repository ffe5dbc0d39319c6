"""Fault injection: the spec language and a seeded, reproducible plan of which call gets which fault.

Spec (flag `--faults SPEC`, or `PUT /_emulator/faults` with the same keys as a JSON object):

    throttle=0.1,5xx=0.02,timeout=0.01,reset=0.005,malformed=0.005,html=0.005,truncate=0.05,
    token_expire_after=500,ban_once_after=2000

Per-call fractions (each in [0, 1]; together at most 1; API calls only):
    throttle   the QPS answer of the call's generation (90018 / 403 QpsLimitForAppkeyAndApi)
    5xx        HTTP 500 (the generation's JSON error) or 502/503 (a gateway HTML page)
    timeout    legacy: errcode 88 with empty sub_code, or 15 isp.top-remote-connection-timeout;
               new API: HTTP 504 (§0.5)
    busy       legacy errcode -1 系统繁忙; new API 500 systemError.busy (§0.5, §0.6)
    reset      the connection is closed without any response
    malformed  HTTP 200 whose JSON body is cut in half
    html       an HTML error page where JSON was expected, with status 200 or 502
Per-download fraction (blob responses only):
    truncate   Content-Length promises the whole file, fewer bytes arrive, the connection closes
Counters (integers >= 1; counted over API calls):
    token_expire_after=N   every N-th call, tokens are invalidated early (the guard's on_token_fault)
    ban_once_after=N       the N-th call (once) gets the IP-ban answer
Options:
    seed=N                 overrides the guard's seed (same seed + same call sequence = same faults)
    ban=json|html          the ban answer's variant (default: the guard's, json unless set)
    timeout_delay=SECONDS  sleep before answering a timeout fault (default 0; the real server waits 3 s)
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

# Order matters: it fixes which fault a given random draw selects, hence reproducibility.
CALL_FAULTS = ("throttle", "5xx", "timeout", "busy", "reset", "malformed", "html")
BLOB_FAULTS = ("truncate",)
COUNTER_KEYS = ("token_expire_after", "ban_once_after")
BAN_STYLES = ("json", "html")


class FaultSpecError(ValueError):
    """A fault spec that cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class FaultSpec:
    rates: dict[str, float] = field(default_factory=dict)
    token_expire_after: int | None = None
    ban_once_after: int | None = None
    seed: int | None = None
    ban: str | None = None  # None: the guard's own ban style
    timeout_delay: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.rates) or self.token_expire_after is not None or self.ban_once_after is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.rates)
        for key in ("token_expire_after", "ban_once_after", "seed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.ban is not None:
            out["ban"] = self.ban
        if self.timeout_delay:
            out["timeout_delay"] = self.timeout_delay
        return out

    def to_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.to_dict().items())

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | None) -> FaultSpec:
        """Parse `k=v,k=v` text or a JSON object; raise FaultSpecError on anything doubtful."""
        if spec is None:
            return cls()
        if isinstance(spec, str):
            items: dict[str, Any] = {}
            for part in spec.split(","):
                part = part.strip()
                if not part:
                    continue
                key, sep, value = part.partition("=")
                if not sep or not key.strip() or not value.strip():
                    raise FaultSpecError(f"fault spec item {part!r} is not KEY=VALUE")
                key = key.strip()
                if key in items:
                    raise FaultSpecError(f"fault spec repeats {key!r}")
                items[key] = value.strip()
        elif isinstance(spec, dict):
            items = dict(spec)
        else:
            raise FaultSpecError("fault spec must be a 'k=v,...' string or a JSON object")
        rates: dict[str, float] = {}
        kwargs: dict[str, Any] = {}
        for key, value in items.items():
            if key in CALL_FAULTS or key in BLOB_FAULTS:
                rate = _number(key, value, float)
                if not 0.0 <= rate <= 1.0:
                    raise FaultSpecError(f"{key}={value}: a fraction must be between 0 and 1")
                if rate:
                    rates[key] = rate
            elif key in COUNTER_KEYS:
                count = _number(key, value, int)
                if count < 1:
                    raise FaultSpecError(f"{key}={value}: must be an integer >= 1")
                kwargs[key] = count
            elif key == "seed":
                kwargs["seed"] = _number(key, value, int)
            elif key == "ban":
                if value not in BAN_STYLES:
                    raise FaultSpecError(f"ban={value}: choose one of {', '.join(BAN_STYLES)}")
                kwargs["ban"] = value
            elif key == "timeout_delay":
                delay = _number(key, value, float)
                if not 0.0 <= delay <= 60.0:
                    raise FaultSpecError(f"timeout_delay={value}: must be between 0 and 60 seconds")
                kwargs["timeout_delay"] = delay
            else:
                known = ", ".join((*CALL_FAULTS, *BLOB_FAULTS, *COUNTER_KEYS, "seed", "ban", "timeout_delay"))
                raise FaultSpecError(f"unknown fault {key!r}; known: {known}")
        total = sum(rates.get(k, 0.0) for k in CALL_FAULTS)
        if total > 1.0 + 1e-9:
            raise FaultSpecError(f"per-call fault fractions add up to {total:g}, more than 1")
        return cls(rates=rates, **kwargs)


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise FaultSpecError(f"{key}={value}: not a number")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise FaultSpecError(f"{key}={value}: must be an integer")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FaultSpecError(f"{key}={value!r}: not a{'n integer' if kind is int else ' number'}") from None


@dataclass(frozen=True)
class Decision:
    """What to do with one call: `kind` None = no fault; `variant` is a second draw in [0, 1) used to pick
    between answers of one kind (e.g. 200 vs 502 HTML, where to cut a body)."""

    kind: str | None
    variant: float = 0.0
    expire_tokens: bool = False


NO_FAULT = Decision(None)


class FaultPlan:
    """Draws faults from one seeded RNG, two numbers per call, so the n-th call's fate depends only on
    the seed and n (and on whether calls 1..n-1 were API calls or downloads)."""

    def __init__(self, spec: FaultSpec, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.load(spec, seed)

    def load(self, spec: FaultSpec, seed: int = 0) -> None:
        with self._lock:
            self.spec = spec
            self._active = spec.active
            self._rng = random.Random(spec.seed if spec.seed is not None else seed)
            self._calls = 0
            self._ban_fired = False
            self._thresholds = []
            acc = 0.0
            for kind in CALL_FAULTS:
                rate = spec.rates.get(kind, 0.0)
                if rate:
                    acc += rate
                    self._thresholds.append((acc, kind))

    def for_call(self) -> Decision:
        spec = self.spec
        if not self._active:  # the common case, checked on every call: keep it cheap
            return NO_FAULT
        with self._lock:
            self._calls += 1
            n = self._calls
            u, v = self._rng.random(), self._rng.random()
            expire = spec.token_expire_after is not None and n % spec.token_expire_after == 0
            if spec.ban_once_after is not None and not self._ban_fired and n >= spec.ban_once_after:
                self._ban_fired = True
                return Decision("ban_once", v, expire)
            for threshold, kind in self._thresholds:
                if u < threshold:
                    return Decision(kind, v, expire)
            return Decision(None, v, expire)

    def for_download(self) -> Decision:
        rate = self.spec.rates.get("truncate", 0.0)
        if not rate:
            return NO_FAULT
        with self._lock:
            u, v = self._rng.random(), self._rng.random()
        return Decision("truncate", v) if u < rate else NO_FAULT
