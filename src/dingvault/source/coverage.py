"""What dingvault captures from DingTalk, family by family — and what the API cannot give.

The data behind `dingvault coverage` and `docs/coverage.md` (which is generated from it by
`render_markdown()`; a test keeps the two identical). Every statement follows the API reference
(`dingtalk-api.md`); what the reference marks uncertain is listed as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from dingvault.source.collectors import COLLECTOR_CLASSES


@dataclass(frozen=True)
class FamilyCoverage:
    family: str
    title: str
    kinds: tuple[str, ...]
    captured: tuple[str, ...]
    not_available: tuple[str, ...]
    incremental: str
    uncertain: tuple[str, ...] = ()
    # Reachable through the API but not captured by this version of dingvault.
    not_yet: tuple[str, ...] = ()

    @property
    def scopes(self) -> tuple[str, ...]:
        return next((c.scopes for c in COLLECTOR_CLASSES if c.family == self.family), ())

    @property
    def apis(self) -> tuple[str, ...]:
        return next((c.apis for c in COLLECTOR_CLASSES if c.family == self.family), ())


COVERAGE: tuple[FamilyCoverage, ...] = (
    FamilyCoverage(
        family="contacts",
        title="Organisation: departments, people, leavers",
        kinds=("department", "user", "resigned_user"),
        captured=(
            "The whole department tree (breadth-first `listsub`) with each department's detail "
            "(`department/get`: managers, member count, department group chat id).",
            "Every active user with the fields the app's contact permissions allow "
            "(`topapi/v2/user/list`, 100 per page).",
            "Resigned employees from `empLeaveRecords` (≤ 365-day windows, five years back by default): "
            "leave time and reason.",
        ),
        not_available=(
            "A user's full record after they left: `user/get` no longer finds them, so the last "
            "backed-up record is what remains.",
            "Mobile, e-mail, work place and extension fields unless the app holds those contact permissions.",
        ),
        not_yet=("HR dimission details (hand-over user, reasons) of the 智能人事 APIs.",),
        incremental="Always a complete listing (contacts APIs are exempt from the monthly quota); "
        "unchanged records are recognised by a hash of their payload; people no longer listed are marked deleted.",
        uncertain=("The scope name for reading departments is not given by the reference.",),
    ),
    FamilyCoverage(
        family="approvals",
        title="Approvals (OA 审批)",
        kinds=("approval_template", "approval"),
        captured=(
            "Approval templates (forms) an OA admin manages.",
            "Every approval instance created in the last 365 days (configurable up to 5 years for OA-premium "
            "orgs), listed per template in 120-day windows: form values, tasks, operation records, comments.",
            "Form attachments and operation-record attachments (15-minute download links, fetched when stored).",
        ),
        not_available=(
            "Instances older than the API's reach (365 days on non-premium orgs) — unless an earlier "
            "backup already holds them.",
            "Attachments without the write scope `Workflow.Instance.Write` (DingTalk requires it even to read).",
        ),
        incremental="New instances since the cursor (minus a look-back), plus a re-read of the instances "
        "still running last time; finished instances are re-read by full runs (or live approval events).",
        uncertain=(
            "The structure of a `DDAttachment` form value (a JSON list of file descriptors is assumed).",
            "Comment attachments: the request flag exists but the docs call them unsupported.",
        ),
    ),
    FamilyCoverage(
        family="files",
        title="Files, knowledge bases and online documents",
        kinds=("drive_space", "file", "wiki_workspace", "wiki_node", "doc"),
        captured=(
            "Org drive spaces, the file spaces of every reachable group, every knowledge base (team and "
            "each user's 'my documents').",
            "Every file and folder (`listAll`), all versions of each file, and the content of each version "
            "(signed download, resumed with Range).",
            "Knowledge-base node trees, and the first-level blocks of every online document.",
        ),
        not_available=(
            "Anything no user can see: every call is made as a user (admin, owner, group member).",
            "Content of online documents as files (they are captured as blocks; only first-level blocks are documented).",
            "The storage space of an empty knowledge base (no node to map it from); the knowledge base itself is captured.",
            "Files of orgs whose certification level is too low for downloads (`orgAuthLevelNotEnough`).",
        ),
        incremental="Each space newest-first down to the cursor; deletions from the space's recycle bin; "
        "document blocks re-read only when the node changed. A space's recycle-bin id and a knowledge "
        "base's storage space are remembered from the last run (asked for again when refused).",
        uncertain=(
            "Whether a knowledge base's root node converts to a storage id (a node under it is used otherwise).",
            "Recycle-bin endpoints and fields (from the official SDK, not the doc centre).",
            "Whether a space's recycle-bin id and a knowledge base's storage space stay the same over time "
            "(not documented; a refused remembered value is looked up again).",
            "Document export jobs (SDK only) are not used.",
        ),
    ),
    FamilyCoverage(
        family="attendance",
        title="Attendance (考勤)",
        kinds=("attendance",),
        captured=(
            "Daily check results of every user in scope for about the last six months (7-day × 50-user windows), "
            "including scheduled check points without a punch.",
        ),
        not_available=("Results older than about six months.",),
        incremental="From the last captured day minus a few days (results settle after corrections).",
        uncertain=("The read scope for `/attendance/list` is not named by the reference.",),
        not_yet=(
            "Raw punches with location and device (`/attendance/listRecord`).",
            "Shifts, groups, schedules and leave balances (`topapi/attendance/*`).",
        ),
    ),
    FamilyCoverage(
        family="calendar",
        title="Calendars (日程)",
        kinds=("calendar_event",),
        captured=("Each user's primary calendar: events a year back and a year ahead (configurable).",),
        not_available=(
            "Future occurrences of recurring series (only the series and past instances are returned).",
        ),
        incremental="Per-user `syncToken`; cancellations arrive as deletions.",
        not_yet=(
            "Calendars other than each user's primary one (`GET /v1.0/calendar/users/{userId}/calendars`).",
        ),
    ),
    FamilyCoverage(
        family="todo",
        title="Enterprise todos (待办)",
        kinds=("todo",),
        captured=("Enterprise todos (created through the API) of every user in scope, open and done.",),
        not_available=(
            "Personal todos.",
            "Todos completed more than 180 days ago (unless already backed up).",
        ),
        incremental="A complete listing each run (the API has no change feed).",
    ),
    FamilyCoverage(
        family="reports",
        title="Work reports (日志)",
        kinds=("report",),
        captured=(
            "Every report of the org in 180-day windows (a year back by default), with its content fields.",
        ),
        not_available=("Content values beyond 1000 characters (DingTalk truncates them).",),
        incremental="Reports modified since the cursor.",
        not_yet=(
            "Report comments and receivers (`topapi/report/comment/list`, `topapi/report/receiver/list`).",
        ),
    ),
    FamilyCoverage(
        family="groups",
        title="Group chats: metadata and membership",
        kinds=("group",),
        captured=(
            "Department groups and groups the app created or was told about: name, owner, members, status.",
            "Group files (through the files family).",
        ),
        not_available=(
            "**The messages of ordinary group chats and 1:1 chats: no public API returns chat history.**",
            "A list of all groups of a standard org (only department groups and known groups are reachable).",
        ),
        incremental="All reachable groups are re-read each run.",
        uncertain=("The response field of chatid → openConversationId comes from the official SDK's model.",),
        not_yet=("Scene-group member listings (`/v1.0/im/sceneGroups/members/batchQuery`).",),
    ),
    FamilyCoverage(
        family="robot",
        title="Messages to the app's robot",
        kinds=("robot_message",),
        captured=(
            "From installation on: every 1:1 message sent to the robot and group messages that @-mention it "
            "(pushed over Stream), with their pictures, files, audio and video.",
        ),
        not_available=(
            "Any message sent before the robot was installed, or while the listener was not connected "
            "(robot messages are never re-pushed).",
            "Audio, files and video sent in groups (robots do not receive them).",
        ),
        incremental="Event-driven only; nothing to back-fill.",
    ),
    FamilyCoverage(
        family="exclusive",
        title="Exclusive DingTalk (专属钉钉) only",
        kinds=("org_group", "file_audit_log"),
        captured=(
            "The org's internal group inventory.",
            "File and document operation audit logs (about six months back).",
        ),
        not_available=(
            "Everything here on standard orgs (detected by trying once; reported as not available).",
            "External-audit-group message records (SDK-only API, not used).",
        ),
        incremental="Audit log entries since the cursor.",
        uncertain=("How the audit-log listing signals its last page.",),
    ),
)

# What no public DingTalk API gives, whatever the scopes (dingtalk-api.md §3.1, "Cannot capture").
NOT_CAPTURED: tuple[str, ...] = (
    "History or ongoing content of ordinary group chats and 1:1 chats (no message-history API and no "
    "message event; robots see only messages addressed to them).",
    "A list of all groups of a standard org.",
    "Approval instances older than about one year on non-premium orgs.",
    "Personal todos and DING message history.",
    "Admin-console audit logs of standard orgs.",
    "Volume beyond the standard edition's quota of 5,000 non-exempt calls a month and 20 calls/s per API: "
    "a family that hits the quota stops (reported) and resumes next month; contacts keep working.",
)


def coverage_for(family: str) -> FamilyCoverage:
    for entry in COVERAGE:
        if entry.family == family:
            return entry
    raise KeyError(family)


def render_markdown() -> str:
    lines = [
        "# What dingvault captures from DingTalk",
        "",
        "<!-- Generated from src/dingvault/source/coverage.py: edit that file, then run",
        "     .venv/bin/python -m dingvault.source.coverage > docs/coverage.md -->",
        "",
        "dingvault reads everything the DingTalk Open Platform exposes to an admin-authorised internal app.",
        "Some things no public API gives; they are listed first, then each data family: what is captured,",
        "what is not, what the API offers that dingvault does not capture yet, how incremental runs work,",
        "the permission scopes to grant, and what the API reference leaves uncertain.",
        "",
        "## What no API gives",
        "",
        *[f"- {text}" for text in NOT_CAPTURED],
        "",
        "## Summary",
        "",
        "| family | item kinds | scopes to grant |",
        "| --- | --- | --- |",
        *[
            f"| {c.family} | {', '.join(f'`{k}`' for k in c.kinds)} | {', '.join(f'`{s}`' for s in c.scopes) or '(not named)'} |"
            for c in COVERAGE
        ],
    ]
    for c in COVERAGE:
        lines += ["", f"## {c.title} (`{c.family}`)", "", "Captured:", ""]
        lines += [f"- {t}" for t in c.captured]
        lines += ["", "Not available:", ""]
        lines += [f"- {t}" for t in c.not_available]
        lines += ["", f"Incremental runs: {c.incremental}"]
        if c.not_yet:
            lines += ["", "Reachable but not captured yet:", ""]
            lines += [f"- {t}" for t in c.not_yet]
        if c.uncertain:
            lines += ["", "Uncertain in the API reference:", ""]
            lines += [f"- {t}" for t in c.uncertain]
        lines += ["", "API endpoints: " + ", ".join(f"`{a}`" for a in c.apis)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
