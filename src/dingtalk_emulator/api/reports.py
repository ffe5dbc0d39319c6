"""Work reports / 日志 (§6.4): `POST /topapi/report/list` with 180-day windows and a legacy cursor.

Report i's create_time grows strictly with i, so a window is an index range (binary search); its
creator and template are cheap hashes, so filtering by `userid`/`template_name` does not generate
whole reports. `report.create` mutations append reports after the generated ones.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from starlette.routing import Route

from dingtalk_emulator.company import sensitive
from dingtalk_emulator.company.seeding import DAY_MS, h64, hexid, rng
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import Call, LegacyError, legacy_endpoint, legacy_int
from dingtalk_emulator.state import EmulatorState, MutationError

SCOPE = "qyapi_report_query"
MAX_SIZE = 20
MAX_SPAN_DAYS = 180
VALUE_LIMIT = 1000  # content values are truncated at 1000 chars (§6.4)
TEMPLATES = ("日報", "週報", "月報")
KEYS = {
    "日報": ("今日完成工作", "未完成工作", "需協調工作"),
    "週報": ("本週完成工作", "本週工作總結", "下週工作計劃", "需協調與幫助"),
    "月報": ("本月工作內容", "本月工作總結", "下月工作計劃"),
}
LINES = (
    "完成橫琴項目接口開發並提交測試。",
    "跟進客戶合同（合約）續簽事宜，等待對方回覆。",
    "Reunião com o cliente sobre o pagamento da segunda prestação.",
    "整理本月報銷單據及付款申請。",
    "Fixed login bug for Macau Pass integration.",
    "協助法務部審閱 contrato de arrendamento。",
    "準備下週部門週會材料。",
    "与珠海合作方确认付款时间表。",
    "客戶服務滿意度調查已完成 92%。",
)


class ReportBook:
    def __init__(self, seed: int, count: int, history_days: int, people: Any) -> None:
        self.seed = seed
        self.people = people
        self.anchor_ms = people.anchor_ms
        self.n = count
        self.span = history_days * DAY_MS
        self.base = self.anchor_ms - self.span
        self.step = self.span / max(1, count)
        self.slot = max(1, int(self.step))
        self.staff = list(people.users)
        self.extra: list[dict[str, Any]] = []  # reports created by mutations, in time order
        self._body_cached = functools.lru_cache(maxsize=4096)(self._body)

    def created(self, i: int) -> int:
        if i >= self.n:
            return self.extra[i - self.n]["create_time"]
        return self.base + int(i * self.step) + h64(self.seed, "report-t", i) % self.slot

    def first_at_or_after(self, ms: int) -> int:
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.created(mid) < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def creator(self, i: int) -> Any:
        return self.staff[h64(self.seed, "report-who", i) % len(self.staff)]

    def template(self, i: int) -> str:
        p = h64(self.seed, "report-tpl", i) % 10
        return TEMPLATES[0] if p < 6 else TEMPLATES[1] if p < 9 else TEMPLATES[2]

    def modified(self, i: int) -> int:
        c = self.created(i)
        return (
            c + (h64(self.seed, "report-edit", i) % 8 + 1) * 3_600_000
            if h64(self.seed, "report-edited", i) % 10 == 0
            else c
        )

    def report_id(self, i: int) -> str:
        return f"{hexid(self.seed, 'report-id', i, length=20)}{i:012x}"

    def get(self, i: int) -> dict[str, Any]:
        if i >= self.n:
            return self.extra[i - self.n]
        who = self.creator(i)
        dept = self.people.dept(who.dept_id_list[0])  # looked up per call: departments get renamed
        return {**self._body_cached(i), "dept_name": dept.name if dept else ""}

    def _body(self, i: int) -> dict[str, Any]:
        r = rng(self.seed, "report", i)
        who = self.creator(i)
        tpl = self.template(i)
        contents = []
        for n, key in enumerate(KEYS[tpl]):
            value = "\n".join(r.choice(LINES) for _ in range(r.randrange(1, 6 if tpl == "日報" else 40)))
            if n == 0 and (pii := self._pii(i)):  # planted first, so the 1000-char cut keeps it
                value = f"客戶聯絡電話 {pii[0]}，證件號碼 {pii[1]}\n" + value
            contents.append({"key": key, "value": value[:VALUE_LIMIT], "sort": str(n), "type": "1"})
        return {
            "report_id": self.report_id(i),
            "template_name": tpl,
            "creator_id": who.userid,
            "creator_name": who.name,
            "create_time": self.created(i),
            "modified_time": self.modified(i),
            "remark": r.choice(("", "", "請審閱", "Obrigado")),
            "contents": contents,
        }

    def _pii(self, i: int) -> tuple[str, str] | None:
        """Every tenth report names a client's phone and mainland ID number (truth kind "sensitive")."""
        if i % 10 != 3 or i >= self.n:
            return None
        r = rng(self.seed, "report-pii", i)
        return sensitive.phone(r, "853"), sensitive.mainland_id(r)

    def planted(self, i: int) -> list[dict[str, str]]:
        pii = self._pii(i)
        if pii is None:
            return []
        phone, idno = pii
        rid = self.report_id(i)
        return [
            {
                "id": f"report/{rid}/phone",
                "kind": "report",
                "itemId": rid,
                "type": "phone",
                "value": phone,
                "where": "contents[0].value",
            },
            {
                "id": f"report/{rid}/mainland_id",
                "kind": "report",
                "itemId": rid,
                "type": "mainland_id",
                "value": idno,
                "where": "contents[0].value",
            },
        ]


