"""From Stream events to what an event-driven run fetches.

``plan_events(events)`` sorts a drained inbox slice into:

* **targeted fetches** - the record the event names is read directly and nothing else (the
  ``fetch_*`` modules build exactly the item the family's collector would build):
  ``bpms_instance_change`` / ``bpms_task_change`` -> ``GET /v1.0/workflow/processInstances`` for
  that ``processInstanceId`` (dingtalk-api.md §7.5); ``user_add_org`` / ``user_modify_org`` /
  ``user_active_org`` / ``user_leave_org`` -> that user (``topapi/v2/user/get``);
  ``org_dept_create|modify|remove`` -> that department (``topapi/v2/department/get``);
  ``storage_dentry_*`` -> that file (the dentry query of §5.3); ``calendar_event_change`` -> the
  named people's calendars, from their kept syncToken (no single-event read is documented);
  robot messages need no fetch at all - the pushed payload *is* the record (§3.3), its media are
  downloaded by ``downloadCode``. Deletions are confirmed by the read ("not found") and mark the
  item deleted at source; the vault keeps every version. A record that cannot be identified or
  read that way (a folder, an online document, a space the vault does not know yet, ...) makes
  its targeted collector run the family's incremental instead (``FallBack``);
* **family-scoped incrementals** - events whose data names no record the connector can read on
  its own run that family's own incremental, which is cheap by design (cursors): groups
  (``chat_*``), knowledge bases (``doc_spaces_*``), todo (``todo_task_*``: no single-todo read and
  no documented event fields), attendance, exclusive, and any targeted event whose data lacks the
  id it needs. Several events of one family in one slice cost one run;
* **leavers** - ``user_leave_org`` user ids, for the offboarding capture and hold.

Events of types nobody backs up (``robot_msg_read``, ``org_change``, ...) are marked handled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingvault.service.events import ROBOT_MESSAGE_TOPIC
from dingvault.service.fetch_calendar import fetch_calendars
from dingvault.service.fetch_common import FallBack, VaultLookup, ids_of
from dingvault.service.fetch_contacts import ContactChanges, fetch_contacts
from dingvault.service.fetch_files import DentryRef, fetch_dentries
from dingvault.service.state import InboxEvent
from dingvault.source.collectors.approvals import INSTANCE, approval_item
from dingvault.source.collectors.base import bounded_map
from dingvault.source.errors import BadResponse, NotFound
from dingvault.source.items import Batch, Item

log = logging.getLogger(__name__)

# Event type (or prefix ending in "_") -> the family whose incremental covers it.
_FAMILY_BY_TYPE: tuple[tuple[str, str], ...] = (
    ("user_", "contacts"),
    ("org_dept_", "contacts"),
    ("org_admin_", "contacts"),
    ("label_", "contacts"),
    ("hrm_", "contacts"),
    ("workflow_form_change", "approvals"),
    ("chat_", "groups"),
    ("storage_dentry_", "files"),
    ("doc_spaces_", "files"),
    ("calendar_event_change", "calendar"),
    ("todo_task_", "todo"),
    ("attendance_", "attendance"),
    ("attend_", "attendance"),
    ("org_file_send_check", "exclusive"),
    ("exclusive_data_transfer", "exclusive"),
)
APPROVAL_EVENTS = ("bpms_instance_change", "bpms_task_change")
LEAVE_EVENT = "user_leave_org"
USER_EVENTS = ("user_add_org", "user_modify_org", "user_active_org")
DEPT_EVENTS = ("org_dept_create", "org_dept_modify", "org_dept_remove")
DENTRY_EVENTS = ("storage_dentry_create", "storage_dentry_update", "storage_dentry_delete")
CALENDAR_EVENT = "calendar_event_change"
# Events whose change shows in other families too: a new employee brings a personal drive space
# and a "my docs" workspace; a new department brings its department group and that group's file
# space; a group's file space is read as one of its members, so membership changes make it
# reachable (or not) - and a department group's members follow the department's (a user moved
# in or out changes them, without a chat_* event).
_ALSO = {
    "user_modify_org": ("groups", "files"),
    "org_dept_create": ("groups", "files"),
    "org_dept_modify": ("groups",),
    "org_dept_remove": ("groups", "files"),
    "user_add_org": ("groups", "files"),
    "user_active_org": ("files",),
    "chat_add_member": ("files",),
    "chat_remove_member": ("files",),
    "chat_quit": ("files",),
    "chat_disband": ("files",),
}


def family_for(event_type: str) -> str | None:
    for prefix, family in _FAMILY_BY_TYPE:
        if event_type == prefix or (prefix.endswith("_") and event_type.startswith(prefix)):
            return family
    return None


@dataclass
class EventPlan:
    approvals: dict[str, str] = field(default_factory=dict)  # processInstanceId -> processCode
    robot_messages: list[dict[str, Any]] = field(default_factory=list)
    contacts: ContactChanges = field(default_factory=ContactChanges)
    dentries: dict[str, DentryRef] = field(default_factory=dict)  # "<spaceId>/<dentryId>" -> ref
    calendars: list[str] = field(default_factory=list)  # unionIds whose calendar changed
    families: set[str] = field(default_factory=set)
    leavers: list[str] = field(default_factory=list)
    chat_ids: set[str] = field(default_factory=set)  # group chats named by chat_* events
    ignored: list[str] = field(default_factory=list)  # event ids of types nobody backs up
    malformed: list[str] = field(default_factory=list)  # event ids whose data lacks what is needed

    @property
    def targeted_families(self) -> set[str]:
        """Families with records to read directly (a family run in ``families`` covers them)."""
        wanted = {
            "approvals": bool(self.approvals),
            "robot": bool(self.robot_messages),
            "contacts": bool(self.contacts),
            "files": bool(self.dentries),
            "calendar": bool(self.calendars),
        }
        return {f for f, yes in wanted.items() if yes}

    @property
    def empty(self) -> bool:
        return not (self.targeted_families or self.families)


def plan_events(events: Iterable[InboxEvent]) -> EventPlan:
    plan = EventPlan()
    for ev in events:
        data = ev.data
        if ev.source == "callback":
            if ev.type == ROBOT_MESSAGE_TOPIC and data.get("msgId") and data.get("conversationId"):
                plan.robot_messages.append(data)
            else:
                plan.malformed.append(ev.id)
            continue
        if ev.type in APPROVAL_EVENTS:
            pid = data.get("processInstanceId")
            if not pid:
                plan.malformed.append(ev.id)
                continue
            plan.approvals[str(pid)] = str(data.get("processCode") or "")
            continue
        family = family_for(ev.type)
        if family is None:
            plan.ignored.append(ev.id)
            continue
        plan.families.update(_ALSO.get(ev.type, ()))
        if not _plan_targeted(plan, ev):
            plan.families.add(family)  # no record to read directly: the family's incremental
        if family == "groups" and data.get("chatId"):
            plan.chat_ids.add(str(data["chatId"]))
        if ev.type == LEAVE_EVENT:
            plan.leavers += ids_of(data.get("userId"))
    return plan


def _plan_targeted(plan: EventPlan, ev: InboxEvent) -> bool:
    """Adds the record ``ev`` names to the plan's targeted reads; False if it names none (lenient
    parsing: the documented fields, §7.5, as a list or a single value)."""
    data = ev.data
    if ev.type in USER_EVENTS or ev.type == LEAVE_EVENT:
        userids = ids_of(data.get("userId"))
        if ev.type == LEAVE_EVENT:
            when = _int(data.get("timeStamp")) or (ev.born_ms or None)
            for userid in userids:
                plan.contacts.leavers[userid] = when
        else:
            plan.contacts.users.update(userids)
        return bool(userids)
    if ev.type in DEPT_EVENTS:
        dept_ids = [i for i in (_int(d) for d in ids_of(data.get("deptId"))) if i is not None]
        plan.contacts.departments.update(dept_ids)
        return bool(dept_ids)
    if ev.type in DENTRY_EVENTS:
        space_id, dentry_id = data.get("spaceId"), data.get("dentryId")
        if not space_id or not dentry_id:
            return False
        ref = DentryRef(str(space_id), str(dentry_id), str(data.get("type") or ""))
        plan.dentries[ref.source_id] = ref
        return True
    if ev.type == CALENDAR_EVENT:
        unionids = ids_of(data.get("unionIdList")) or ids_of(data.get("unionId"))
        plan.calendars += [u for u in unionids if u not in plan.calendars]
        return bool(unionids)
    return False


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def event_item_key(ev: InboxEvent) -> tuple[str, str] | None:
    """The item a targeted event stores with attachments, whose failure must keep the event pending."""
    if ev.type in APPROVAL_EVENTS and ev.data.get("processInstanceId"):
        return ("approval", str(ev.data["processInstanceId"]))
    if ev.type in DENTRY_EVENTS and ev.data.get("spaceId") and ev.data.get("dentryId"):
        return ("file", f"{ev.data['spaceId']}/{ev.data['dentryId']}")
    return None


def is_direct(ev: InboxEvent) -> bool:
    """Whether ``ev`` is handled by targeted reads alone (no family incremental needed)."""
    plan = plan_events([ev])
    return not plan.families and not plan.leavers


class TargetedCollector:
    """A ``CollectorLike`` that yields directly fetched records (and the cursors they move).

    Attachments are opened by the family's real collector (``delegate``), so downloads, signed
    URLs and retries behave exactly as in scheduled runs. When the fetch cannot identify or read
    a record (``FallBack``, raised before anything is yielded) the delegate's incremental runs in
    its place, so the event is still captured - at the family run's cost.
    """

    def __init__(
        self,
        name: str,
        family: str,
        fetch: Callable[[Mapping[tuple[str, str], dict[str, Any]], Any], Awaitable[list[Batch]]],
        delegate: Any,
    ) -> None:
        self.name = name
        self.family = family
        self._fetch = fetch
        self._delegate = delegate
        self.fell_back: str | None = None  # why the family incremental ran instead, if it did

    async def collect(
        self, *, mode: str, cursors: Mapping[tuple[str, str], dict[str, Any]], scope: Any
    ) -> AsyncIterator[Batch]:
        try:
            batches = await self._fetch(cursors, scope)
        except FallBack as why:
            self.fell_back = str(why)
            log.info("%s: %s; running the %s incremental instead", self.name, why, self.family)
            async for batch in self._delegate.collect(mode="incremental", cursors=cursors, scope=scope):
                yield batch
            return
        for batch in batches:
            yield batch

    def open_attachment(self, ref: Any) -> AsyncIterator[bytes]:
        return self._delegate.open_attachment(ref)


def targeted_collectors(
    plan: EventPlan,
    client: Any,
    delegates: Mapping[str, Any],
    lookup: VaultLookup,
    *,
    skip: Iterable[str] = (),
) -> list[TargetedCollector]:
    """One collector per family with records to read directly, except the families in ``skip``
    (they run their incremental in the same run, which covers these records)."""
    out: list[TargetedCollector] = []
    for family in sorted(plan.targeted_families - set(skip)):
        delegate = delegates[family]
        out.append(
            TargetedCollector(
                f"{family}-events", family, _fetcher(plan, family, client, delegate, lookup), delegate
            )
        )
    return out


def _fetcher(plan: EventPlan, family: str, client: Any, delegate: Any, lookup: VaultLookup) -> Any:
    async def fetch(cursors: Mapping[tuple[str, str], dict[str, Any]], scope: Any) -> list[Batch]:
        if family == "approvals":
            items = await _approvals(client, plan.approvals, scope)
            return [Batch(items=items)] if items else []
        if family == "robot":
            if not scope.includes_kind("robot_message"):
                return []
            return [Batch(items=[delegate.message_item(p) for p in plan.robot_messages])]
        if family == "contacts":
            return await fetch_contacts(client, plan.contacts, scope, delegate.settings)
        if family == "files":
            return await fetch_dentries(client, list(plan.dentries.values()), scope, lookup)
        if family == "calendar":
            return await fetch_calendars(client, plan.calendars, cursors, scope, lookup)
        raise ValueError(f"no targeted fetch for family {family}")

    return fetch


async def _approvals(client: Any, approvals: Mapping[str, str], scope: Any) -> list[Item]:
    items: list[Item] = []
    problems: list[str] = []

    async def detail(pid: str) -> dict[str, Any]:
        body = await client.api("GET", INSTANCE, params={"processInstanceId": pid})
        result = body.get("result")
        if not isinstance(result, dict):
            raise BadResponse(f"instance {pid}: no result object", endpoint=INSTANCE)
        return result

    async for pid, result in bounded_map(detail, list(approvals), 8):
        if isinstance(result, NotFound):
            continue  # deleted since the event: nothing to capture
        if isinstance(result, BaseException):
            problems.append(f"approval {pid}: {result}")
            continue
        originator = result.get("originatorUserId")
        if originator and not scope.includes_user(str(originator)):
            continue
        code = approvals[pid] or str(result.get("processCode") or "")
        items.append(approval_item(pid, code, result))
    if problems:
        # The events stay pending (and are retried) rather than being marked handled.
        raise TargetedFetchError("; ".join(problems[:5]))
    return items


class TargetedFetchError(Exception):
    """A record named by an event could not be read; its events stay pending for a retry."""
