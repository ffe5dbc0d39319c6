"""Exclusive DingTalk (专属钉钉) extras (dingtalk-api.md §3.5, §6.5), when the org has them.

* `GET /v1.0/exclusive/securities/orgGroupInfos` — the org's internal groups (`pageStart` 1-based,
  `pageSize`, a `uuid` constant across pages, `operatorUserId`), scope `Custom.Group.Read`;
* `GET /v1.0/exclusive/fileAuditLogs` — file/doc operation audit log (`startDate`/`endDate` in ms,
  `pageSize` ≤ 500, next page from the last record's `gmtCreate`/`bizId`), scope
  `Custom.OpFileAudit.Read`.

Availability is detected by trying once: an org without the exclusive edition (or an app without
the scope) answers 403/404/400, which is recorded in `unavailable` — reported, not fatal.
How the audit-log listing signals its end is not documented (uncertain): it stops on a short or
empty page, or when the next-page markers stop advancing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    content_hash,
    iso_from_ms,
    now_ms,
)
from dingvault.source.errors import (
    BadResponse,
    DingTalkError,
    NotFound,
    PermissionDenied,
    QuotaExhausted,
    Unavailable,
)
from dingvault.source.items import Batch, CompleteListing, CursorKey, CursorUpdate, Item, Mode, ScopeFilter

ORG_GROUPS = "/v1.0/exclusive/securities/orgGroupInfos"
FILE_AUDIT_LOGS = "/v1.0/exclusive/fileAuditLogs"
GROUP_PAGE = 100
AUDIT_PAGE = 500
AUDIT_HISTORY_DAYS = 180


def _is_unavailable(exc: DingTalkError) -> bool:
    if isinstance(exc, QuotaExhausted):
        return False
    return isinstance(exc, PermissionDenied | NotFound | Unavailable) or (exc.status in (400, 403, 404))


class ExclusiveCollector(Collector):
    name = "exclusive"
    family = "exclusive"
    kinds = ("org_group", "file_audit_log")
    scopes = ("Custom.Group.Read", "Custom.OpFileAudit.Read")
    apis = (ORG_GROUPS, FILE_AUDIT_LOGS)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.unavailable: dict[str, str] = {}  # kind -> why it is not available to this org

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        directory = await self.context.directory()
        operator = (directory.admins() or list(directory.users) or [""])[0]
        if scope.includes_kind("org_group"):
            try:
                items = [org_group_item(g) async for g in self._org_groups(operator)]
                yield Batch(
                    items=items, complete=[CompleteListing("org_group", "org")] if mode == "full" else None
                )
            except DingTalkError as exc:
                if not _is_unavailable(exc):
                    raise
                self.unavailable["org_group"] = str(exc)
                self.skipped.append(f"org_group: not available to this org ({exc.message})")
        if scope.includes_kind("file_audit_log"):
            try:
                async for batch in self._audit(mode, cursors):
                    yield batch
            except DingTalkError as exc:
                if not _is_unavailable(exc):
                    raise
                self.unavailable["file_audit_log"] = str(exc)
                self.skipped.append(f"file_audit_log: not available to this org ({exc.message})")

    async def _org_groups(self, operator: str) -> AsyncIterator[dict[str, Any]]:
        listing_id = str(uuid.uuid4())  # constant across the pages of one listing
        page = 1
        seen = 0
        for _ in range(1_000_000):
            body = await self.client.api(
                "GET",
                ORG_GROUPS,
                params={
                    "pageStart": page,
                    "pageSize": GROUP_PAGE,
                    "uuid": listing_id,
                    "operatorUserId": operator,
                },
            )
            items = [
                g for g in as_list(body.get("items")) if isinstance(g, dict) and g.get("openConversationId")
            ]
            for group in items:
                yield group
            seen += len(items)
            total = body.get("totalCount")
            if not items or (isinstance(total, int) and seen >= total) or len(items) < GROUP_PAGE:
                return
            page += 1
        raise BadResponse("orgGroupInfos did not end", endpoint=ORG_GROUPS)

    async def _audit(self, mode: Mode, cursors: Mapping[CursorKey, dict[str, Any]]) -> AsyncIterator[Batch]:
        state = self.cursor(cursors, "audit")
        end = now_ms()
        start = end - AUDIT_HISTORY_DAYS * DAY_MS
        if mode == "incremental" and isinstance(state.get("since"), int):
            start = max(start, state["since"] - self.settings.lookback_seconds * 1000)
        next_gmt: Any = None
        next_biz: Any = None
        newest = start
        for _ in range(1_000_000):
            params: dict[str, Any] = {"startDate": start, "endDate": end, "pageSize": AUDIT_PAGE}
            if next_gmt is not None:
                params["nextGmtCreate"] = next_gmt
                params["nextBizId"] = next_biz
            body = await self.client.api("GET", FILE_AUDIT_LOGS, params=params)
            records = [
                r for r in as_list(body.get("list")) if isinstance(r, dict) and r.get("bizId") is not None
            ]
            for record in records:
                created = record.get("gmtCreate")
                if isinstance(created, int):
                    newest = max(newest, created)
            last = records[-1] if records else None
            done = not records or len(records) < AUDIT_PAGE
            markers = (last.get("gmtCreate"), last.get("bizId")) if last else (None, None)
            if not done and markers == (next_gmt, next_biz):
                raise BadResponse(
                    "fileAuditLogs: the next-page markers did not advance", endpoint=FILE_AUDIT_LOGS
                )
            yield Batch(
                items=[audit_item(r) for r in records],
                cursor=CursorUpdate(self.name, "audit", {"since": newest}) if done else None,
            )
            if done:
                return
            next_gmt, next_biz = markers
        raise BadResponse("fileAuditLogs did not end", endpoint=FILE_AUDIT_LOGS)


def org_group_item(group: dict[str, Any]) -> Item:
    return Item(
        kind="org_group",
        source_id=str(group["openConversationId"]),
        raw={"group": group},
        fields={
            "name": group.get("groupName"),
            "title": group.get("groupName"),
            "owner": group.get("groupOwnerUserId"),
            "member_count": group.get("groupMembersCount"),
            "created": iso_from_ms(group.get("groupCreateTime")),
            "modified": iso_from_ms(group.get("groupLastActiveTime")),
            "status": group.get("status"),
        },
        version_key=content_hash(group),
        container="org",
    )


def audit_item(record: dict[str, Any]) -> Item:
    return Item(
        kind="file_audit_log",
        source_id=str(record["bizId"]),
        raw={"record": record},
        fields={
            "title": f"{record.get('actionView') or record.get('action')} {record.get('resource') or ''}".strip(),
            "created": iso_from_ms(record.get("gmtCreate")),
            "modified": iso_from_ms(record.get("gmtModified")),
            "owner": record.get("userId"),
            "action": record.get("action"),
        },
        version_key=str(record.get("gmtModified") or content_hash(record)),
        container="audit",
    )
