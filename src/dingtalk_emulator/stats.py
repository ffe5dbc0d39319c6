"""Call statistics: what a client asked for and what it got, for tests and benchmarks to assert on.

`GET /_emulator/stats` returns `CallStats.snapshot()`:

    {"total": 1234,                                   API calls (control paths and downloads excluded)
     "ok": 1200, "failed": 34,                        failed = HTTP >= 400, legacy errcode != 0, or no answer
     "calls": {"/v1.0/storage/spaces/{spaceId}/dentries": 600, ...},      per API template
     "calls_by_method": {"GET /v1.0/storage/spaces/{spaceId}/dentries": 600, ...},
     "throttled": 20, "throttled_by": {"qps": 18, "ip_ban": 1, "quota": 1},
     "faults": {"5xx": 3, "reset": 1, "token_expire": 2, ...},
     "downloads": 40, "download_bytes": 123456,
     "quota_used": 77, "since": 1780000000.0}
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class CallStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls: Counter[str] = Counter()
            self._by_method: Counter[str] = Counter()
            self._throttled: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._total = 0
            self._failed = 0
            self._downloads = 0
            self._download_bytes = 0
            self._since = time.time()

    def call(self, method: str, template: str) -> None:
        with self._lock:
            self._total += 1
            self._calls[template] += 1
            self._by_method[f"{method} {template}"] += 1

    def download(self, nbytes: int) -> None:
        with self._lock:
            self._downloads += 1
            self._download_bytes += nbytes

    def failed(self) -> None:
        with self._lock:
            self._failed += 1

    def throttled(self, why: str) -> None:
        with self._lock:
            self._throttled[why] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "ok": self._total - self._failed,
                "failed": self._failed,
                "calls": dict(self._calls),
                "calls_by_method": dict(self._by_method),
                "throttled": sum(self._throttled.values()),
                "throttled_by": dict(self._throttled),
                "faults": dict(self._faults),
                "downloads": self._downloads,
                "download_bytes": self._download_bytes,
                "since": self._since,
                **extra,
            }
