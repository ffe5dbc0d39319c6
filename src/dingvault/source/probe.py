"""Which data families the app's granted scopes allow: one cheap call per endpoint family.

    report = await probe(client)
    for family, result in report.items():
        print(family, result)        # "ok" | "missing scopes [Drive.Space.Read]" | "unavailable (…)"

Used by `dingvault connect`. Each check calls an endpoint with harmless parameters (a one-day
window, one result, or an id that does not exist): DingTalk checks the token's scopes before it
looks at the parameters, so a "not found" or "invalid parameter" answer still proves the scope is
granted (the order of those checks is inferred from the documented error bodies, uncertain), while
`403 AccessTokenPermissionDenied` / legacy `60011` names the missing scope. Exclusive-edition APIs
answering 403/404 mean "not available to this org", which is reported, not fatal.

A probe costs about 15 calls, a few of which count against the standard edition's monthly quota.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from dingvault.source._responses import NEW_SCOPE_CODE
from dingvault.source.collectors import (
    approvals,
    attendance,
    calendar,
    contacts,
    exclusive,
    reports,
    robot,
    todo,
)
from dingvault.source.collectors import conversations as conv
from dingvault.source.collectors import directory as dirs
from dingvault.source.collectors import storage as st
from dingvault.source.errors import (
    AuthenticationError,
    DingTalkError,
    IpBanned,
    IpNotWhitelisted,
    NotFound,
    PermissionDenied,
    QuotaExhausted,
)
from dingvault.source.scopes import scope_for

if TYPE_CHECKING:
    from dingvault.source.client import DingTalkClient

Status = Literal["ok", "missing_scopes", "unavailable", "error"]
PROBE_ID = "dingvault-probe-0000"  # an id that exists nowhere


@dataclass
class FamilyProbe:
    family: str
    status: Status = "ok"
    missing_scopes: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        if self.status == "ok":
            return "ok"
        if self.status == "missing_scopes":
            if not self.missing_scopes:
                return f"missing a scope DingTalk does not name ({self.reason})"
            return f"missing scopes [{', '.join(self.missing_scopes)}]"
        return f"{self.status} ({self.reason})"


@dataclass
class _Who:
    userid: str | None = None
    unionid: str | None = None


Check = Callable[["DingTalkClient", _Who], Awaitable[Any]]


def _day_window_ms() -> tuple[int, int]:
    end = datetime.now(UTC)
    return int((end - timedelta(days=1)).timestamp() * 1000), int(end.timestamp() * 1000)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _someone(client: DingTalkClient) -> _Who:
    """Any user (preferably an admin) to act as: from the root department's member list."""
    body = await client.oapi(
        "POST", dirs.USER_LIST, json={"dept_id": dirs.ROOT_DEPT_ID, "cursor": 0, "size": 100}
    )
    users = [u for u in (body.get("result") or {}).get("list") or [] if isinstance(u, dict)]
    if not users:
        children = await client.oapi("POST", dirs.LISTSUB, json={"dept_id": dirs.ROOT_DEPT_ID})
        for dept in children.get("result") or []:
            body = await client.oapi(
                "POST", dirs.USER_LIST, json={"dept_id": dept.get("dept_id"), "cursor": 0, "size": 100}
            )
            users = [u for u in (body.get("result") or {}).get("list") or [] if isinstance(u, dict)]
            if users:
                break
    users.sort(key=lambda u: not u.get("admin"))
    if not users:
        return _Who()
    return _Who(str(users[0].get("userid") or "") or None, str(users[0].get("unionid") or "") or None)