def _book(call: Call | EmulatorState) -> ReportBook:
    state = call.state if isinstance(call, Call) else call
    return state.org.reports


@legacy_endpoint(SCOPE)
async def report_list(call: Call) -> dict[str, Any]:
    book, p = _book(call), call.params
    start, end = legacy_int(p, "start_time"), legacy_int(p, "end_time")
    cursor, size = legacy_int(p, "cursor", 0), legacy_int(p, "size", MAX_SIZE)
    if end < start or end - start > MAX_SPAN_DAYS * DAY_MS:
        raise LegacyError(
            400002, f"start_time 与 end_time 间隔不能超过 {MAX_SPAN_DAYS} 天"
        )  # (uncertain) errcode
    if not 1 <= size <= MAX_SIZE or cursor < 0:
        raise LegacyError(400002, f"size 须在 1..{MAX_SIZE}")
    userid = str(p.get("userid") or "") or None
    template = str(p.get("template_name") or "") or None
    mod_from = legacy_int(p, "modified_start_time", -1)
    mod_to = legacy_int(p, "modified_end_time", -1)
    lo, hi = book.first_at_or_after(start), book.first_at_or_after(end + 1)
    extra = [book.n + k for k, rep in enumerate(book.extra) if start <= rep["create_time"] <= end]
    total = hi - lo + len(extra)
    out: list[dict[str, Any]] = []
    pos = cursor
    while pos < total and len(out) < size:
        i = lo + pos if pos < hi - lo else extra[pos - (hi - lo)]
        pos += 1
        if i < book.n:
            if userid and book.creator(i).userid != userid:
                continue
            if template and book.template(i) != template:
                continue
            if mod_from >= 0 and book.modified(i) < mod_from or mod_to >= 0 and book.modified(i) > mod_to:
                continue
            out.append(book.get(i))
        else:
            rep = book.get(i)
            if (userid and rep["creator_id"] != userid) or (template and rep["template_name"] != template):
                continue
            out.append(rep)
    return {"result": {"data_list": out, "has_more": pos < total, "next_cursor": pos, "size": len(out)}}


def truth_reports(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = _book(state)
    for i in range(book.n):
        yield {
            "id": book.report_id(i),
            "template_name": book.template(i),
            "modified_time": book.modified(i),
            "creator_id": book.creator(i).userid,
        }
    for rep in list(book.extra):  # a copy: truth walks run in a worker thread
        yield {
            "id": rep["report_id"],
            "template_name": rep["template_name"],
            "modified_time": rep["modified_time"],
            "creator_id": rep["creator_id"],
        }


def truth_sensitive(state: EmulatorState) -> Iterator[dict[str, Any]]:
    book = _book(state)
    for i in range(3, min(book.n, 2000), 10):
        yield from book.planted(i)


def m_create(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    book = _book(state)
    people = state.org.people
    if params.get("userid"):
        who = people.user(str(params["userid"]))
        if who is None:
            raise MutationError(f"no active user {params['userid']!r}")
    else:
        who = people.users[int(params.get("rand", 0)) % len(people.users)]
    tpl = str(params.get("template_name") or TEMPLATES[int(params.get("rand", 0)) % 3])
    if tpl not in TEMPLATES:
        raise MutationError(f"template_name must be one of {', '.join(TEMPLATES)}")
    i = book.n + len(book.extra)
    now = state.now_ms()
    dept = people.dept(who.dept_id_list[0])
    text = str(params.get("text") or LINES[int(params.get("rand", 0)) % len(LINES)])
    rep = {
        "report_id": book.report_id(i),
        "template_name": tpl,
        "creator_id": who.userid,
        "creator_name": who.name,
        "dept_name": dept.name if dept else "",
        "create_time": now,
        "modified_time": now,
        "remark": "",
        "contents": [{"key": KEYS[tpl][0], "value": text[:VALUE_LIMIT], "sort": "0", "type": "1"}],
    }
    book.extra.append(rep)
    return {"report_id": rep["report_id"]}


def routes(state: EmulatorState) -> list[Route]:
    return [Route("/topapi/report/list", report_list, methods=["POST"])]


def register(state: EmulatorState) -> None:
    prof = profile_for(state.config)
    state.org.reports = ReportBook(
        state.config.seed, prof.reports, prof.report_history_days, state.org.people
    )
    state.truth["report"] = truth_reports
    state.counts["report"] = lambda s: s.org.reports.n + len(s.org.reports.extra)
    state.org.sensitive_sources.append(truth_sensitive)
    state.mutations["report.create"] = m_create
