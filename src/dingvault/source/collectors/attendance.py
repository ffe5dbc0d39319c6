"""Attendance (dingtalk-api.md §6.1): daily check results from `POST /attendance/list`.

Windows of ≤ 7 days (`workDateFrom`/`workDateTo` as `yyyy-MM-dd HH:mm:ss` in the org's time zone)
× ≤ 50 users, pages of `limit` 50 by `offset` until `hasMore` is false; about six months back.
The results include scheduled check points even without a punch. Incremental runs re-read from
the cursor's day minus `attendance_lookback_days` (results change after the fact, e.g. when a
correction approval goes through). Records are never deleted at the source, so no listing is
declared complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dingvault.source.collectors.base import (
    Collector,
    as_list,
    content_hash,
    interleave,
    iso_from_ms,
)
from dingvault.source.errors import BadResponse, DingTalkError
from dingvault.source.items import Batch, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

ATTENDANCE_LIST = "/attendance/list"
MAX_USERS = 50
PAGE = 50
# Results of the last days are still settling (corrections, approvals): always re-read them.
LOOKBACK_DAYS = 3


class AttendanceCollector(Collector):
    name = "attendance"
    family = "attendance"
    kinds = ("attendance",)
    scopes = ()  # the reference does not name the attendance read scope (uncertain)
    apis = (ATTENDANCE_LIST,)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        users = sorted(uid for uid in directory.users if scope.includes_user(uid))
        if not users:
            return
        tz = ZoneInfo(self.settings.org_timezone)
        today = datetime.now(tz).date()
        first = today - timedelta(days=self.settings.attendance_history_days - 1)
        state = self.cursor(cursors)
        if mode == "incremental" and isinstance(state.get("until"), str):
            try:
                first = max(first, date.fromisoformat(state["until"]) - timedelta(days=LOOKBACK_DAYS))
            except ValueError:
                pass
        span = max(1, min(7, self.settings.attendance_window_days))
        groups = [users[i : i + MAX_USERS] for i in range(0, len(users), MAX_USERS)]
        day = first
        while day <= today:
            last = min(today, day + timedelta(days=span - 1))
            seen: set[str] = set()
            sources = [self._group_source(group, day, last) for group in groups]
            # Pages are handed on as they arrive (a window of a large org holds tens of thousands
            # of records): only the pages in flight are held, never the whole window.
            async for page in interleave(sources, self.settings.concurrency):
                items = []
                for record in page:
                    rid = str(record.get("id"))
                    if rid not in seen:
                        seen.add(rid)
                        items.append(attendance_item(record))
                if items:
                    yield Batch(items=items)
            # Commit the window only if every group of users was read; this batch follows all of
            # the window's records, so the engine applies the cursor only once they are stored.
            if not self.problems:
                yield Batch(cursor=CursorUpdate(self.name, "", {"until": last.isoformat()}))
            day = last + timedelta(days=1)
        self.finish()

    def _group_source(
        self, users: list[str], first: date, last: date
    ) -> Callable[[], AsyncIterator[list[dict[str, Any]]]]:
        """The pages of one group of users for one window; a failure is noted, not raised."""

        async def run() -> AsyncIterator[list[dict[str, Any]]]:
            try:
                async for page in self._window(users, first, last):
                    yield page
            except DingTalkError as exc:
                self.note_problem(f"attendance {first}..{last} of {len(users)} users", exc)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                # An answer of an unexpected shape: this group's problem, reported with its cause.
                problem = BadResponse(f"unexpected attendance answer: {type(exc).__name__}: {exc}")
                problem.__cause__ = exc
                self.note_problem(f"attendance {first}..{last} of {len(users)} users", problem)

        return run

    async def _window(self, users: list[str], first: date, last: date) -> AsyncIterator[list[dict[str, Any]]]:
        offset = 0
        for _ in range(100_000):
            body = await self.client.oapi(
                "POST",
                ATTENDANCE_LIST,
                json={
                    "workDateFrom": f"{first.isoformat()} 00:00:00",
                    "workDateTo": f"{last.isoformat()} 23:59:59",
                    "userIdList": users,
                    "offset": offset,
                    "limit": PAGE,
                    "isI18n": False,
                },
            )
            yield [
                r
                for r in as_list(body.get("recordresult"))
                if isinstance(r, dict) and r.get("id") is not None
            ]
            if not body.get("hasMore"):
                return
            offset += PAGE
        raise BadResponse("attendance/list did not end", endpoint=ATTENDANCE_LIST)


def attendance_item(record: dict[str, Any]) -> Item:
    user = record.get("userId")
    return Item(
        kind="attendance",
        source_id=str(record["id"]),
        raw={"record": record},
        fields={
            "owner": user,
            "title": f"{record.get('checkType')} {iso_from_ms(record.get('workDate'))}",
            "created": iso_from_ms(record.get("workDate")),
            "modified": iso_from_ms(record.get("userCheckTime") or record.get("baseCheckTime")),
            "status": record.get("timeResult"),
            "check_type": record.get("checkType"),
            "location_result": record.get("locationResult"),
        },
        version_key=content_hash(record),
        container=str(user) if user else None,
    )
