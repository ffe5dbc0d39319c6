"""Attendance (§6.1): `/attendance/list` (results, offset/limit/hasMore) and `/attendance/listRecord`.

Records are generated per (user, weekday, check) from the seed, for the staff present at start-up,
over the profile's `attendance_days` before the start day. The record id encodes that triple, so a
page is computed without storing anything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from starlette.routing import Route

from dingtalk_emulator.company.seeding import DAY_MS, MACAU_TZ, h64, parse_local_datetime
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import Call, LegacyError, legacy_endpoint, legacy_int
from dingtalk_emulator.state import EmulatorState

# (uncertain) the reference names no scope for attendance reads; the console's key is used.
SCOPE = "qyapi_attendance_read"
MAX_USERS = 50
MAX_LIMIT = 50
MAX_SPAN_DAYS = 7
RECORD_BASE = 100_000_000_000
CHECKS = ("OnDuty", "OffDuty")
HOUR = 3_600_000
# Macau public holidays on fixed dates (the lunar ones move each year and are not modelled):
# New Year, Labour Day, National Day (2 days), All Souls', Immaculate Conception, MSAR Day, Christmas.
MACAU_FIXED_HOLIDAYS = {(1, 1), (5, 1), (10, 1), (10, 2), (11, 2), (12, 8), (12, 20), (12, 24), (12, 25)}


class AttendanceBook:
    def __init__(self, seed: int, days: int, people: Any) -> None:
        self.seed = seed
        self.anchor_ms = people.anchor_ms
        self.days = days  # day d (0-based) is anchor - (d+1) days
        self.staff = list(people.users)
        self.index_of_user = {u.userid: n for n, u in enumerate(self.staff)}
        self.group_id = 600_000_000 + h64(seed, "att-group") % 100_000_000
        self._record_cached = functools.lru_cache(maxsize=32_768)(self._record)
        self._workday = functools.lru_cache(maxsize=None)(self._is_workday)

    def day_ms(self, d: int) -> int:
        return self.anchor_ms - (d + 1) * DAY_MS

    def is_workday(self, d: int) -> bool:
        return self._workday(d)

    def _is_workday(self, d: int) -> bool:
        day = datetime.fromtimestamp(self.day_ms(d) / 1000, MACAU_TZ)
        return day.weekday() < 5 and (day.month, day.day) not in MACAU_FIXED_HOLIDAYS

    def days_between(self, from_ms: int, to_ms: int) -> list[int]:
        """Generated workday indices whose workDate lies in [from, to], oldest first."""
        out = []
        for d in range(self.days - 1, -1, -1):
            day = self.day_ms(d)
            if from_ms <= day + DAY_MS - 1 and day <= to_ms and self.is_workday(d):
                out.append(d)
        return out

    def record_id(self, u: int, d: int, c: int) -> int:
        return RECORD_BASE + (u * self.days + d) * 2 + c

    def record(self, u: int, d: int, c: int) -> dict[str, Any]:
        """The record of user u, day d, check c (shared from a bounded cache: do not modify)."""
        return self._record_cached(u, d, c)

    def _record(self, u: int, d: int, c: int) -> dict[str, Any]:
        user = self.staff[u]
        day = self.day_ms(d)
        roll = h64(self.seed, "att", u, d, c)
        base = day + (9 * HOUR if c == 0 else 18 * HOUR)
        p = roll % 100
        if p < 80:
            result, delta = "Normal", (-((roll >> 8) % 20) if c == 0 else (roll >> 8) % 40) * 60_000
        elif p < 88:
            result, delta = (
                ("Late", ((roll >> 8) % 25 + 1) * 60_000)
                if c == 0
                else ("Early", -((roll >> 8) % 25 + 1) * 60_000)
            )
        elif p < 91 and c == 0:
            result, delta = "SeriousLate", ((roll >> 8) % 60 + 31) * 60_000
        elif p < 95:
            result, delta = "NotSigned", 0
        else:
            result, delta = "Normal", 0
        rec: dict[str, Any] = {
            "checkType": CHECKS[c],
            "locationResult": "Normal" if (roll >> 20) % 10 else "Outside",
            "baseCheckTime": base,
            "groupId": self.group_id,
            "timeResult": result,
            "userId": user.userid,
            "recordId": 40_000_000_000 + self.record_id(u, d, c) - RECORD_BASE,
            "workDate": day,
            "sourceType": "SYSTEM"
            if result == "NotSigned"
            else ("ATM", "USER", "DING_ATM", "BEACON")[(roll >> 24) % 4],
            "userCheckTime": base + delta,
            "planId": 145_000_000_000 + (u * self.days + d) * 2 + c,
            "id": self.record_id(u, d, c),
        }
        if result == "NotSigned":
            del rec["recordId"]  # no punch behind a missed check point
        return rec


def _book(call: Call | EmulatorState) -> AttendanceBook:
    state = call.state if isinstance(call, Call) else call
    return state.org.attendance


def _user_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not value:
        raise LegacyError(40035, f"不合法的参数: 缺少参数 {name}")
    if len(value) > MAX_USERS:
        raise LegacyError(400002, f"{name} 最多 {MAX_USERS} 个")  # (uncertain) errcode
    return [str(v) for v in value]


def _window(params: dict[str, Any], a: str, b: str) -> tuple[int, int]:
    try:
        start, end = parse_local_datetime(str(params[a])), parse_local_datetime(str(params[b]))
    except KeyError as e:
        raise LegacyError(40035, f"不合法的参数: 缺少参数 {e.args[0]}") from None
    except ValueError:
        raise LegacyError(400002, f"{a}/{b} 格式须为 yyyy-MM-dd HH:mm:ss") from None
    if end < start or end - start > MAX_SPAN_DAYS * DAY_MS:
        raise LegacyError(400002, f"{a} 与 {b} 间隔不能超过 {MAX_SPAN_DAYS} 天")  # (uncertain) errcode
    return start, end


@legacy_endpoint(SCOPE)
async def attendance_list(call: Call) -> dict[str, Any]:
    book, p = _book(call), call.params
    start, end = _window(p, "workDateFrom", "workDateTo")
    users = _user_list(p.get("userIdList"), "userIdList")
    offset = legacy_int(p, "offset", 0)
    limit = legacy_int(p, "limit", MAX_LIMIT)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise LegacyError(400002, f"limit 须在 1..{MAX_LIMIT}")
    days = book.days_between(start, end)
    keys = [
        (u, d, c)
        for uid in users
        if (u := book.index_of_user.get(uid)) is not None
        for d in days
        for c in (0, 1)
    ]
    page = keys[offset : offset + limit]
    return {"recordresult": [book.record(*k) for k in page], "hasMore": offset + limit < len(keys)}


@legacy_endpoint(SCOPE)
async def attendance_list_record(call: Call) -> dict[str, Any]:
    book, p = _book(call), call.params
    start, end = _window(p, "checkDateFrom", "checkDateTo")
    users = _user_list(p.get("userIds"), "userIds")
    out = []
    for uid in users:
        u = book.index_of_user.get(uid)
        if u is None:
            continue
        for d in book.days_between(start - DAY_MS, end):
            for c in (0, 1):
                rec = book.record(u, d, c)
                if rec["timeResult"] == "NotSigned" or not start <= rec["userCheckTime"] <= end:
                    continue
                roll = h64(book.seed, "punch", u, d, c)
                out.append(
                    {
                        "userId": uid,
                        "checkType": rec["checkType"],
                        "timeResult": rec["timeResult"],
                        "locationResult": rec["locationResult"],
                        "baseCheckTime": rec["baseCheckTime"],
                        "userCheckTime": rec["userCheckTime"],
                        "userAddress": (
                            "澳門新口岸宋玉生廣場 258 號",
                            "澳門氹仔布拉干薩街 88 號",
                            "珠海橫琴天羽道 19 號",
                        )[roll % 3],
                        "userLatitude": 22.19 + (roll % 1000) / 100_000,
                        "userLongitude": 113.54 + (roll >> 10) % 1000 / 100_000,
                        "userAccuracy": float((roll >> 20) % 60 + 5),
                        "deviceId": f"{(roll >> 4) % 16**12:012x}",
                        "locationMethod": ("MAP", "BEACON", "WIFI")[(roll >> 30) % 3],
                        "isLegal": "Y",
                        "sourceType": rec["sourceType"],
                        "groupId": rec["groupId"],
                        "planId": rec["planId"],
                        "recordId": rec["recordId"],
                        "workDate": rec["workDate"],
                    }
                )
    return {"recordresult": out}


def truth_attendance(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = _book(state)
    workdays = [d for d in range(book.days) if book.is_workday(d)]
    for u in range(len(book.staff)):
        for d in workdays:
            for c in (0, 1):
                rec = book.record(u, d, c)
                yield {
                    "id": str(rec["id"]),
                    "userId": rec["userId"],
                    "workDate": rec["workDate"],
                    "checkType": rec["checkType"],
                    "timeResult": rec["timeResult"],
                }


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/attendance/list", attendance_list, methods=["POST"]),
        Route("/attendance/listRecord", attendance_list_record, methods=["POST"]),
    ]


def register(state: EmulatorState) -> None:
    book = AttendanceBook(state.config.seed, profile_for(state.config).attendance_days, state.org.people)
    state.org.attendance = book
    state.truth["attendance"] = truth_attendance
    state.counts["attendance"] = lambda s: (
        2 * len(book.staff) * sum(1 for d in range(book.days) if book.is_workday(d))
    )
