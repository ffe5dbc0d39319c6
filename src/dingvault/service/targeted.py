"""From Stream events to what an event-driven run fetches.

``plan_events(events)`` sorts a drained inbox slice into:

* **targeted fetches** - the record the event names is read directly and nothing else:
  ``bpms_instance_change`` / ``bpms_task_change`` -> ``GET /v1.0/workflow/processInstances`` for
  that ``processInstanceId`` (dingtalk-api.md §7.5); robot messages need no fetch at all - the pushed
  payload *is* the record (§3.3), its media are downloaded by ``downloadCode``;
* **family-scoped incrementals** - events whose data names a record the connector has no
  single-record reader for (yet) run that family's own incremental, which is cheap by design
  (cursors): contacts (``user_*``, ``org_dept_*``), groups (``chat_*``), files
  (``storage_dentry_*``, ``doc_spaces_*``), calendar (``calendar_event_change``), todo
  (``todo_task_*``), attendance, exclusive. Several events of one family in one slice cost one run;
* **leavers** - ``user_leave_org`` user ids, for the offboarding capture and hold.

Events of types nobody backs up (``robot_msg_read``, ``org_change``, ...) are marked handled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingvault.service.events import ROBOT_MESSAGE_TOPIC
from dingvault.service.state import InboxEvent
from dingvault.source.collectors.approvals import INSTANCE, approval_item
from dingvault.source.collectors.base import bounded_map
from dingvault.source.errors import BadResponse, NotFound
from dingvault.source.items import Batch, Item

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
    families: set[str] = field(default_factory=set)
    leavers: list[str] = field(default_factory=list)
    chat_ids: set[str] = field(default_factory=set)  # group chats named by chat_* events
    ignored: list[str] = field(default_factory=list)  # event ids of types nobody backs up
    malformed: list[str] = field(default_factory=list)  # event ids whose data lacks what is needed

    @property
    def empty(self) -> bool:
        return not (self.approvals or self.robot_messages or self.families)


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
        plan.families.add(family)
        plan.families.update(_ALSO.get(ev.type, ()))
        if family == "groups" and data.get("chatId"):
            plan.chat_ids.add(str(data["chatId"]))
        if ev.type == LEAVE_EVENT:
            plan.leavers += [str(u) for u in data.get("userId") or [] if u]
    return plan


class TargetedCollector:
    """A ``CollectorLike`` that yields one batch of directly fetched items and no cursor.

    Attachments are opened by the family's real collector (``delegate``), so downloads, signed
    URLs and retries behave exactly as in scheduled runs.
    """

    def __init__(
        self, name: str, family: str, fetch: Callable[[], Awaitable[list[Item]]], delegate: Any
    ) -> None:
        self.name = name
        self.family = family
        self._fetch = fetch
        self._delegate = delegate

    async def collect(
        self, *, mode: str, cursors: Mapping[tuple[str, str], dict[str, Any]], scope: Any
    ) -> AsyncIterator[Batch]:
        items = await self._fetch()
        if items:
            yield Batch(items=items)

    def open_attachment(self, ref: Any) -> AsyncIterator[bytes]:
        return self._delegate.open_attachment(ref)


def approvals_collector(client: Any, delegate: Any, approvals: Mapping[str, str], scope: Any) -> TargetedCollector:
    async def fetch() -> list[Item]:
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

    return TargetedCollector("approvals-events", "approvals", fetch, delegate)


def robot_collector(delegate: Any, payloads: list[dict[str, Any]]) -> TargetedCollector:
    async def fetch() -> list[Item]:
        return [delegate.message_item(p) for p in payloads]

    return TargetedCollector("robot-events", "robot", fetch, delegate)


class TargetedFetchError(Exception):
    """A record named by an event could not be read; its events stay pending for a retry."""
