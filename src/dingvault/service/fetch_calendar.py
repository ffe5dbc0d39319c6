"""Targeted reads of the calendar family for ``calendar_event_change`` (§6.2, §7.5).

The reference documents no read of a single calendar event, only the per-user event list with a
``syncToken`` that returns what changed since. The event names whose calendars changed
(``unionIdList``), so only those calendars are asked, each with the syncToken the calendar
collector kept for it: one or two calls per person instead of one per person of the organisation.
The cursor moves on exactly as the collector moves it, so the next incremental does not read the
same changes again. A person without a kept syncToken (never captured, or gone), or a token
DingTalk refuses, falls back to the calendar incremental.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dingvault.service.fetch_common import FallBack, VaultLookup, owner_known, read_all, within_limit
from dingvault.source.collectors.calendar import CalendarCollector, event_pages, split_events, sync_batch
from dingvault.source.errors import DingTalkError
from dingvault.source.items import Batch, Item


async def fetch_calendars(
    client: Any,
    unionids: list[str],
    cursors: Mapping[tuple[str, str], dict[str, Any]],
    scope: Any,
    lookup: VaultLookup,
) -> list[Batch]:
    within_limit(len(unionids), "calendars")

    async def read(union: str) -> Batch | None:
        state = dict(cursors.get((CalendarCollector.name, union)) or {})
        token, userid = state.get("syncToken"), state.get("userid")
        if state.get("departed") or not isinstance(token, str) or not token or not userid:
            raise FallBack(f"no syncToken kept for the calendar of {union}")
        if not scope.includes_user(str(userid)):
            return None  # out of scope: the collector does not read this calendar either
        items: list[Item] = []
        deleted: list[str] = []
        new_token = None
        async for page, page_token in _pages(client, union, token):
            new_token = page_token or new_token
            live, gone = split_events(union, page)
            # Owners are looked up in the catalog: one trip to a worker thread per page.
            items += await asyncio.to_thread(lambda live=live: [owner_known(item, lookup) for item in live])
            deleted += gone
        return sync_batch(union, userid, new_token or token, items, deleted)

    return [b for b in await read_all(read, unionids) if b is not None]


async def _pages(client: Any, union: str, sync_token: str) -> Any:
    """The collector's own pager over the changes since `sync_token`; a refusal that will not
    pass by retrying sends the event to the family run."""
    try:
        async for page in event_pages(client, union, {"syncToken": sync_token, "showDeleted": True}):
            yield page
    except DingTalkError as exc:
        if exc.retryable:
            raise
        raise FallBack(f"calendar of {union}: {exc.message}") from exc
