"""One collector per DingTalk data family, and a factory that builds them around one client.

    collectors = build_collectors(client)                   # every family
    collectors = build_collectors(client, families=["contacts", "approvals"], settings=...)

The collectors built together share one `CollectorContext`, so the directory (departments, users)
and the reachable group chats are read once per run whichever family asks first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dingvault.source.collectors.approvals import ApprovalsCollector
from dingvault.source.collectors.attendance import AttendanceCollector
from dingvault.source.collectors.base import Collector, CollectorContext, CollectorSettings
from dingvault.source.collectors.calendar import CalendarCollector
from dingvault.source.collectors.contacts import ContactsCollector
from dingvault.source.collectors.exclusive import ExclusiveCollector
from dingvault.source.collectors.files import FilesCollector
from dingvault.source.collectors.groups import GroupsCollector
from dingvault.source.collectors.reports import ReportsCollector
from dingvault.source.collectors.robot import RobotCollector
from dingvault.source.collectors.todo import TodoCollector

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient

# In the order a run should start them (contacts first: the others read the directory).
COLLECTOR_CLASSES: tuple[type[Collector], ...] = (
    ContactsCollector,
    ApprovalsCollector,
    FilesCollector,
    AttendanceCollector,
    CalendarCollector,
    TodoCollector,
    ReportsCollector,
    GroupsCollector,
    RobotCollector,
    ExclusiveCollector,
)
FAMILIES: tuple[str, ...] = tuple(c.family for c in COLLECTOR_CLASSES)


def build_collectors(
    client: DingTalkClient,
    *,
    families: Iterable[str] | None = None,
    settings: CollectorSettings | None = None,
) -> list[Collector]:
    wanted = set(families) if families is not None else set(FAMILIES)
    unknown = wanted - set(FAMILIES)
    if unknown:
        raise ValueError(
            f"unknown famil{'ies' if len(unknown) > 1 else 'y'}: {', '.join(sorted(unknown))}; known: {', '.join(FAMILIES)}"
        )
    context = CollectorContext(client, settings)
    return [cls(client, context) for cls in COLLECTOR_CLASSES if cls.family in wanted]


__all__ = [
    "COLLECTOR_CLASSES",
    "FAMILIES",
    "ApprovalsCollector",
    "AttendanceCollector",
    "CalendarCollector",
    "Collector",
    "CollectorContext",
    "CollectorSettings",
    "ContactsCollector",
    "ExclusiveCollector",
    "FilesCollector",
    "GroupsCollector",
    "ReportsCollector",
    "RobotCollector",
    "TodoCollector",
    "build_collectors",
]
