"""Calendars (dingtalk-api.md §6.2): each user's primary calendar, events by time window + syncToken.

`GET /v1.0/calendar/users/{userId}/calendars/primary/events` — `{userId}` is the user's **unionId**;
`timeMin`/`timeMax` windows of ≤ 1 year, `maxResults` ≤ 100, `nextToken`; the answer carries a
`syncToken` that later returns only what changed. A full run lists the configured window around
now (history and future) and keeps the newest syncToken; an incremental run asks with the
syncToken (with `showDeleted` so cancellations arrive as `status: cancelled`) and falls back to a
window listing if the token is refused. Recurring series: past instances are returned, future ones
are not (§6.2).

Containers are `<unionId>/<YYYY-MM>` of the event's start, so a full run only declares complete the
months its windows fully covered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    content_hash,
    has_more_token,
    interleave,
    iso_seconds,
    month_of,
    ms_from_iso,
    normalise_iso,
    now_ms,
    owner_by_unionid,
    whole_months,
    windows,
)
from dingvault.source.errors import BadResponse, DingTalkError
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

EVENTS = "/v1.0/calendar/users/{userId}/calendars/{calendarId}/events"
PAGE = 100
YEAR_MS = 365 * DAY_MS


class CalendarCollector(Collector):
    name = "calendar"
    family = "calendar"
    kinds = ("calendar_event",)
    scopes = ("Calendar.Event.Read",)
    apis = (EVENTS,)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        self._directory = directory
        people = [(uid, union) for uid, union in directory.people() if scope.includes_user(uid)]

        def source(userid: str, union: str) -> Callable[[], AsyncIterator[Batch]]:
            async def run() -> AsyncIterator[Batch]:
                try:
                    async for batch in self._user(union, mode, cursors):
                        yield batch
                except DingTalkError as exc:
                    self.note_problem(f"calendar of {userid}", exc)

            return run

        # Users are independent: read several at once so the API's rate, not latency, is the limit.
        async for batch in interleave((source(u, n) for u, n in people), self.settings.concurrency):
            yield batch
        self.finish()

    async def _user(
        self, union: str, mode: Mode, cursors: Mapping[CursorKey, dict[str, Any]]
    ) -> AsyncIterator[Batch]:
        state = self.cursor(cursors, union)
        token = state.get("syncToken")
        if mode == "incremental" and isinstance(token, str) and token:
            try:
                items: list[Item] = []
                deleted: list[str] = []
                new_token = None
                async for page, page_token in self._pages(union, {"syncToken": token, "showDeleted": True}):
                    new_token = page_token or new_token
                    for event in page:
                        if event.get("status") == "cancelled":
                            deleted.append(f"{union}/{event['id']}")
                        else:
                            items.append(owner_by_unionid(event_item(union, event), self._directory))
                yield Batch(
                    items=items,
                    deleted=deleted or None,
                    deleted_kind="calendar_event",
                    cursor=CursorUpdate(self.name, union, {"syncToken": new_token or token}),
                )
                return
            except DingTalkError as exc:
                if not _refused_token(exc):
                    raise
                # The syncToken expired or was refused: list the windows again.
        now = now_ms()
        start = now - self.settings.calendar_history_days * DAY_MS
        end = now + self.settings.calendar_future_days * DAY_MS
        newest_token: str | None = None
        for window_start, window_end in windows(start, end, YEAR_MS - DAY_MS):
            items = []
            deleted = []
            params = {"timeMin": iso_seconds(window_start), "timeMax": iso_seconds(window_end)}
            async for page, page_token in self._pages(union, params):
                newest_token = page_token or newest_token
                for event in page:
                    if event.get("status") == "cancelled":
                        deleted.append(f"{union}/{event['id']}")
                    else:
                        items.append(owner_by_unionid(event_item(union, event), self._directory))
            yield Batch(items=items, deleted=deleted or None, deleted_kind="calendar_event")
        complete = None
        if mode == "full":
            complete = [
                CompleteListing("calendar_event", f"{union}/{m}") for m in whole_months(start, end, False)
            ]
        yield Batch(
            cursor=CursorUpdate(self.name, union, {"syncToken": newest_token}) if newest_token else None,
            complete=complete or None,
        )

    async def _pages(
        self, union: str, params: dict[str, Any]
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
        next_token: str | None = None
        for _ in range(100_000):
            body = await self.client.api(
                "GET",
                EVENTS,
                path={"userId": union, "calendarId": "primary"},
                params={**params, "maxResults": PAGE, "nextToken": next_token},
            )
            events = [e for e in as_list(body.get("events")) if isinstance(e, dict) and e.get("id")]
            sync = body.get("syncToken")
            yield events, str(sync) if sync else None
            token = body.get("nextToken")
            if not has_more_token(token):
                return
            if token == next_token:
                raise BadResponse("calendar events repeated its nextToken", endpoint=EVENTS)
            next_token = str(token)
        raise BadResponse("calendar events listing did not end", endpoint=EVENTS)


def _refused_token(exc: DingTalkError) -> bool:
    return exc.status == 400 or (exc.code or "").lower().startswith(("invalid", "synctoken"))


def _start_ms(event: dict[str, Any]) -> int | None:
    start = event.get("start") or {}
    if not isinstance(start, dict):
        return None
    return ms_from_iso(start.get("dateTime") or start.get("date"))


def event_item(union: str, event: dict[str, Any]) -> Item:
    organizer = event.get("organizer") or {}
    return Item(
        kind="calendar_event",
        source_id=f"{union}/{event['id']}",
        raw={"event": event},
        fields={
            "title": event.get("summary"),
            "created": normalise_iso(event.get("createTime")),
            "modified": normalise_iso(event.get("updateTime")),
            "owner": organizer.get("id") if isinstance(organizer, dict) else None,
            "status": event.get("status"),
            "start": normalise_iso((event.get("start") or {}).get("dateTime"))
            if isinstance(event.get("start"), dict)
            else None,
            "calendar_owner": union,
        },
        version_key=str(event.get("updateTime") or content_hash(event)),
        container=f"{union}/{month_of(_start_ms(event))}",
    )
