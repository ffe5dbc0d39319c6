"""Work reports / 日志 (dingtalk-api.md §6.4): `POST /topapi/report/list` for the whole org.

Windows of ≤ 180 days of creation time (`start_time`/`end_time` in ms), `cursor`/`size` ≤ 20 until
`has_more` is false; without `userid`/`template_name` the whole org is listed. Content values are
truncated by DingTalk at 1000 characters (kept verbatim). Incremental runs ask only for reports
*modified* since the cursor (`modified_start_time`), over the same creation windows.

Containers are `<YYYY-MM>` of creation; a full run declares complete the months its windows fully
covered (older reports are kept, never taken for deleted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    content_hash,
    iso_from_ms,
    month_of,
    now_ms,
    whole_months,
    windows,
)
from dingvault.source.errors import BadResponse
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

REPORT_LIST = "/topapi/report/list"
PAGE = 20
# Reports handed to the engine at a time (a few pages): memory stays flat however big a window.
BATCH = 200


class ReportsCollector(Collector):
    name = "reports"
    family = "reports"
    kinds = ("report",)
    scopes = ("qyapi_report_query",)
    apis = (REPORT_LIST,)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        await self.context.directory()  # only to fail early and consistently if contacts are unreadable
        state = self.cursor(cursors)
        now = now_ms()
        start = now - self.settings.report_history_days * DAY_MS
        modified_since = None
        if mode == "incremental" and isinstance(state.get("modified_until"), int):
            modified_since = state["modified_until"] - self.settings.lookback_seconds * 1000
        span = min(180, self.settings.report_window_days) * DAY_MS - 1000
        filtered = False
        declared: set[str] = set()
        for window_start, window_end in windows(start, now, span):
            items: list[Item] = []
            async for report in self._reports(window_start, window_end, modified_since):
                creator = report.get("creator_id")
                if creator and not scope.includes_user(str(creator)):
                    filtered = True
                    continue
                items.append(report_item(report))
                if len(items) >= BATCH:
                    # A window can hold tens of thousands of reports: hand them on as they come
                    # rather than hold the whole window (its cursor and completions follow below).
                    yield Batch(items=items)
                    items = []
            complete = None
            if mode == "full" and not filtered:
                months = [m for m in whole_months(start, window_end, window_end >= now) if m not in declared]
                declared.update(months)
                complete = [CompleteListing("report", m) for m in months] or None
            last = window_end >= now
            # The window's completions and the run's cursor ride on its last batch: the engine
            # applies them only once every report before them is stored.
            yield Batch(
                items=items,
                complete=complete,
                cursor=CursorUpdate(self.name, "", {"modified_until": now}) if last else None,
            )

    async def _reports(
        self, start: int, end: int, modified_since: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = 0
        for _ in range(1_000_000):
            body: dict[str, Any] = {"start_time": start, "end_time": end, "cursor": cursor, "size": PAGE}
            if modified_since is not None:
                body["modified_start_time"] = modified_since
            answer = await self.client.oapi("POST", REPORT_LIST, json=body)
            result = answer.get("result") or {}
            if not isinstance(result, dict):
                raise BadResponse("report/list: result is not an object", endpoint=REPORT_LIST)
            for report in as_list(result.get("data_list")):
                if isinstance(report, dict) and report.get("report_id"):
                    yield report
            if not result.get("has_more"):
                return
            next_cursor = result.get("next_cursor")
            if not isinstance(next_cursor, int) or next_cursor <= cursor:
                raise BadResponse(
                    f"report/list: has_more without an advancing next_cursor ({next_cursor!r})",
                    endpoint=REPORT_LIST,
                )
            cursor = next_cursor
        raise BadResponse("report/list did not end", endpoint=REPORT_LIST)


def report_item(report: dict[str, Any]) -> Item:
    created = report.get("create_time")
    return Item(
        kind="report",
        source_id=str(report["report_id"]),
        raw={"report": report},
        fields={
            "title": f"{report.get('template_name')} — {report.get('creator_name')}",
            "created": iso_from_ms(created),
            "modified": iso_from_ms(report.get("modified_time")),
            "owner": report.get("creator_id"),
            "template": report.get("template_name"),
            "department": report.get("dept_name"),
        },
        version_key=str(report.get("modified_time") or content_hash(report)),
        container=month_of(created if isinstance(created, int) else None),
    )