def _checks() -> dict[str, list[tuple[str, Check]]]:
    """family -> [(endpoint template, check)]"""

    def union(who: _Who) -> str:
        return who.unionid or PROBE_ID

    async def listsub(c: DingTalkClient, who: _Who) -> Any:
        return await c.oapi("POST", dirs.LISTSUB, json={"dept_id": dirs.ROOT_DEPT_ID})

    async def user_list(c: DingTalkClient, who: _Who) -> Any:
        return await c.oapi(
            "POST", dirs.USER_LIST, json={"dept_id": dirs.ROOT_DEPT_ID, "cursor": 0, "size": 1}
        )

    async def leave(c: DingTalkClient, who: _Who) -> Any:
        end = datetime.now(UTC)
        params = {
            "startTime": _iso(end - timedelta(days=1)),
            "endTime": _iso(end),
            "nextToken": 0,
            "maxResults": 1,
        }
        return await c.api("GET", contacts.LEAVE_RECORDS, params=params)

    async def templates(c: DingTalkClient, who: _Who) -> Any:
        return await c.api("GET", approvals.TEMPLATES, params={"userId": who.userid or PROBE_ID})

    async def instance_ids(c: DingTalkClient, who: _Who) -> Any:
        start, end = _day_window_ms()
        body = {
            "processCode": "PROC-" + PROBE_ID,
            "startTime": start,
            "endTime": end,
            "nextToken": 0,
            "maxResults": 1,
        }
        return await c.api("POST", approvals.INSTANCE_IDS, json=body)

    async def attachment(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "POST", approvals.ATTACHMENT_URL, json={"processInstanceId": PROBE_ID, "fileId": PROBE_ID}
        )

    async def spaces(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "GET", st.DRIVE_SPACES, params={"unionId": union(who), "spaceType": "org", "maxResults": 1}
        )

    async def dentries(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "GET", st.DENTRIES, path={"spaceId": PROBE_ID}, params={"parentId": "0", "unionId": union(who)}
        )

    async def download_info(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "POST",
            st.DOWNLOAD_INFO,
            path={"spaceId": PROBE_ID, "dentryId": PROBE_ID},
            params={"unionId": union(who)},
            json={"option": {}},
        )

    async def workspaces(c: DingTalkClient, who: _Who) -> Any:
        return await c.api("GET", st.WIKI_WORKSPACES, params={"operatorId": union(who), "maxResults": 1})

    async def nodes(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "GET", st.WIKI_NODES, params={"parentNodeId": PROBE_ID, "operatorId": union(who), "maxResults": 1}
        )

    async def group_space(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "POST",
            st.GROUP_SPACE,
            params={"unionId": union(who)},
            json={"openConversationId": "cid" + PROBE_ID},
        )

    async def attendance_list(c: DingTalkClient, who: _Who) -> Any:
        day = datetime.now(UTC).date().isoformat()
        body = {
            "workDateFrom": f"{day} 00:00:00",
            "workDateTo": f"{day} 23:59:59",
            "userIdList": [who.userid or PROBE_ID],
            "offset": 0,
            "limit": 1,
        }
        return await c.oapi("POST", attendance.ATTENDANCE_LIST, json=body)

    async def events(c: DingTalkClient, who: _Who) -> Any:
        end = datetime.now(UTC)
        params = {"timeMin": _iso(end - timedelta(days=1)), "timeMax": _iso(end), "maxResults": 1}
        return await c.api(
            "GET", calendar.EVENTS, path={"userId": union(who), "calendarId": "primary"}, params=params
        )

    async def todos(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "POST", todo.TASKS, path={"unionId": union(who)}, json={"nextToken": "0", "isDone": False}
        )

    async def report_list(c: DingTalkClient, who: _Who) -> Any:
        start, end = _day_window_ms()
        return await c.oapi(
            "POST", reports.REPORT_LIST, json={"start_time": start, "end_time": end, "cursor": 0, "size": 1}
        )

    async def chat(c: DingTalkClient, who: _Who) -> Any:
        return await c.oapi("GET", conv.CHAT_GET, params={"chatid": "chat" + PROBE_ID})

    async def robot_media(c: DingTalkClient, who: _Who) -> Any:
        return await c.api(
            "POST",
            robot.MESSAGE_FILE_DOWNLOAD,
            json={"downloadCode": PROBE_ID, "robotCode": c.config.app_key},
        )

    async def org_groups(c: DingTalkClient, who: _Who) -> Any:
        params = {"pageStart": 1, "pageSize": 1, "uuid": PROBE_ID, "operatorUserId": who.userid or PROBE_ID}
        return await c.api("GET", exclusive.ORG_GROUPS, params=params)

    async def audit(c: DingTalkClient, who: _Who) -> Any:
        start, end = _day_window_ms()
        return await c.api(
            "GET", exclusive.FILE_AUDIT_LOGS, params={"startDate": start, "endDate": end, "pageSize": 1}
        )

    return {
        "contacts": [(dirs.LISTSUB, listsub), (dirs.USER_LIST, user_list), (contacts.LEAVE_RECORDS, leave)],
        "approvals": [
            (approvals.TEMPLATES, templates),
            (approvals.INSTANCE_IDS, instance_ids),
            (approvals.ATTACHMENT_URL, attachment),
        ],
        "files": [
            (st.DRIVE_SPACES, spaces),
            (st.DENTRIES, dentries),
            (st.DOWNLOAD_INFO, download_info),
            (st.WIKI_WORKSPACES, workspaces),
            (st.WIKI_NODES, nodes),
            (st.GROUP_SPACE, group_space),
        ],
        "attendance": [(attendance.ATTENDANCE_LIST, attendance_list)],
        "calendar": [(calendar.EVENTS, events)],
        "todo": [(todo.TASKS, todos)],
        "reports": [(reports.REPORT_LIST, report_list)],
        "groups": [(conv.CHAT_GET, chat)],
        "robot": [(robot.MESSAGE_FILE_DOWNLOAD, robot_media)],
        "exclusive": [(exclusive.ORG_GROUPS, org_groups), (exclusive.FILE_AUDIT_LOGS, audit)],
    }


