"""Approvals / OA 审批 (dingtalk-api.md §4): templates, instances, attachments.

* Templates: `GET /v1.0/workflow/processes/managements/templates?userId=<OA admin>`; the admin is
  found from the users' `admin` flag (each admin is tried until one is accepted).
* Instance ids per template: `POST /v1.0/workflow/processes/instanceIds/query` in ≤ 120-day
  windows of *creation* time, as far back as the API allows (365 days; configurable for
  OA-premium orgs, 5 years), `maxResults` 20, non-empty `nextToken` ⇒ more.
* Detail: `GET /v1.0/workflow/processInstances?processInstanceId=...` (kept verbatim as `detail`).
* Attachments: `POST /v1.0/workflow/processInstances/spaces/files/urls/download` → a 15-minute
  `downloadUri` (needs the write scope `Workflow.Instance.Write`).

Incremental runs list ids created since the cursor (minus a look-back) and re-read the instances
that were still running last time (kept in the cursor), since a running instance changes as it is
approved; a finished instance is only re-read by a full run (or by a `bpms_instance_change` event).

Containers are `<processCode>/<YYYY-MM>` of the creation month, so that a full run only declares
complete the months it could list entirely: instances older than the API's reach are never taken
for deleted.

Reading is pipelined: a template's listing runs a bounded distance ahead of its detail reads, the
details are read with bounded concurrency across page and window boundaries, and a few templates
are read side by side (sharing the detail slots). Each template's batches still come out in
listing order, so a window's cursor (and its complete months) follows everything it covers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson

from dingvault.source.collectors.base import (
    DAY_MS,
    Collector,
    as_list,
    content_hash,
    has_more_token,
    interleave,
    is_family_fatal,
    month_of,
    ms_from_iso,
    normalise_iso,
    now_ms,
    ordered_pipeline,
    ref_dict,
    whole_months,
    windows,
)
from dingvault.source.collectors.seen_ids import SeenIds
from dingvault.source.errors import BadResponse, DingTalkError, NotFound, PermissionDenied
from dingvault.source.items import (
    AttachmentRef,
    Batch,
    CompleteListing,
    CursorKey,
    CursorUpdate,
    Item,
    Mode,
    ScopeFilter,
)

TEMPLATES = "/v1.0/workflow/processes/managements/templates"
INSTANCE_IDS = "/v1.0/workflow/processes/instanceIds/query"
INSTANCE = "/v1.0/workflow/processInstances"
ATTACHMENT_URL = "/v1.0/workflow/processInstances/spaces/files/urls/download"
PAGE_SIZE = 20  # documented maximum of maxResults; also the size of the item batches yielded
# Detail reads in flight for the whole collector, per unit of `CollectorSettings.concurrency`.
DETAIL_SLOTS_PER_CONCURRENCY = 2
# How many listed ids a template may read ahead of the details it has handed over.
LOOKAHEAD_PER_CONCURRENCY = 4
# Templates read side by side (they share the detail slots).
TEMPLATES_AT_ONCE = 4
# Stay this far inside the documented 365-day reach so clock skew never makes a window invalid.
REACH_MARGIN_MS = 3_600_000


class ApprovalsCollector(Collector):
    name = "approvals"
    family = "approvals"
    kinds = ("approval", "approval_template")
    scopes = ("Workflow.Form.Read", "Workflow.Instance.Read", "Workflow.Instance.Write")
    apis = (TEMPLATES, INSTANCE_IDS, INSTANCE, ATTACHMENT_URL)

    async def collect(
        self,
        *,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
    ) -> AsyncIterator[Batch]:
        templates = await self._templates()
        yield Batch(
            items=[template_item(t) for t in templates],
            complete=[CompleteListing("approval_template", "templates")] if mode == "full" else None,
        )
        if not scope.includes_kind("approval"):
            return
        # Detail reads of all templates share these slots, so reading templates side by side
        # does not multiply the calls in flight; the client still paces each API.
        slots = asyncio.Semaphore(self.settings.concurrency * DETAIL_SLOTS_PER_CONCURRENCY)

        def reader(code: str) -> Callable[[], AsyncIterator[Batch]]:
            return lambda: self._instances(code, mode, cursors, scope, slots)

        # Each template's batches keep their order (its cursor follows its items); templates are
        # independent cursors, so their batches may interleave.
        sources = [reader(str(t["processCode"])) for t in templates]
        async for batch in interleave(sources, TEMPLATES_AT_ONCE):
            yield batch
        self.finish()

    async def _templates(self) -> list[dict[str, Any]]:
        directory = await self.context.directory()
        admins = directory.admins() or list(directory.users)[:1]
        last: DingTalkError | None = None
        for admin in admins:
            try:
                body = await self.client.api("GET", TEMPLATES, params={"userId": admin})
            except PermissionDenied as exc:
                if exc.required_scopes:
                    raise
                last = exc  # this admin is not an OA-approval admin; try the next one
                continue
            except DingTalkError as exc:
                if is_family_fatal(exc):
                    raise
                last = exc
                continue
            return [t for t in as_list(body.get("result")) if isinstance(t, dict) and t.get("processCode")]
        if last is not None:
            raise last
        raise DingTalkError("no user with admin rights found to list approval templates", endpoint=TEMPLATES)

    async def _instances(
        self,
        process_code: str,
        mode: Mode,
        cursors: Mapping[CursorKey, dict[str, Any]],
        scope: ScopeFilter,
        slots: asyncio.Semaphore,
    ) -> AsyncIterator[Batch]:
        """One template: details read while the listing runs ahead, batches in listing order."""
        state = self.cursor(cursors, process_code)
        now = now_ms()
        reach = now - self.settings.approval_history_days * DAY_MS + REACH_MARGIN_MS
        start = reach
        previously_open: list[str] = []
        if mode == "incremental" and isinstance(state.get("until"), int):
            start = max(reach, state["until"] - self.settings.lookback_seconds * 1000)
            previously_open = [str(i) for i in as_list(state.get("open"))]
        spans = windows(start, now, self.settings.approval_window_days * DAY_MS)
        run = _TemplateRun(process_code, scope)
        declared: set[str] = set()
        lookahead = self.settings.concurrency * LOOKAHEAD_PER_CONCURRENCY
        jobs = self._jobs(process_code, previously_open, spans)
        # Closed as soon as this template's reading ends or is abandoned: stops its read-ahead.
        results = ordered_pipeline(
            jobs, self._detail, slots=slots, lookahead=lookahead, is_marker=_is_window_end
        )
        async with aclosing(results):
            async for job, result in results:
                if isinstance(job, _WindowEnd):
                    if run.items:
                        yield Batch(items=run.take_items())
                    complete = None
                    if mode == "full" and not run.gaps:
                        # Only now that all of the window is in: its fully listed months.
                        months = [
                            m for m in whole_months(reach, job.end, job.end >= now) if m not in declared
                        ]
                        declared.update(months)
                        complete = [CompleteListing("approval", f"{process_code}/{m}") for m in months]
                    yield run.cursor_batch(self.name, job.end, complete)
                    continue
                assert result is not None  # only window ends come without a result
                self._take(run, job, result)
                if len(run.items) >= PAGE_SIZE:
                    yield Batch(items=run.take_items())
        if run.items:
            yield Batch(items=run.take_items())

    async def _jobs(
        self, process_code: str, previously_open: list[str], spans: list[tuple[int, int]]
    ) -> AsyncIterator[str | _WindowEnd]:
        """Ids to read in order: last run's open ones, then each window's, each followed by its end."""
        # An id is read once per run, even if listed twice. The ids of a template's whole history
        # add up with the organisation, so they are not kept in a Python set (see seen_ids).
        with SeenIds() as seen:
            for instance_id, first in zip(previously_open, seen.add_new(previously_open), strict=True):
                if first:
                    yield instance_id
            for window_start, window_end in spans:
                async for ids in self._list_ids(process_code, window_start, window_end):
                    for instance_id, first in zip(ids, seen.add_new(ids), strict=True):
                        if first:
                            yield instance_id
                yield _WindowEnd(window_end)

    def _take(self, run: _TemplateRun, instance_id: str, result: dict[str, Any] | BaseException) -> None:
        """Account for one detail answer, in listing order."""
        if isinstance(result, NotFound):
            return  # deleted between listing and reading
        if isinstance(result, BaseException):
            self.note_problem(f"approval {instance_id}", result)
            # Keep it open so the next incremental run tries again.
            run.open_ids.add(instance_id)
            run.gaps = True  # a record failed: no deletion detection for its months
            return
        if result.get("status") in ("RUNNING", "NEW"):
            run.open_ids.add(instance_id)
        originator = result.get("originatorUserId")
        if originator and not run.scope.includes_user(str(originator)):
            run.gaps = True  # left out by the scope: its absence from the backup proves nothing
            return
        run.items.append(approval_item(instance_id, run.process_code, result))

    async def _list_ids(self, process_code: str, start: int, end: int) -> AsyncIterator[list[str]]:
        token: Any = 0
        for _ in range(10_000):
            body = await self.client.api(
                "POST",
                INSTANCE_IDS,
                json={
                    "processCode": process_code,
                    "startTime": start,
                    "endTime": end,
                    "nextToken": token,
                    "maxResults": PAGE_SIZE,
                },
            )
            result = body.get("result") or {}
            if not isinstance(result, dict):
                raise BadResponse("instanceIds/query: result is not an object", endpoint=INSTANCE_IDS)
            yield [str(i) for i in as_list(result.get("list"))]
            next_token = result.get("nextToken")
            if not has_more_token(next_token):
                return
            if str(next_token) == str(token):
                raise BadResponse("instanceIds/query repeated its nextToken", endpoint=INSTANCE_IDS)
            # Typed Long in the request, String in the response (§0.4): send it back as a number.
            token = int(next_token) if str(next_token).isdigit() else next_token

    async def _detail(self, instance_id: str) -> dict[str, Any]:
        body = await self.client.api("GET", INSTANCE, params={"processInstanceId": instance_id})
        result = body.get("result")
        if not isinstance(result, dict):
            raise BadResponse(f"instance {instance_id}: no result object", endpoint=INSTANCE)
        return result

    async def _download_url(self, ref: dict[str, Any]) -> tuple[str, dict[str, str]]:
        body: dict[str, Any] = {"processInstanceId": ref["processInstanceId"], "fileId": ref["fileId"]}
        if ref.get("comment"):
            # Comment attachments: documented as unsupported, though the flag exists (uncertain).
            body["withCommentAttatchment"] = True
        answer = await self.client.api("POST", ATTACHMENT_URL, json=body)
        result = answer.get("result") or {}
        uri = result.get("downloadUri") if isinstance(result, dict) else None
        if not isinstance(uri, str) or not uri:
            raise BadResponse("attachment download answer without downloadUri", endpoint=ATTACHMENT_URL)
        return uri, {}

    async def open_attachment(self, ref: AttachmentRef | Mapping[str, Any]) -> AsyncIterator[bytes]:
        data = ref_dict(ref)
        url, headers = await self._download_url(data)

        async def refresh() -> tuple[str, dict[str, str]]:
            return await self._download_url(data)

        async for chunk in self.client.download(url, headers, refresh=refresh):
            yield chunk


@dataclass(frozen=True)
class _WindowEnd:
    """Marks the end of one listing window in a template's stream of ids."""

    end: int


