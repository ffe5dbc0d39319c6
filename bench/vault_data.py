"""Deterministic benchmark data for bench/vault.py: DingTalk-like JSON records and file versions.

Records are approvals, users and dentries shaped like the Open Platform's payloads (see
/work/shared/dingtalk-api.md), with Traditional/Simplified Chinese, Portuguese and English text,
about 1 KB each. Files are a mix of compressible office-like text and incompressible media, each
in successive versions (edits, insertions, appends), as a drive space changes over time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import orjson

SURNAMES = "陳李黃張梁何林劉吳郭蔡鄭謝馮區葉"
GIVEN = [
    "嘉欣",
    "志明",
    "美玲",
    "家豪",
    "詠詩",
    "俊傑",
    "麗華",
    "偉強",
    "曉彤",
    "子軒",
    "Ana",
    "João",
    "Maria",
]
DEPTS = ["財務部", "人力資源部", "法務部", "市場部", "資訊科技部", "營運部", "澳門分公司", "橫琴辦事處"]
TITLES = ["請假申請", "報銷審批", "合同審批", "採購申請", "付款申請", "出差申請", "用印申請", "加班申請"]
WORDS = [
    "合同",
    "合約",
    "contrato",
    "contract",
    "付款",
    "pagamento",
    "payment",
    "發票",
    "invoice",
    "客戶",
    "cliente",
    "供應商",
    "fornecedor",
    "審批",
    "批准",
    "駁回",
    "金額",
    "澳門元",
    "MOP",
    "HKD",
    "人民幣",
    "項目",
    "projecto",
    "project",
    "會議",
    "reunião",
    "meeting",
    "報告",
    "relatório",
    "預算",
    "orçamento",
    "budget",
    "員工",
    "funcionário",
    "部門",
    "departamento",
    "文件",
    "documento",
    "期限",
    "prazo",
    "簽署",
    "assinatura",
]
FILE_NAMES = ["季度報告", "合同草稿", "員工手冊", "預算表", "會議紀錄", "relatório", "contrato", "proposal"]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _approval(rng: random.Random, i: int) -> dict:
    return {
        "processInstanceId": f"{rng.getrandbits(64):016x}-{i:08d}",
        "title": f"{_name(rng)}提交的{rng.choice(TITLES)}",
        "createTime": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T{rng.randint(8, 19):02d}:{rng.randint(0, 59):02d}:00Z",
        "status": rng.choice(["COMPLETED", "RUNNING", "TERMINATED"]),
        "result": rng.choice(["agree", "refuse", ""]),
        "originatorUserId": f"user{rng.randint(1, 500):04d}",
        "originatorDeptName": rng.choice(DEPTS),
        "formComponentValues": [
            {"componentType": "TextField", "name": "事由", "value": _text(rng, rng.randint(15, 45))},
            {
                "componentType": "MoneyField",
                "name": "金額（澳門元）",
                "value": f"{rng.randint(100, 500000)}.00",
            },
            {
                "componentType": "DDDateField",
                "name": "日期",
                "value": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            },
        ],
        "operationRecords": [
            {
                "userId": f"user{rng.randint(1, 500):04d}",
                "date": "2026-11-01T10:00:00Z",
                "type": "EXECUTE_TASK_NORMAL",
                "result": "AGREE",
                "remark": _text(rng, rng.randint(0, 8)),
            }
            for _ in range(rng.randint(1, 3))
        ],
        "bizAction": "NONE",
    }


def _user(rng: random.Random, i: int) -> dict:
    return {
        "userid": f"user{i:06d}",
        "unionid": f"{rng.getrandbits(96):024x}",
        "name": _name(rng),
        "mobile": f"+853-6{rng.randint(1000000, 9999999)}",
        "email": f"user{i}@example.mo",
        "title": rng.choice(["經理", "主任", "助理", "工程師", "會計", "Assistente", "Director"]),
        "dept_id_list": [rng.randint(1, 60) for _ in range(rng.randint(1, 3))],
        "hired_date": rng.randint(1_500_000_000_000, 1_760_000_000_000),
        "work_place": rng.choice(["澳門新口岸", "氹仔", "橫琴", "Macau Peninsula"]),
        "remark": _text(rng, rng.randint(25, 60)),
        "extension": orjson.dumps({"愛好": _text(rng, 3), "職級": f"P{rng.randint(1, 9)}"}).decode(),
        "active": True,
        "admin": rng.random() < 0.05,
    }


def _dentry(rng: random.Random, i: int) -> dict:
    return {
        "id": f"{rng.getrandbits(40)}",
        "spaceId": f"{rng.randint(1, 40)}",
        "parentId": f"{rng.getrandbits(40)}",
        "type": "FILE",
        "name": f"{rng.choice(FILE_NAMES)}_{i}.{rng.choice(['docx', 'xlsx', 'pdf'])}",
        "size": rng.randint(1000, 50_000_000),
        "path": "/" + "/".join(rng.choice(DEPTS) for _ in range(rng.randint(1, 3))),
        "version": rng.randint(1, 12),
        "status": "NORMAL",
        "extension": rng.choice(["docx", "xlsx", "pdf"]),
        "creatorId": f"user{rng.randint(1, 500):04d}",
        "modifierId": f"user{rng.randint(1, 500):04d}",
        "createTime": "2026-03-01T09:00:00Z",
        "modifiedTime": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T09:00:00Z",
        "properties": {"readOnly": False, "description": _text(rng, rng.randint(25, 60))},
    }


def records(n: int, seed: int = 1) -> Iterator[tuple[str, bytes]]:
    """(item key, raw JSON bytes) for n records, ~1 KB each, deterministic."""
    rng = random.Random(seed)
    makers = [("approval", _approval), ("user", _user), ("dentry", _dentry)]
    for i in range(n):
        kind, make = makers[i % 3]
        doc = make(rng, i)
        # A copy: orjson's result keeps its over-allocated buffer (~4 KB per record), which would
        # inflate the benchmark process by ~1 GB for 200k records.
        yield f"{kind}/{i:07d}", memoryview(orjson.dumps(doc)).tobytes()


def _office_text(rng: random.Random, size: int) -> bytes:
    # Paragraphs drawn from a bounded pool: compressible like real documents, not trivially so.
    pool = [(_text(rng, rng.randint(20, 80)) + "\n").encode() for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(pool)
        if rng.random() < 0.1:
            out += rng.randbytes(rng.randint(16, 256))  # embedded binary bits (fonts, ids)
    return bytes(out[:size])


def write_files(root: Path, total_bytes: int, seed: int = 2) -> list[list[Path]]:
    """Write version directories root/v1, root/v2, root/v3; returns the files of each version.

    v1 holds the base files (60% office text, 40% media); v2 edits some files in the middle,
    appends to others and adds a few; v3 does it again. About ``total_bytes`` in all.
    """
    rng = random.Random(seed)
    per_version = total_bytes // 3
    n_files = max(8, per_version // (24 * 1024 * 1024))
    sizes = [max(64 * 1024, int(rng.lognormvariate(0, 0.6) * per_version / n_files)) for _ in range(n_files)]
    scale = per_version / sum(sizes)
    sizes = [int(s * scale) for s in sizes]
    contents: list[bytes] = []
    for i, s in enumerate(sizes):
        contents.append(_office_text(rng, s) if i % 5 < 3 else rng.randbytes(s))
    versions: list[list[Path]] = []
    for v in (1, 2, 3):
        d = root / f"v{v}"
        d.mkdir(parents=True, exist_ok=True)
        if v > 1:
            for i in range(len(contents)):
                r = rng.random()
                if r < 0.3:  # edit in the middle
                    c = contents[i]
                    at = rng.randint(0, len(c))
                    contents[i] = (
                        c[:at] + b"revised clause " * rng.randint(1, 50) + c[at + rng.randint(0, 5000) :]
                    )
                elif r < 0.45:  # append
                    contents[i] = contents[i] + rng.randbytes(rng.randint(1000, 2_000_000))
        files = []
        for i, c in enumerate(contents):
            p = d / f"{FILE_NAMES[i % len(FILE_NAMES)]}_{i}.bin"
            p.write_bytes(c)
            files.append(p)
        versions.append(files)
    return versions
