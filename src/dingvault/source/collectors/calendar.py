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

People who left: the directory lists active users only, so a user who left since the last run is
no longer listed, yet their calendar may have changed between that run and their departure (new
events, edits, cancellations). Every run (full or incremental) therefore asks once more with the
syncToken it kept for such a user ("final sync"); whatever the answer — the changes, or a refusal
because DingTalk no longer knows the user — the cursor is then marked `departed` so later runs do
not ask again. Records already captured stay in the backup (their containers are not re-listed).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    content_hash,
    has_more_token,
    interleave,
    is_family_fatal,
    iso_seconds,
    month_of,
    ms_from_iso,
    normalise_iso,
    now_ms,
    owner_by_unionid,
    whole_months,
    windows,
)
from dingvault.source.errors import BadResponse, DingTalkError, NotFound
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient

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

        active = {union for _, union in directory.people()}
        departed = [
            (union, dict(state))
            for (name, union), state in cursors.items()
            if name == self.name and union not in active and _departed_pending(state, scope)
        ]

        def source(userid: str, union: str) -> Callable[[], AsyncIterator[Batch]]:
            async def run() -> AsyncIterator[Batch]:
                try:
                    async for batch in self._user(union, mode, cursors, userid):
                        yield batch
                except DingTalkError as exc:
                    self.note_problem(f"calendar of {userid}", exc)

            return run

        def farewell(union: str, state: dict[str, Any]) -> Callable[[], AsyncIterator[Batch]]:
            async def run() -> AsyncIterator[Batch]:
                try:
                    async for batch in self._final_sync(union, state):
                        yield batch
                except DingTalkError as exc:
                    self.note_problem(f"calendar of {state.get('userid') or union} (left)", exc)

            return run

        # Users are independent: read several at once so the API's rate, not latency, is the limit.
        # Each user's source is made when a slot frees (`interleave` takes them one by one), not all
        # up front: a closure per person held for the whole run grew with the org (2,000 on the
        # emulator's large company).
        sources = itertools.chain((source(u, n) for u, n in people), (farewell(n, st) for n, st in departed))
        async for batch in interleave(sources, self.settings.concurrency):
            yield batch
        self.finish()

    async def _final_sync(self, union: str, state: dict[str, Any]) -> AsyncIterator[Batch]:
        """The changes made to a departed user's calendar since the last run, asked for once."""
        userid = state.get("userid")
        items: list[Item] = []
        deleted: list[str] = []
        try:
            async for page, _ in self._pages(union, {"syncToken": state["syncToken"], "showDeleted": True}):
                live, gone = split_events(union, page)
                for event in live:
                    item = owner_by_unionid(event, self._directory)
                    if item.fields.get("owner") is None and item.fields.get("owner_unionid") == union:
                        item.fields["owner"] = userid
                    items.append(item)
                deleted += gone
        except DingTalkError as exc:
            if not _gone(exc):
                raise
            # DingTalk no longer answers for this user (or refused the token): nothing more to read.
        yield Batch(
            items=items,
            deleted=deleted or None,
            deleted_kind="calendar_event",
            cursor=CursorUpdate(self.name, union, {"departed": True, "userid": userid}),
        )

    async def _user(
        self, union: str, mode: Mode, cursors: Mapping[CursorKey, dict[str, Any]], userid: str
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
                    live, gone = split_events(union, page)
                    items += [owner_by_unionid(item, self._directory) for item in live]
                    deleted += gone
                yield sync_batch(union, userid, new_token or token, items, deleted)
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
            params = {"timeMin": iso_seconds(window_start), "timeMax": iso_seconds(window_end)}
            async for page, page_token in self._pages(union, params):
                newest_token = page_token or newest_token
                live, gone = split_events(union, page)
                # A batch per page, not per window: a busy person's year of events is never held
                # at once (the cursor and the months' completeness come after the last page).
                yield Batch(
                    items=[owner_by_unionid(item, self._directory) for item in live],
                    deleted=gone or None,
                    deleted_kind="calendar_event",
                )
        complete = None
        if mode == "full":
            complete = [
                CompleteListing("calendar_event", f"{union}/{m}") for m in whole_months(start, end, False)
            ]
        yield Batch(
            cursor=CursorUpdate(self.name, union, {"syncToken": newest_token, "userid": userid})
            if newest_token
            else None,
            complete=complete or None,
        )

    def _pages(
        self, union: str, params: dict[str, Any]
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
        return event_pages(self.client, union, params)


def split_events(union: str, page: list[dict[str, Any]]) -> tuple[list[Item], list[str]]:
    """A page's live events as items (owners still unionIds) and its cancelled ones as deleted ids."""
    items: list[Item] = []
    deleted: list[str] = []
    for event in page:
        if event.get("status") == "cancelled":
            deleted.append(f"{union}/{event['id']}")
        else:
            items.append(event_item(union, event))
    return items, deleted


def sync_batch(union: str, userid: Any, sync_token: str, items: list[Item], deleted: list[str]) -> Batch:
    """One person's calendar changes since a syncToken, with the cursor that follows them (the
    collector's incremental and the event-driven fetch store exactly this)."""
    return Batch(
        items=items,
        deleted=deleted or None,
        deleted_kind="calendar_event",
        cursor=CursorUpdate(CalendarCollector.name, union, {"syncToken": sync_token, "userid": userid}),
    )


async def event_pages(
    client: DingTalkClient, union: str, params: dict[str, Any]
) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
    """Pages of one person's primary calendar (`params`: a window or a syncToken), with the
    syncToken each page carries."""
    next_token: str | None = None
    for _ in range(100_000):
        body = await client.api(
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


def _departed_pending(state: Mapping[str, Any], scope: ScopeFilter) -> bool:
    """A kept syncToken not yet used for a final sync, of a user still in scope.

    Cursors written before the userid was kept in them name no userid: the cursor itself shows the
    user was in scope when it was written.
    """
    if state.get("departed") or not isinstance(state.get("syncToken"), str) or not state["syncToken"]:
        return False
    userid = state.get("userid")
    return not userid or scope.includes_user(str(userid))


def _gone(exc: DingTalkError) -> bool:
    """A client error for a departed user's calendar: the user (or the token) is no longer known."""
    if exc.retryable or is_family_fatal(exc):
        return False
    return isinstance(exc, NotFound) or _refused_token(exc) or exc.status in (403, 404)


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
        # The whole event, not `updateTime`: the reference gives that time to the second only (two
        # edits in one second, a run between them, would look like one version and the second edit
        # would never be stored), and does not say whether an attendee's answer moves it (uncertain).
        # A field that changed without an edit costs a version; a missed edit would cost the edit.
        version_key=content_hash(event),
        container=f"{union}/{month_of(_start_ms(event))}",
    )
