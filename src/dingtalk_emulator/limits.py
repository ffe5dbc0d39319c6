"""DingTalk's rate limits (dingtalk-api.md §0.5) as plain bookkeeping; `guard.py` turns verdicts into answers.

Three dimensions are checked, in this order, for every API call:

1. per source IP: more than `ip_ban_threshold` calls (10,000) within `ip_ban_window` seconds (20) bans
   the IP for `ip_ban_seconds` (300); every call during the ban gets the non-errcode ban body;
2. the standard-edition monthly quota (`monthly_quota`, off by default; the real figure is 5,000) for
   non-exempt APIs only (token, SSO and contacts APIs are exempt, see `is_quota_exempt`);
3. per app, per API: at most `qps` (20) calls in each one-second window.  "API" is the route template
   (`/v1.0/storage/spaces/{spaceId}/dentries`), not the concrete path.  The emulator serves one app, so
   per app per API is simply per template.

Refused calls consume nothing: a throttled call does not count toward the quota, and the windows only
count admitted calls — so a client that backs off correctly gets through at the documented rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

# Exempt from the monthly quota, per [D:basic-interfaces-such-as-log-off-and-address-book] as quoted in
# §0.5: token endpoints, SSO, the contacts reads, resignation records, roles, external contacts.  The
# doc says the list "includes" these; anything beyond them (e.g. the Stream gateway) is our reading.
_EXEMPT_EXACT = frozenset(
    {
        "/gettoken",
        "/topapi/v2/user/get",
        "/topapi/v2/user/list",
        "/topapi/user/listid",
        "/topapi/v2/department/get",
        "/topapi/v2/department/listsub",
        "/topapi/v2/department/listsubid",
        "/v1.0/contact/empLeaveRecords",
        "/v1.0/hrm/employees/dismissions",
        "/v1.0/hrm/employees/dimissionInfos",
        # Registering a Stream connection is not an OpenAPI business call; whether it counts against
        # the quota is not documented (uncertain) — exempt, so a quota-limited org keeps its events.
        "/v1.0/gateway/connections/open",
    }
)
_EXEMPT_PREFIXES = (
    "/v1.0/oauth2/",  # accessToken, userAccessToken, corpAccessToken, {corpId}/token
    "/sso/",
    "/topapi/role/",
    "/topapi/extcontact/",
    "/v1.0/contact/",  # (uncertain beyond empLeaveRecords: the rest of the contacts family is read as exempt)
)


def is_quota_exempt(template: str) -> bool:
    return template in _EXEMPT_EXACT or template.startswith(_EXEMPT_PREFIXES)


def is_new_api(path: str) -> bool:
    """New-generation paths (`api.dingtalk.com`, versioned) answer with HTTP status + `code`."""
    return path.startswith(("/v1.0/", "/v2.0/"))


class Verdict(Enum):
    ALLOW = "allow"
    QPS = "qps"
    IP_BAN = "ip_ban"
    QUOTA = "quota"


@dataclass
class LimitSettings:
    enabled: bool = True
    qps: int = 20
    ip_ban_threshold: int = 10_000
    ip_ban_window: float = 20.0
    ip_ban_seconds: float = 300.0
    monthly_quota: int | None = None

    def validate(self) -> None:
        if self.qps < 1:
            raise ValueError("qps must be >= 1")
        if self.ip_ban_threshold < 1 or self.ip_ban_window <= 0 or self.ip_ban_seconds < 0:
            raise ValueError("ip_ban_threshold >= 1, ip_ban_window > 0 and ip_ban_seconds >= 0 are required")
        if self.monthly_quota is not None and self.monthly_quota < 0:
            raise ValueError("monthly_quota must be >= 0 (or null to disable)")


class RateLimiter:
    """Thread-safe counters for the three dimensions; `check()` admits or refuses one call."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.time) -> None:
        settings.validate()
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._qps: dict[str, list[int]] = {}  # template -> [second, count]
        self._ip_buckets: dict[str, deque[list[int]]] = {}  # ip -> deque of [second, count]
        self._ip_totals: dict[str, int] = {}
        self._banned_until: dict[str, float] = {}
        self._quota_month: tuple[int, int] | None = None
        self._quota_used = 0

    def configure(self, settings: LimitSettings) -> None:
        settings.validate()
        with self._lock:
            self.settings = settings

    def reset(self) -> None:
        with self._lock:
            self._qps.clear()
            self._ip_buckets.clear()
            self._ip_totals.clear()
            self._banned_until.clear()
            self._quota_used = 0

    @property
    def quota_used(self) -> int:
        return self._quota_used

    def banned(self, ip: str) -> bool:
        with self._lock:
            return self._banned_until.get(ip, 0.0) > self._clock()

    def check(self, template: str, ip: str) -> Verdict:
        s = self.settings
        if not s.enabled:
            return Verdict.ALLOW
        now = self._clock()
        with self._lock:
            if self._banned_until.get(ip, 0.0) > now:
                return Verdict.IP_BAN
            if self._count_ip(ip, now) > s.ip_ban_threshold:
                self._banned_until[ip] = now + s.ip_ban_seconds
                return Verdict.IP_BAN
            quota_counted = s.monthly_quota is not None and not is_quota_exempt(template)
            if quota_counted:
                month = time.gmtime(now)[:2]
                if month != self._quota_month:
                    self._quota_month, self._quota_used = month, 0
                if self._quota_used >= s.monthly_quota:  # type: ignore[operator]
                    return Verdict.QUOTA
            second = int(now)
            window = self._qps.get(template)
            if window is None or window[0] != second:
                window = self._qps[template] = [second, 0]
            if window[1] >= s.qps:
                return Verdict.QPS
            window[1] += 1
            if quota_counted:
                self._quota_used += 1
            return Verdict.ALLOW

    def _count_ip(self, ip: str, now: float) -> int:
        """Record one call from `ip`; return its calls within the sliding ban window (per-second buckets)."""
        second = int(now)
        buckets = self._ip_buckets.get(ip)
        if buckets is None:
            buckets = self._ip_buckets[ip] = deque()
            self._ip_totals[ip] = 0
        total = self._ip_totals[ip]
        horizon = second - self.settings.ip_ban_window
        while buckets and buckets[0][0] <= horizon:
            total -= buckets.popleft()[1]
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += 1
        else:
            buckets.append([second, 1])
        total += 1
        self._ip_totals[ip] = total
        return total