def _is_window_end(value: object) -> bool:
    return isinstance(value, _WindowEnd)


@dataclass
class _TemplateRun:
    """What one template's reading has gathered so far, in listing order."""

    process_code: str
    scope: ScopeFilter
    open_ids: set[str] = field(default_factory=set)
    gaps: bool = False  # a record skipped by scope or failed: no deletion detection
    items: list[Item] = field(default_factory=list)

    def take_items(self) -> list[Item]:
        items, self.items = self.items, []
        return items

    def cursor_batch(self, collector: str, until: int, complete: list[CompleteListing] | None) -> Batch:
        """The cursor after everything listed up to `until` has been handed over."""
        update = {"until": until, "open": sorted(self.open_ids)}
        return Batch(cursor=CursorUpdate(collector, self.process_code, update), complete=complete or None)


def template_item(template: dict[str, Any]) -> Item:
    return Item(
        kind="approval_template",
        source_id=str(template["processCode"]),
        raw={"template": template},
        fields={
            "title": template.get("flowTitle"),
            "name": template.get("flowTitle"),
            "modified": normalise_iso(template.get("gmtModified")),
        },
        # The whole template: `gmtModified` is to the minute in the reference ("2022-08-23T17:09Z"),
        # so a second edit in the minute of a stored one would look like the same version.
        version_key=content_hash(template),
        container="templates",
    )


