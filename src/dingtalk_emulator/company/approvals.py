"""Approval templates and instances (§4), generated lazily: instance i is a pure function of (seed, i).

Instance i's creation time grows strictly with i (`base + floor(i*step) + jitter < next slot`), so a
time window maps to an index range by binary search, and template t owns the indices i ≡ t (mod T).
Mutations (start/finish/terminate) are an overlay: `self.changed[i]` replaces instance i, and new
instances get indices ≥ N.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dingtalk_emulator.company import sensitive
from dingtalk_emulator.company.people import People, User
from dingtalk_emulator.company.seeding import DAY_MS, h64, hexid, rng
from dingtalk_emulator.config import Profile

# (kind, flowTitle, iconName) — the real kinds a Macau SME files.
TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("leave", "請假", "leave"),
    ("expense", "報銷", "expense"),
    ("contract", "合同審批", "contract"),
    ("payment", "付款申請", "payment"),
    ("purchase", "採購", "purchase"),
    ("trip", "出差申請", "trip"),
)
RUNNING_RECENT_DAYS = 12
_CORPUS_KIND = {"expense": "invoice", "contract": "contract", "payment": "invoice", "purchase": "price_list"}

try:  # the files family's document generators, when present; else a plain generator below
    from dingtalk_emulator.files.blob import read_all as _read_all
    from dingtalk_emulator.files.render import ContentSpec as _ContentSpec
    from dingtalk_emulator.files.render import render as _render_file
except ImportError:  # pragma: no cover - only while the files family is absent
    _render_file = None  # instances younger than this may still be running


@dataclass
class Attachment:
    """An approval attachment; its bytes are rendered on demand (never kept), `size` is exact."""

    file_id: str
    file_name: str
    file_type: str
    space_id: int
    size: int
    render: Callable[[], bytes]

    @property
    def content(self) -> bytes:
        return self.render()

    def truth(self) -> dict[str, Any]:
        return {
            "fileId": self.file_id,
            "fileName": self.file_name,
            "size": self.size,
            "sha256": hashlib.sha256(self.content).hexdigest(),
        }


@dataclass
class Instance:
    index: int
    id: str
    template: int
    create_ms: int
    originator: User
    title: str
    status: str  # RUNNING | COMPLETED | TERMINATED
    result: str  # agree | refuse | "" (running/terminated)
    finish_ms: int | None
    approvers: list[User]
    cc: list[User]
    business_id: str
    form: list[dict[str, Any]]  # {id, name, value, componentType, extValue?}
    attachments: list[Attachment]
    records: list[dict[str, Any]]  # operation records: {user, date_ms, type, result, remark}
    version: int = 1
    sensitive: list[dict[str, str]] = field(default_factory=list)


def _money(r: Any, lo: int, hi: int) -> str:
    return f"{r.randrange(lo, hi) / 100:.2f}"


def _pdf(text: str) -> bytes:
    """A small, valid single-page PDF whose content stream carries the text (Latin-1 safe part)."""
    safe = text.encode("ascii", "replace").decode().replace("(", "[").replace(")", "]")
    stream = f"BT /F1 10 Tf 40 800 Td ({safe[:1500]}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


class ApprovalBook:
    def __init__(self, seed: int, profile: Profile, people: People) -> None:
        self.seed = seed
        self.people = people
        self.anchor_ms = people.anchor_ms
        self.n = profile.approvals
        self.span_ms = profile.approval_history_days * DAY_MS
        self.base_ms = self.anchor_ms - self.span_ms
        self.step = self.span_ms / max(1, self.n)
        self.slot = max(1, int(self.step))
        # People frozen at start: generated instances keep naming the same people after mutations.
        self.staff: list[User] = list(people.users)
        self.leaders = [u for u in self.staff if u.leader]
        self._leader_by_top = {people.top_name(u.dept_id_list[0]): u for u in reversed(self.leaders)}
        self.templates = [self._template(t) for t in range(len(TEMPLATES))]
        self.space_id = 3_000_000_000 + h64(seed, "approval-space") % 999_999_999
        self.changed: dict[int, Instance] = {}  # overlay: index -> instance (changed or new)
        self.new_indices: list[int] = []  # indices >= n, in creation order
        self.resigned_at_start = list(people.resigned)
        # Pages of details are re-read by every backup run: keep recent ones (bounded memory).
        self._generate_cached = functools.lru_cache(maxsize=4096)(self._generate)
        # Rendering + hashing attachments dominates a truth walk; digests are tiny, keep many.
        self._digests: dict[str, tuple[int, str]] = {}
        self.url_key = os.urandom(32)  # signs the 15-minute attachment download URLs

    # -- templates -----------------------------------------------------------------------------
    def _template(self, t: int) -> dict[str, Any]:
        h = hexid(self.seed, "process-code", t, length=32).upper()
        kind, title, icon = TEMPLATES[t]
        return {
            "processCode": f"PROC-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:28]}",
            "flowTitle": title,
            "iconName": icon,
            "iconUrl": f"https://static.dingtalk.example/approval/{icon}.png",
            "newProcess": True,
            "attendanceType": 1 if kind == "leave" else 0,
            "gmtModified": self.anchor_ms - (400 + t * 13) * DAY_MS,
            "kind": kind,
        }

    def template_index(self, process_code: str) -> int | None:
        for t, tpl in enumerate(self.templates):
            if tpl["processCode"] == process_code:
                return t
        return None

    # -- ids and times -------------------------------------------------------------------------
    def instance_id(self, i: int) -> str:
        h = hexid(self.seed, "approval-id", i, length=20)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{i:012x}"

    def index_of(self, instance_id: str) -> int | None:
        try:
            i = int(instance_id.rsplit("-", 1)[1], 16)
        except (IndexError, ValueError):
            return None
        if self.instance_id(i) != instance_id or not (i < self.n or i in self.changed):
            return None
        return i

    def created(self, i: int) -> int:
        if i >= self.n:
            return self.changed[i].create_ms
        return self.base_ms + int(i * self.step) + h64(self.seed, "approval-t", i) % self.slot

    def first_at_or_after(self, ms: int) -> int:
        """The smallest generated index whose creation time is ≥ ms (n if none)."""
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.created(mid) < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def window(self, template: int, start_ms: int, end_ms: int) -> tuple[int, int, list[int]]:
        """Generated indices of `template` created in [start, end]: (first, count) of the arithmetic
        sequence first, first+T, ...; plus overlay-created indices in the window (creation order)."""
        tcount = len(TEMPLATES)
        lo = self.first_at_or_after(start_ms)
        hi = self.first_at_or_after(end_ms + 1)
        first = lo + (template - lo) % tcount
        count = 0 if first >= hi else (hi - 1 - first) // tcount + 1
        extra = [
            i
            for i in self.new_indices
            if self.changed[i].template == template and start_ms <= self.changed[i].create_ms <= end_ms
        ]
        return first, count, extra

    # -- instances -----------------------------------------------------------------------------
    def get(self, i: int) -> Instance:
        """Instance i (overlay first). Generated instances are shared from a bounded cache: callers
        must not modify them (mutations copy with `dataclasses.replace`)."""
        inst = self.changed.get(i)
        return inst if inst is not None else self._generate_cached(i)

    def _originator(self, r: Any, create_ms: int) -> User:
        if self.resigned_at_start and r.random() < 0.08:
            left = self.resigned_at_start[r.randrange(len(self.resigned_at_start))]
            if left.leave_time > create_ms + DAY_MS:
                return left.user
        return self.staff[r.randrange(len(self.staff))]

    def _generate(self, i: int) -> Instance:
        r = rng(self.seed, "approval", i)
        t = i % len(TEMPLATES)
        create = self.created(i)
        originator = self._originator(r, create)
        return self.build(i, t, create, originator, r)

    def build(
        self, i: int, t: int, create: int, originator: User, r: Any, *, running: bool | None = None
    ) -> Instance:
        kind, flow_title, _ = TEMPLATES[t]
        if running is None:
            running = self.generated_running(i)
        leader = self._leader_for(originator)
        approvers = [leader] if leader.userid != originator.userid else [self.staff[0]]
        if kind in ("expense", "payment", "purchase"):
            approvers.append(self._leader_named("財務部"))
        if kind == "contract":
            approvers.append(self._leader_named("法務部"))
        cc = [self._leader_named("人力資源部")] if kind == "leave" else []
        form, atts, planted = self._form(i, kind, originator, r)
        title = f"{originator.name}提交的{flow_title}"
        records: list[dict[str, Any]] = [
            {
                "user": originator,
                "date": create,
                "type": "START_PROCESS_INSTANCE",
                "result": "NONE",
                "remark": "",
            }
        ]
        if h64(self.seed, "approval-remark", i) % 5 == 0:  # a comment (評論) soon after submitting
            records.append(
                {
                    "user": originator,
                    "date": create + 60_000 * (1 + h64(self.seed, "approval-remark-t", i) % 30),
                    "type": "ADD_REMARK",
                    "result": "NONE",
                    "remark": (
                        "補充說明：發票稍後補交",
                        "Segue em anexo o orçamento revisto.",
                        "请尽快审批，谢谢",
                        "Urgent — client deadline Friday",
                    )[h64(self.seed, "approval-remark-x", i) % 4],
                }
            )
        status, result, finish = "RUNNING", "", None
        if not running:
            t_ms = create
            roll = r.random()
            terminated = roll < 0.05
            refused = not terminated and roll < 0.2
            for n, a in enumerate(approvers):
                t_ms += r.randrange(600_000, 2 * DAY_MS)
                if terminated:
                    break
                last = n == len(approvers) - 1
                outcome = "REFUSE" if refused and last else "AGREE"
                remark = (
                    r.choice(("同意", "OK", "Aprovado", "請補充發票", "已核對", ""))
                    if outcome == "AGREE"
                    else "預算不足，請重新提交"
                )
                records.append(
                    {
                        "user": a,
                        "date": t_ms,
                        "type": "EXECUTE_TASK_NORMAL",
                        "result": outcome,
                        "remark": remark,
                    }
                )
            if terminated:
                records.append(
                    {
                        "user": originator,
                        "date": t_ms,
                        "type": "TERMINATE_PROCESS_INSTANCE",
                        "result": "NONE",
                        "remark": "撤銷",
                    }
                )
                status, result = "TERMINATED", ""
            else:
                status, result = "COMPLETED", "refuse" if refused else "agree"
            finish = t_ms
        return Instance(
            index=i,
            id=self.instance_id(i),
            template=t,
            create_ms=create,
            originator=originator,
            title=title,
            status=status,
            result=result,
            finish_ms=finish,
            approvers=approvers,
            cc=cc,
            business_id=f"{(create // 1000) % 10**8:08d}{i % 10**6:06d}",
            form=form,
            attachments=atts,
            records=records,
            sensitive=planted,
        )

    def attachment_truth(self, att: Attachment) -> dict[str, Any]:
        """`{fileId, fileName, size, sha256}`; the digest of a generated file is computed once."""
        digest = self._digests.get(att.file_id)
        if digest is None or digest[0] != att.size:
            digest = (att.size, hashlib.sha256(att.content).hexdigest())
            if len(self._digests) < 1_000_000:  # bounded: ~100 MB at most for the large profile
                self._digests[att.file_id] = digest
        return {"fileId": att.file_id, "fileName": att.file_name, "size": att.size, "sha256": digest[1]}

    def generated_running(self, i: int) -> bool:
        """Whether generated instance i is still RUNNING at start — cheap, without generating it."""
        if i >= self.n or (self.anchor_ms - self.created(i)) >= RUNNING_RECENT_DAYS * DAY_MS:
            return False
        return h64(self.seed, "approval-running", i) % 2 == 0

    def running_indices(self) -> list[int]:
        """Indices of instances RUNNING now (generated ones not yet changed, plus the overlay)."""
        lo = self.first_at_or_after(self.anchor_ms - RUNNING_RECENT_DAYS * DAY_MS)
        out = [i for i in range(lo, self.n) if i not in self.changed and self.generated_running(i)]
        out += [i for i, inst in sorted(self.changed.items()) if inst.status == "RUNNING"]
        return out

    def _leader_for(self, user: User) -> User:
        top = self.people.top_name(user.dept_id_list[0])
        return self._leader_named(top) if top else self.staff[0]

    def _leader_named(self, top: str) -> User:
        return self._leader_by_top.get(top, self.staff[0])

    def _form(
        self, i: int, kind: str, who: User, r: Any
    ) -> tuple[list[dict[str, Any]], list[Attachment], list[dict[str, str]]]:
        planted: list[dict[str, str]] = []
        atts: list[Attachment] = []
        fields: list[tuple[str, str, str]] = []  # (componentType, name, value)
        if kind == "leave":
            days = r.choice((0.5, 1, 2, 3, 5))
            fields += [
                ("DDHolidayField", "請假類型", r.choice(("年假", "病假", "事假", "婚假", "Licença anual"))),
                ("NumberField", "時長（天）", str(days)),
                (
                    "TextareaField",
                    "請假事由",
                    r.choice(("家中有事", "回鄉探親", "身體不適，需覆診", "Family matters in Lisbon")),
                ),
            ]
        elif kind == "expense":
            amount = _money(r, 5_000, 800_000)
            fields += [
                ("MoneyField", "報銷金額（澳門元）", amount),
                ("DDSelectField", "費用類型", r.choice(("交通費", "餐費", "差旅費", "辦公用品"))),
                (
                    "TextareaField",
                    "事由",
                    r.choice(
                        ("客戶拜訪 — 氹仔", "橫琴項目會議交通費", "Almoço com cliente", "Taxi to HK airport")
                    ),
                ),
            ]
        elif kind == "contract":
            # Mainland partners write in Simplified Chinese.
            party = r.choice(
                (
                    "珠海横琴某科技有限公司",
                    "Companhia de Seguros de Macau, S.A.",
                    "Pearl River Trading Ltd.",
                    "澳門某酒店集團",
                    "广州某贸易有限公司",
                )
            )
            id_kind = r.choice(("macau", "hkid", "mainland"))
            idno = {"macau": sensitive.macau_id, "hkid": sensitive.hkid, "mainland": sensitive.mainland_id}[
                id_kind
            ](r)
            planted.append(
                {"type": f"{id_kind}_id", "value": idno, "where": "formComponentValues[對方聯絡人證件號碼]"}
            )
            fields += [
                (
                    "TextField",
                    "合同名稱",
                    r.choice(
                        (
                            "軟件開發服務合同",
                            "Contrato de prestação de serviços",
                            "系統維護合約",
                            "Service Agreement",
                        )
                    ),
                ),
                ("TextField", "對方單位", party),
                ("MoneyField", "合同金額（澳門元）", _money(r, 1_000_000, 90_000_000)),
                ("TextField", "對方聯絡人證件號碼", idno),
                (
                    "TextareaField",
                    "合同摘要",
                    "本合同/contrato 約定雙方權利義務，付款方式為分期付款 (pagamento em prestações)。",
                ),
            ]
        elif kind == "payment":
            card = sensitive.bank_card(r)
            planted.append({"type": "bank_card", "value": card, "where": "formComponentValues[收款賬號]"})
            fields += [
                ("MoneyField", "付款金額（澳門元）", _money(r, 100_000, 20_000_000)),
                (
                    "TextField",
                    "收款單位",
                    r.choice(
                        ("澳門電訊", "中國銀行澳門分行", "Fornecedor Lda.", "Zhuhai Cloud Services Co.")
                    ),
                ),
                ("TextField", "收款賬號", card),
                (
                    "TextareaField",
                    "付款事由",
                    r.choice(
                        (
                            "支付服務器租用費 (payment for hosting)",
                            "付款：第二期合同款",
                            "Pagamento de renda do escritório",
                        )
                    ),
                ),
            ]
        elif kind == "purchase":
            fields += [
                (
                    "TextField",
                    "採購物品",
                    r.choice(("手提電腦 ×3", "辦公椅 ×10", "Licença de software", "4K 顯示器 ×5")),
                ),
                ("MoneyField", "預算（澳門元）", _money(r, 50_000, 5_000_000)),
                ("DDDateField", "期望到貨日期", f"{r.randrange(1, 13):02d}-{r.randrange(1, 28):02d}"),
            ]
        else:  # trip
            tel = sensitive.phone(r, r.choice(("853", "852", "86")))
            planted.append({"type": "phone", "value": tel, "where": "formComponentValues[緊急聯絡電話]"})
            fields += [
                ("TextField", "目的地", r.choice(("香港", "珠海", "廣州", "Lisboa", "深圳"))),
                ("DDDateRangeField", "出差日期", '["2024-05-02","2024-05-04"]'),
                ("TextField", "緊急聯絡電話", tel),
            ]
        if kind in ("expense", "contract", "payment", "purchase") and r.random() < 0.75:
            for k in range(r.randrange(1, 3)):
                atts.append(self._attachment(i, k, kind, who, r))
        form = [
            {
                "id": f"{ctype}-{h64(self.seed, 'field', kind, n) % 10**8:08X}",
                "name": name,
                "value": value,
                "componentType": ctype,
            }
            for n, (ctype, name, value) in enumerate(fields)
        ]
        if atts:
            # (uncertain) the reference does not show a DDAttachment value; a JSON string of file
            # descriptors (spaceId, fileName, fileSize, fileType, fileId) is what the SDK samples suggest.
            value = json.dumps(
                [
                    {
                        "spaceId": str(a.space_id),
                        "fileName": a.file_name,
                        "fileSize": str(a.size),
                        "fileType": a.file_type,
                        "fileId": a.file_id,
                    }
                    for a in atts
                ],
                ensure_ascii=False,
            )
            form.append(
                {
                    "id": f"DDAttachment-{h64(self.seed, 'field', kind, 'att') % 10**8:08X}",
                    "name": "附件",
                    "value": value,
                    "componentType": "DDAttachment",
                }
            )
        return form, atts, planted

    def _attachment(self, i: int, k: int, kind: str, who: User, r: Any) -> Attachment:
        file_id = str(20_000_000_000 + h64(self.seed, "approval-file", i, k) % 10**10)
        label = {"expense": "發票", "contract": "合同掃描件", "payment": "付款憑證", "purchase": "報價單"}[
            kind
        ]
        if _render_file is not None:
            # The files family's generators: real PDF / DOCX / XLSX with the company's text.
            # Scans (PDF) and Word files: spreadsheets cost ~20 ms each to render, too slow for truth walks.
            ftype = r.choice(
                ("pdf", "pdf", "docx", "docx", "pdf") if kind == "contract" else ("pdf", "pdf", "pdf", "docx")
            )
            size = r.randrange(16_000, 90_000)
            lang = {"zh-Hant": "zh-Hant", "pt": "pt", "en": "en"}.get(who.lang, "zh-Hant")
            if r.random() < 0.15:
                lang = "zh-Hans"  # mainland partners' paperwork
            spec = _ContentSpec(f"{self.seed}:approval:{i}:{k}", ftype, 1, size, _CORPUS_KIND[kind], lang)
            return Attachment(
                file_id,
                f"{label}_{i}_{k}.{ftype}",
                ftype,
                self.space_id,
                size,
                lambda: _read_all(_render_file(spec)),
            )
        ftype = r.choice(("pdf", "pdf", "csv", "txt"))
        lines = [
            f"{label} / {kind} #{i}-{k}",
            f"Applicant: {who.name_en} ({who.userid})",
            f"Amount MOP {r.randrange(100, 99999)}.{r.randrange(100):02d}",
            "contract / contrato / 合同" if kind == "contract" else "payment / pagamento / 付款",
        ]
        nlines = r.randrange(20, 400)
        noise = hashlib.shake_128(f"{self.seed}:att:{i}:{k}".encode()).hexdigest(24 * nlines)
        lines += [f"line {n}: {noise[n * 48 : n * 48 + 48]}" for n in range(nlines)]
        text = "\n".join(lines) + "\n"
        if ftype == "pdf":
            content = _pdf(text)
        elif ftype == "csv":
            content = (
                "item,amount\n"
                + "".join(f"{n},{r.randrange(10, 9999)}\n" for n in range(r.randrange(5, 200)))
            ).encode()
        else:
            content = text.encode()
        return Attachment(
            file_id, f"{label}_{i}_{k}.{ftype}", ftype, self.space_id, len(content), lambda: content
        )

    # -- overlay-created instances ---------------------------------------------------------------
    def next_index(self) -> int:
        return self.n + len(self.new_indices)

    def add(self, inst: Instance) -> None:
        self.changed[inst.index] = inst
        if inst.index >= self.n and inst.index not in self.new_indices:
            bisect.insort(self.new_indices, inst.index)
