"""Calendars (§6.2): a primary calendar per user (unionId) with events, `nextToken` paging and
`syncToken` incremental sync.

Generated events are per (user, j) with start times growing in j. Changes (create/update/delete)
go to an overlay stamped with a global change sequence; a `syncToken` is that sequence, so a
sync returns only events changed after it (deleted ones with status `cancelled`).
Simplification: an event lives in its organizer's calendar only (attendees are listed but their
calendars do not repeat it). A third of the staff run a weekly series (past instances + master).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.company.seeding import DAY_MS, MACAU_TZ, h64, iso_seconds, local_iso, parse_iso, rng
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import ApiError, Call, api_bool, api_endpoint, api_int
from dingtalk_emulator.state import EmulatorState, MutationError

SCOPE = "Calendar.Event.Read"
MAX_RESULTS = 100
PAST_DAYS = 330
FUTURE_DAYS = 30
TZ = "Asia/Macau"
SUMMARIES = (
    "部門週會",
    "客戶會議：澳門旅遊局項目",
    "Reunião com fornecedor",
    "1:1 with manager",
    "季度預算檢討",
    "橫琴項目現場考察",
    "合同談判 — 珠海合作方",
    "Sprint planning",
    "年度體檢",
    "新同事入職培訓",
)
LOCATIONS = ("8 樓大會議室", "氹仔辦公室 3 號房", "Zoom", "客戶辦公室", "珠海橫琴")


@dataclass
class Change:
    seq: int
    event: dict[str, Any] | None  # None = deleted
    base: dict[str, Any]  # the event as it was (kept for deletion records)


class CalendarBook:
    def __init__(self, seed: int, per_user: int, people: Any) -> None:
        self.seed = seed
        self.people = people
        self.anchor_ms = people.anchor_ms
        self.per_user = per_user
        self.staff = list(people.users)
        self.index_of_union = {u.unionid: n for n, u in enumerate(self.staff)}
        self.span = (PAST_DAYS + FUTURE_DAYS) * DAY_MS
        self.seq = 0
        self.changes: dict[str, dict[str, Change]] = {}  # unionId -> eventId -> latest change
        self.counter = 0
        # Rendering an event is the costly part of a page: keep recent ones (bounded memory).
        self._generated_cached = functools.lru_cache(maxsize=10_000)(self._generated)
        self._starts = functools.lru_cache(maxsize=4096)(self._user_starts)
        # A third of the staff run a weekly series (部門週會, Mondays 10:00). As documented, a listing
        # returns the series' past instances, not future ones; the master (with `recurrence`) is
        # returned too (uncertain: the reference does not say). Series events use negative j:
        # -1 = the master, -(k+2) = instance k.
        first = datetime.fromtimestamp((self.anchor_ms - PAST_DAYS * DAY_MS) / 1000, MACAU_TZ)
        first += timedelta(days=(7 - first.weekday()) % 7, hours=10)
        self.series_first = int(first.timestamp() * 1000)
        self.series_past = max(0, (self.anchor_ms - self.series_first) // (7 * DAY_MS) + 1)
        self.series_users = {u for u in range(len(self.staff)) if h64(seed, "cal-series", u) % 3 == 0}

    def generated_count(self) -> int:
        return self.per_user * len(self.staff) + len(self.series_users) * (1 + self.series_past)

    def valid_j(self, u: int, j: int) -> bool:
        if j >= 0:
            return j < self.per_user
        return u in self.series_users and -j - 2 < self.series_past

    def _user_starts(self, u: int) -> tuple[tuple[int, str], ...]:
        js = list(range(self.per_user))
        if u in self.series_users:
            js += [-1, *(-(k + 2) for k in range(self.series_past))]
        return tuple((self.start_of(u, j), self.event_id(u, j)) for j in js)

    def generated(self, u: int, j: int) -> dict[str, Any]:
        """Event j of user u (shared from a cache: copy before changing it)."""
        return self._generated_cached(u, j)

    def event_id(self, u: int, j: int) -> str:
        raw = f"{u}:{j}:{h64(self.seed, 'cal-id', u, j) % 16**8:08x}".encode()
        return base64.b64encode(raw).decode()

    def start_of(self, u: int, j: int) -> int:
        if j < 0:
            return self.series_first + (0 if j == -1 else (-j - 2) * 7 * DAY_MS)
        step = self.span // max(1, self.per_user)
        base = self.anchor_ms - PAST_DAYS * DAY_MS + j * step
        slot = h64(self.seed, "cal-t", u, j) % max(1, step // 1_800_000 - 8)
        return base - base % 1_800_000 + slot * 1_800_000  # on the half hour

    def _series_event(self, u: int, j: int) -> dict[str, Any]:
        owner = self.staff[u]
        start = self.start_of(u, j)
        created = self.series_first - 7 * DAY_MS
        who = {"id": owner.unionid, "displayName": owner.name, "responseStatus": "accepted", "self": True}
        ev: dict[str, Any] = {
            "id": self.event_id(u, j),
            "summary": "部門週會（每週）",
            "description": "每週一 10:00 部門例會 / Reunião semanal do departamento",
            "start": {"dateTime": _local_iso(start), "timeZone": TZ},
            "end": {"dateTime": _local_iso(start + 3_600_000), "timeZone": TZ},
            "isAllDay": False,
            "attendees": [{**who, "isOptional": False}],
            "organizer": who,
            "location": {"displayName": LOCATIONS[0]},
            "reminders": [{"method": "dingtalk", "minutes": 15}],
            "createTime": iso_seconds(created),
            "updateTime": iso_seconds(created),
            "status": "confirmed",
        }
        if j == -1:
            ev["recurrence"] = {
                "pattern": {
                    "type": "weekly",
                    "daysOfWeek": "monday",
                    "interval": 1,
                    "firstDayOfWeek": "sunday",
                },
                "range": {"type": "noEnd"},
            }
        else:
            ev["seriesMasterId"] = self.event_id(u, -1)
            ev["originStart"] = {"dateTime": _local_iso(start), "timeZone": TZ}
        return ev

    def _generated(self, u: int, j: int) -> dict[str, Any]:
        if j < 0:
            return self._series_event(u, j)
        r = rng(self.seed, "cal", u, j)
        owner = self.staff[u]
        start = self.start_of(u, j)
        end = start + r.choice((30, 60, 60, 90, 120)) * 60_000
        created = start - r.randrange(1, 20) * DAY_MS
        guests = [self.staff[r.randrange(len(self.staff))] for _ in range(r.randrange(0, 4))]
        attendees = [
            {
                "id": owner.unionid,
                "displayName": owner.name,
                "responseStatus": "accepted",
                "self": True,
                "isOptional": False,
            }
        ]
        attendees += [
            {
                "id": g.unionid,
                "displayName": g.name,
                "responseStatus": r.choice(("accepted", "needsAction", "tentative")),
                "self": False,
                "isOptional": False,
            }
            for g in guests
            if g.unionid != owner.unionid
        ]
        return {
            "id": self.event_id(u, j),
            "summary": r.choice(SUMMARIES),
            "description": r.choice(
                ("", "請準時出席。", "Agenda: orçamento, prazos, contrato.", "會議記錄見共享文件夾")
            ),
            "start": {"dateTime": _local_iso(start), "timeZone": TZ},
            "end": {"dateTime": _local_iso(end), "timeZone": TZ},
            "isAllDay": False,
            "attendees": attendees,
            "organizer": {
                "id": owner.unionid,
                "displayName": owner.name,
                "responseStatus": "accepted",
                "self": True,
            },
            "location": {"displayName": r.choice(LOCATIONS)},
            "reminders": [{"method": "dingtalk", "minutes": 15}],
            "createTime": iso_seconds(created),
            "updateTime": iso_seconds(created),
            "status": "confirmed",
        }

    def events_of(self, unionid: str) -> list[tuple[int, str, dict[str, Any] | None]]:
        """(start ms, eventId, event) for a user's calendar, sorted by start; event is None for a
        generated, unchanged event (rendered lazily), and has status "cancelled" when deleted."""
        out: list[tuple[int, str, dict[str, Any] | None]] = []
        changed = self.changes.get(unionid, {})
        u = self.index_of_union.get(unionid)
        if u is not None:
            out += [
                (start, eid, None) for start, eid in self._starts(u) if eid not in changed
            ]  # rendered lazily
        for eid, ch in list(changed.items()):  # a copy: truth walks run in a worker thread
            ev = ch.event or ch.base
            out.append(
                (
                    parse_iso(ev["start"]["dateTime"]),
                    eid,
                    ch.event if ch.event else {**ch.base, "status": "cancelled"},
                )
            )
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def render(self, unionid: str, eid: str, ev: dict[str, Any] | None) -> dict[str, Any]:
        if ev is not None:
            return ev
        u_s, j_s, _ = base64.b64decode(eid).decode().split(":")
        return self.generated(int(u_s), int(j_s))

    def current(self, unionid: str, eid: str) -> dict[str, Any] | None:
        ch = self.changes.get(unionid, {}).get(eid)
        if ch is not None:
            return ch.event
        u = self.index_of_union.get(unionid)
        if u is None:
            return None
        try:
            u_s, j_s, _ = base64.b64decode(eid).decode().split(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if int(u_s) != u or not self.valid_j(u, int(j_s)) or self.event_id(u, int(j_s)) != eid:
            return None
        return self.generated(u, int(j_s))

    def record(self, unionid: str, eid: str, event: dict[str, Any] | None, base: dict[str, Any]) -> int:
        self.seq += 1
        self.changes.setdefault(unionid, {})[eid] = Change(self.seq, event, base)
        return self.seq


def _local_iso(ms: int) -> str:
    return local_iso(ms)


def _book(call: Call | EmulatorState) -> CalendarBook:
    state = call.state if isinstance(call, Call) else call
    return state.org.calendar


def _encode_sync(seq: int) -> str:
    return "SYNC" + base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_sync(token: str) -> int:
    try:
        raw = token.removeprefix("SYNC")
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        return int(text.removeprefix("seq:"))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalidParameter", "syncToken is invalid") from None  # (uncertain) code


def _user_or_404(call: Call) -> str:
    unionid = call.path_params["userId"]
    if call.state.org.people.by_unionid(unionid) is None and unionid not in _book(call).index_of_union:
        raise ApiError(400, "invalidParameter", "userId (unionId) 不存在")  # (uncertain) code
    return unionid


@api_endpoint(SCOPE)
async def list_calendars(call: Call) -> dict[str, Any]:
    unionid = _user_or_404(call)
    user = call.state.org.people.by_unionid(unionid)
    name = user.name if user else unionid
    return {
        "response": {
            "calendars": [
                {
                    "id": "primary",
                    "summary": name,
                    "description": "",
                    "type": "primary",
                    "timeZone": TZ,
                    "privilege": "owner",
                    "eTag": f"{_book(call).seq}",
                }
            ]
        }
    }


@api_endpoint(SCOPE)
async def list_events(call: Call) -> dict[str, Any]:
    book, q = _book(call), call.params
    unionid = _user_or_404(call)
    if call.path_params["calendarId"] != "primary":
        raise ApiError(400, "invalidParameter", "calendarId 只支持 primary")  # (uncertain)
    max_results = api_int(q, "maxResults", MAX_RESULTS)
    if not 1 <= max_results <= MAX_RESULTS:
        raise ApiError(400, "invalidParameter", f"maxResults 须在 1..{MAX_RESULTS}")
    offset = api_int(q, "nextToken", 0) if q.get("nextToken") else 0
    show_deleted = api_bool(q, "showDeleted")
    sync = q.get("syncToken")
    entries = book.events_of(unionid)
    if sync:
        since = _decode_sync(sync)
        changed = book.changes.get(unionid, {})
        entries = [e for e in entries if e[1] in changed and changed[e[1]].seq > since]
    else:
        try:
            tmin = parse_iso(q["timeMin"]) if q.get("timeMin") else None
            tmax = parse_iso(q["timeMax"]) if q.get("timeMax") else None
        except ValueError:
            raise ApiError(400, "invalidParameter", "timeMin/timeMax must be ISO-8601") from None
        if tmin is not None and tmax is not None and (tmax < tmin or tmax - tmin > 366 * DAY_MS):
            raise ApiError(400, "invalidParameter", "timeMax - timeMin 不能超过一年")  # (uncertain) code
        entries = [
            e
            for e in entries
            if (tmin is None or e[0] >= tmin)
            and (tmax is None or e[0] < tmax)
            and (show_deleted or e[2] is None or e[2].get("status") != "cancelled")
        ]
    master = q.get("seriesMasterId")
    if master:  # only the instances of one series
        entries = [e for e in entries if book.render(unionid, e[1], e[2]).get("seriesMasterId") == master]
    page = entries[offset : offset + max_results]
    body: dict[str, Any] = {"events": [book.render(unionid, eid, ev) for _, eid, ev in page]}
    if offset + max_results < len(entries):
        body["nextToken"] = str(offset + max_results)
    else:
        body["syncToken"] = _encode_sync(book.seq)  # on the last page, like other sync APIs
    return body


# -- truth and mutations --------------------------------------------------------------------------


def truth_events(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = _book(state)
    seen: set[str] = set()
    for user in book.staff:
        for _, eid, ev in book.events_of(user.unionid):
            e = book.render(user.unionid, eid, ev)
            item = {
                "id": f"{user.unionid}/{eid}",
                "summary": e["summary"],
                "updateTime": e["updateTime"],
                "status": e["status"],
            }
            if e["status"] == "cancelled":
                item["deleted"] = True
            yield item
        seen.add(user.unionid)
    for unionid in list(book.changes):
        if unionid not in seen:
            for _, eid, ev in book.events_of(unionid):
                e = book.render(unionid, eid, ev)
                item = {
                    "id": f"{unionid}/{eid}",
                    "summary": e["summary"],
                    "updateTime": e["updateTime"],
                    "status": e["status"],
                }
                if e["status"] == "cancelled":
                    item["deleted"] = True
                yield item


def _publish(state: EmulatorState, unionid: str, eid: str, change: str, update_ms: int) -> None:
    state.hub.publish_event(
        "calendar_event_change",
        {
            "calendarEventId": eid,
            "calendarEventUpdateTime": update_ms,
            "calendarId": "primary",
            "unionIdList": [unionid],
            "changeType": change,  # (uncertain) values: create | update | delete
            "operator": {"type": "user"},
            "legacyCalendarEventId": "",
        },
    )


def _pick_user(state: EmulatorState, params: dict[str, Any]) -> str:
    people = state.org.people
    if params.get("unionId"):
        if people.by_unionid(str(params["unionId"])) is None:
            raise MutationError(f"no active user with unionId {params['unionId']!r}")
        return str(params["unionId"])
    return people.users[int(params.get("rand", 0)) % len(people.users)].unionid


def _pick_event(state: EmulatorState, params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    book = _book(state)
    unionid = _pick_user(state, params)
    if params.get("eventId"):
        ev = book.current(unionid, str(params["eventId"]))
        if ev is None:
            raise MutationError(f"no event {params['eventId']!r} in {unionid}'s calendar")
        return unionid, str(params["eventId"]), ev
    live = [
        (eid, ev) for _, eid, ev in book.events_of(unionid) if ev is None or ev.get("status") != "cancelled"
    ]
    if not live:
        raise MutationError(f"{unionid} has no event")
    eid, ev = live[(int(params.get("rand", 0)) // 13) % len(live)]
    return unionid, eid, book.render(unionid, eid, ev)


def m_create(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    unionid = _pick_user(state, params)
    user = state.org.people.by_unionid(unionid)
    now = state.now_ms()
    book.counter += 1
    eid = base64.b64encode(
        f"new:{book.counter}:{h64(book.seed, 'cal-new', book.counter) % 16**8:08x}".encode()
    ).decode()
    start = now + (int(params.get("rand", 0)) % 14 + 1) * DAY_MS
    start -= start % 1_800_000
    ev = {
        "id": eid,
        "summary": str(params.get("summary") or SUMMARIES[int(params.get("rand", 0)) % len(SUMMARIES)]),
        "description": str(params.get("description") or ""),
        "start": {"dateTime": _local_iso(start), "timeZone": TZ},
        "end": {"dateTime": _local_iso(start + 3_600_000), "timeZone": TZ},
        "isAllDay": False,
        "attendees": [
            {
                "id": unionid,
                "displayName": user.name,
                "responseStatus": "accepted",
                "self": True,
                "isOptional": False,
            }
        ],
        "organizer": {"id": unionid, "displayName": user.name, "responseStatus": "accepted", "self": True},
        "location": {"displayName": LOCATIONS[0]},
        "reminders": [{"method": "dingtalk", "minutes": 15}],
        "createTime": iso_seconds(now),
        "updateTime": iso_seconds(now),
        "status": "confirmed",
    }
    book.record(unionid, eid, ev, ev)
    _publish(state, unionid, eid, "create", now)
    return {"unionId": unionid, "eventId": eid}


def m_update(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    unionid, eid, ev = _pick_event(state, params)
    now = state.now_ms()
    new = {
        **ev,
        "summary": str(params.get("summary") or ev["summary"].split(" (")[0] + " (改期)"),
        "updateTime": iso_seconds(now),
    }
    book.record(unionid, eid, new, new)
    _publish(state, unionid, eid, "update", now)
    return {"unionId": unionid, "eventId": eid, "summary": new["summary"]}


def m_delete(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    unionid, eid, ev = _pick_event(state, params)
    now = state.now_ms()
    book.record(unionid, eid, None, {**ev, "updateTime": iso_seconds(now)})
    _publish(state, unionid, eid, "delete", now)
    return {"unionId": unionid, "eventId": eid}


def routes(state: EmulatorState) -> list[Route]:
    return [
        Route("/v1.0/calendar/users/{userId}/calendars", list_calendars, methods=["GET"]),
        Route("/v1.0/calendar/users/{userId}/calendars/{calendarId}/events", list_events, methods=["GET"]),
    ]


def register(state: EmulatorState) -> None:
    book = CalendarBook(state.config.seed, profile_for(state.config).events_per_user, state.org.people)
    state.org.calendar = book
    state.truth["calendar_event"] = truth_events
    state.counts["calendar_event"] = lambda s: book.generated_count() + book.counter
    state.mutations.update(
        {"calendar.create": m_create, "calendar.update": m_update, "calendar.delete": m_delete}
    )