def approval_item(instance_id: str, process_code: str, detail: dict[str, Any]) -> Item:
    created = detail.get("createTime")
    month = month_of(ms_from_iso(created))
    modified = detail.get("finishTime") or _last_operation(detail) or created
    return Item(
        kind="approval",
        source_id=instance_id,
        raw={"detail": detail},
        fields={
            "title": detail.get("title"),
            "created": normalise_iso(created),
            "modified": normalise_iso(modified),
            "owner": detail.get("originatorUserId"),
            "dept_id": detail.get("originatorDeptId"),
            "status": detail.get("status"),
            "result": detail.get("result"),
            "process_code": process_code,
            "business_id": detail.get("businessId"),
        },
        version_key=content_hash(detail),
        attachments=approval_attachments(instance_id, detail),
        container=f"{process_code}/{month}",
    )


def _last_operation(detail: dict[str, Any]) -> str | None:
    dates = [
        r.get("date")
        for r in as_list(detail.get("operationRecords"))
        if isinstance(r, dict) and r.get("date")
    ]
    return max(dates, key=lambda d: ms_from_iso(d) or 0) if dates else None


def _size(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def approval_attachments(instance_id: str, detail: dict[str, Any]) -> list[AttachmentRef]:
    """Form attachments (`DDAttachment` components) and operation-record attachments."""
    refs: list[AttachmentRef] = []
    seen: set[str] = set()

    def add(entry: dict[str, Any], comment: bool) -> None:
        file_id = entry.get("fileId")
        if not file_id or str(file_id) in seen:
            return
        seen.add(str(file_id))
        name = str(entry.get("fileName") or file_id)
        file_type = entry.get("fileType")
        if file_type and "." not in name:
            # Manually attached files can come back as `#xxx.file`; restore the extension (§4.4).
            name = f"{name}.{file_type}"
        refs.append(
            AttachmentRef(
                name=name,
                size=_size(entry.get("fileSize") or entry.get("size")),
                ref={"processInstanceId": instance_id, "fileId": str(file_id), "comment": comment},
                kind="approval_attachment",
            )
        )

    for component in as_list(detail.get("formComponentValues")):
        if not isinstance(component, dict) or component.get("componentType") != "DDAttachment":
            continue
        # The value's structure is not shown in the reference (uncertain): a JSON string holding
        # a list of {fileId, fileName, fileSize, fileType, spaceId} is assumed and parsed leniently.
        value = component.get("value")
        try:
            entries = orjson.loads(value) if isinstance(value, str) and value else value
        except orjson.JSONDecodeError:
            entries = None
        for entry in as_list(entries):
            if isinstance(entry, dict):
                add(entry, comment=False)
    for record in as_list(detail.get("operationRecords")):
        if isinstance(record, dict):
            for entry in as_list(record.get("attachments")):
                if isinstance(entry, dict):
                    add(entry, comment=True)
    return refs