async def _probe_family(
    client: DingTalkClient, family: str, checks: list[tuple[str, Check]], who: _Who
) -> FamilyProbe:
    result = FamilyProbe(family)
    for endpoint, check in checks:
        try:
            await check(client, who)
        except PermissionDenied as exc:
            if isinstance(exc, IpNotWhitelisted):
                return FamilyProbe(family, "error", reason=str(exc))
            scopes = exc.required_scopes or ([s] if (s := scope_for(endpoint)) else [])
            if family == "exclusive" and not exc.required_scopes:
                return FamilyProbe(family, "unavailable", reason=f"not available to this org: {exc.message}")
            if exc.required_scopes or exc.code in ("60011", NEW_SCOPE_CODE):
                result.status = "missing_scopes"
                result.missing_scopes.extend(s for s in scopes if s not in result.missing_scopes)
                if not scopes:
                    result.reason = f"{endpoint}: {exc.message}"
            # Otherwise: an operator-level denial on a made-up id — the scope itself is granted.
        except QuotaExhausted as exc:
            return FamilyProbe(family, "unavailable", reason=f"monthly call quota exhausted ({exc.code})")
        except (AuthenticationError, IpBanned):
            raise
        except NotFound:
            continue  # the made-up id does not exist: the scope was accepted
        except DingTalkError as exc:
            if family == "exclusive" and exc.status in (400, 403, 404):
                return FamilyProbe(family, "unavailable", reason=f"not available to this org: {exc.message}")
            if exc.status is not None and 400 <= exc.status < 500 or (exc.code or "").lstrip("-").isdigit():
                continue  # rejected parameters: the call got past the permission check
            return FamilyProbe(family, "error", reason=str(exc))
    return result


async def probe(client: DingTalkClient, families: list[str] | None = None) -> dict[str, FamilyProbe]:
    """Probe every family (or the given ones). Bad credentials raise `AuthenticationError`."""
    checks = _checks()
    wanted = families or list(checks)
    try:
        who = await _someone(client)
    except PermissionDenied:
        who = _Who()  # contacts not readable: the contacts probe will say which scope is missing
    results = await asyncio.gather(*(_probe_family(client, f, checks[f], who) for f in wanted))
    return dict(zip(wanted, results, strict=True))
