"""Business text for generated documents: contracts, invoices, meeting minutes, price lists and
HR forms in Traditional Chinese (most), Simplified Chinese, Portuguese and English.

`compose(seed_key, kind, lang, version)` returns a `DocText`: a title, paragraphs, an optional
table, and the sensitive values planted in it (with where they were planted), all a pure function
of its arguments. A later version keeps most paragraphs and rewrites a few (and may append one),
so successive versions of a file share most of their bytes, as real edits do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import sensitive
from .seeding import h64, rng

KINDS = ("contract", "invoice", "minutes", "price_list", "hr_form")
LANGS = ("zh-Hant", "zh-Hans", "pt", "en")
# Mostly Traditional Chinese, as in a Macau company.
LANG_WEIGHTS = (55, 20, 15, 10)

COMPANIES = {
    "zh-Hant": [
        "澳門濠江貿易有限公司",
        "氹仔海景酒店管理有限公司",
        "路環建築工程有限公司",
        "新口岸物流服務有限公司",
        "南灣資訊科技有限公司",
    ],
    "zh-Hans": [
        "珠海横琴科技有限公司",
        "广州南沙物流有限公司",
        "深圳前海贸易有限公司",
        "中山港口服务有限公司",
    ],
    "pt": [
        "Sociedade de Comércio Praia Grande, Lda.",
        "Construções Ilha Verde, Lda.",
        "Serviços Hoteleiros Taipa, Lda.",
    ],
    "en": ["Pearl Delta Logistics Ltd.", "Cotai Hospitality Services Ltd.", "Harbour Tech Solutions Ltd."],
}
PEOPLE = {
    "zh-Hant": ["陳大文", "李嘉欣", "黃志強", "何美玲", "梁家輝", "吳淑儀", "馮國華", "區詠詩"],
    "zh-Hans": ["王建国", "张丽华", "刘伟", "赵敏", "孙浩"],
    "pt": ["João Carlos Sousa", "Maria Fernanda Lopes", "António Rocha", "Ana Cristina Leong"],
    "en": ["David Chan", "Grace Ho", "Peter Leung", "Emily Wong"],
}
ITEMS = {
    "zh-Hant": [
        "辦公椅",
        "手提電腦",
        "影印紙（A4，500張）",
        "會議室投影機",
        "保安服務（月費）",
        "清潔服務（月費）",
        "伺服器維護",
        "葡文翻譯服務",
    ],
    "zh-Hans": ["办公桌", "笔记本电脑", "复印纸（A4）", "网络交换机", "物业管理费", "软件许可证"],
    "pt": [
        "Cadeira de escritório",
        "Computador portátil",
        "Papel A4 (500 folhas)",
        "Serviço de limpeza (mensal)",
        "Tradução jurídica",
    ],
    "en": [
        "Office chair",
        "Laptop computer",
        "A4 paper (500 sheets)",
        "Cleaning service (monthly)",
        "Server maintenance",
    ],
}

TITLES = {
    ("contract", "zh-Hant"): "服務合約（編號 {ref}）",
    ("contract", "zh-Hans"): "服务合同（编号 {ref}）",
    ("contract", "pt"): "Contrato de Prestação de Serviços n.º {ref}",
    ("contract", "en"): "Service Agreement No. {ref}",
    ("invoice", "zh-Hant"): "發票 {ref}",
    ("invoice", "zh-Hans"): "发票 {ref}",
    ("invoice", "pt"): "Factura n.º {ref}",
    ("invoice", "en"): "Invoice {ref}",
    ("minutes", "zh-Hant"): "部門會議紀錄（{date}）",
    ("minutes", "zh-Hans"): "部门会议纪要（{date}）",
    ("minutes", "pt"): "Acta da Reunião de {date}",
    ("minutes", "en"): "Minutes of the Meeting of {date}",
    ("price_list", "zh-Hant"): "{year}年度價目表",
    ("price_list", "zh-Hans"): "{year}年度价目表",
    ("price_list", "pt"): "Tabela de Preços {year}",
    ("price_list", "en"): "Price List {year}",
    ("hr_form", "zh-Hant"): "員工資料表（{person}）",
    ("hr_form", "zh-Hans"): "员工信息登记表（{person}）",
    ("hr_form", "pt"): "Ficha de Trabalhador — {person}",
    ("hr_form", "en"): "Employee Record Form — {person}",
}

PARAGRAPHS = {
    ("contract", "zh-Hant"): [
        "甲方：{company}，乙方：{company2}。雙方經友好協商，就服務事宜訂立本合約。",
        "第一條　服務內容：乙方須按甲方要求提供{item}，服務期間自{date}起計十二個月。",
        "第二條　合約金額為澳門元{amount}元正，甲方須於收到發票後三十日內付款。",
        "第三條　付款方式：銀行轉帳至乙方指定帳戶，信用卡號碼 {bank_card} 僅作擔保用途。",
        "第四條　保密條款：雙方對本合約內容及在履行合約過程中獲悉的資料負有保密義務。",
        "第五條　聯絡人：{person}，身份證號碼 {mo_id}，電話 {mo_phone}。",
        "第六條　本合約受澳門特別行政區法律管轄，爭議提交澳門初級法院解決。",
        "第七條　本合約一式兩份，甲乙雙方各執一份，自雙方簽署之日起生效。",
    ],
    ("contract", "zh-Hans"): [
        "甲方：{company}，乙方：{company2}。双方经友好协商，就服务事宜订立本合同。",
        "第一条　服务内容：乙方应按甲方要求提供{item}，服务期自{date}起十二个月。",
        "第二条　合同金额为人民币{amount}元整，甲方应于收到发票后三十日内付款。",
        "第三条　联系人：{person}，身份证号 {cn_id}，手机 {cn_phone}。",
        "第四条　保密条款：双方对合同内容及履约过程中获知的信息负有保密义务。",
        "第五条　本合同一式两份，双方各执一份，自签署之日起生效。",
    ],
    ("contract", "pt"): [
        "Entre {company}, primeiro outorgante, e {company2}, segundo outorgante, é celebrado o presente contrato.",
        "Cláusula 1.ª — O segundo outorgante presta ao primeiro o serviço de {item}, com início em {date}.",
        "Cláusula 2.ª — O preço total é de MOP {amount}, a pagar no prazo de trinta dias após a factura.",
        "Cláusula 3.ª — Representante: {person}, BIR n.º {mo_id}, telefone {mo_phone}.",
        "Cláusula 4.ª — As partes obrigam-se a manter a confidencialidade da informação trocada.",
        "Cláusula 5.ª — O presente contrato rege-se pela lei da Região Administrativa Especial de Macau.",
    ],
    ("contract", "en"): [
        "This agreement is made between {company} (the Client) and {company2} (the Contractor).",
        "1. Services. The Contractor shall provide {item} from {date} for twelve months.",
        "2. Fees. The total fee is MOP {amount}, payable within thirty days of invoice.",
        "3. Contact. {person}, HKID {hk_id}, telephone {hk_phone}.",
        "4. Confidentiality. Each party shall keep the other's information confidential.",
        "5. Governing law. This agreement is governed by the laws of the Macao SAR.",
    ],
    ("invoice", "zh-Hant"): [
        "開票單位：{company}　客戶：{company2}",
        "開票日期：{date}　付款期限：三十日",
        "請將款項存入中國銀行澳門分行帳戶，或以信用卡 {bank_card} 支付。",
        "如有查詢，請致電 {mo_phone} 聯絡{person}。",
    ],
    ("invoice", "zh-Hans"): [
        "开票单位：{company}　客户：{company2}",
        "开票日期：{date}　付款期限：三十日",
        "付款银行卡号 {bank_card}，如有疑问请致电 {cn_phone}。",
    ],
    ("invoice", "pt"): [
        "Emitente: {company}　Cliente: {company2}",
        "Data de emissão: {date}　Prazo de pagamento: 30 dias",
        "Pagamento por transferência bancária ou cartão {bank_card}. Contacto: {person}, {mo_phone}.",
    ],
    ("invoice", "en"): [
        "Issued by: {company}　Bill to: {company2}",
        "Invoice date: {date}　Payment terms: net 30",
        "Payment by bank transfer or card {bank_card}. Enquiries: {person}, {hk_phone}.",
    ],
    ("minutes", "zh-Hant"): [
        "出席：{person}、{person2}及部門同事共{n}人。主持：{person}。",
        "一、上次會議紀錄獲一致通過。",
        "二、財務報告：本季度開支為澳門元{amount}元，較預算減少百分之{pct}。",
        "三、{item}採購事宜：同意向{company2}詢價，下次會議前完成比較。",
        "四、人事：新同事{person2}（電話 {mo_phone}）將於{date}入職。",
        "五、其他事項：無。會議於下午五時三十分結束。",
    ],
    ("minutes", "zh-Hans"): [
        "出席：{person}、{person2}等{n}人。主持：{person}。",
        "一、审议通过上次会议纪要。",
        "二、本季度支出人民币{amount}元，较预算下降{pct}%。",
        "三、关于{item}采购：同意向{company2}询价。",
        "四、其他事项：无。",
    ],
    ("minutes", "pt"): [
        "Presentes: {person}, {person2} e mais {n} colaboradores.",
        "1. Foi aprovada por unanimidade a acta da reunião anterior.",
        "2. Relatório financeiro: despesas do trimestre de MOP {amount}, {pct}% abaixo do orçamento.",
        "3. Aquisição de {item}: pedir propostas a {company2}.",
        "4. Nada mais havendo a tratar, a reunião foi encerrada.",
    ],
    ("minutes", "en"): [
        "Present: {person}, {person2} and {n} other staff.",
        "1. The minutes of the previous meeting were approved.",
        "2. Finance: quarterly spending was MOP {amount}, {pct}% under budget.",
        "3. Procurement of {item}: request quotations from {company2}.",
        "4. There being no other business, the meeting closed.",
    ],
    ("price_list", "zh-Hant"): [
        "{company}　{year}年度價目表，價格以澳門元計算，有效期至{date}。",
        "如需報價請聯絡{person}（{mo_phone}）。",
    ],
    ("price_list", "zh-Hans"): [
        "{company}　{year}年度价目表，价格以人民币计算，有效期至{date}。",
        "报价联系人：{person}（{cn_phone}）。",
    ],
    ("price_list", "pt"): [
        "{company} — tabela de preços de {year}, em patacas, válida até {date}.",
        "Contacto: {person} ({mo_phone}).",
    ],
    ("price_list", "en"): [
        "{company} — {year} price list in MOP, valid until {date}.",
        "Contact: {person} ({hk_phone}).",
    ],
    ("hr_form", "zh-Hant"): [
        "姓名：{person}　部門：{dept}　入職日期：{date}",
        "澳門居民身份證號碼：{mo_id}　聯絡電話：{mo_phone}",
        "香港身份證號碼（如適用）：{hk_id}",
        "薪金轉帳銀行卡號：{bank_card}",
        "緊急聯絡人：{person2}，電話 {hk_phone}。",
        "本人聲明以上資料正確無誤，並同意公司按《個人資料保護法》處理。",
    ],
    ("hr_form", "zh-Hans"): [
        "姓名：{person}　部门：{dept}　入职日期：{date}",
        "居民身份证号码：{cn_id}　联系电话：{cn_phone}",
        "工资卡号：{bank_card}",
        "本人承诺以上信息真实有效。",
    ],
    ("hr_form", "pt"): [
        "Nome: {person}　Departamento: {dept}　Data de admissão: {date}",
        "BIR n.º {mo_id}　Telefone: {mo_phone}",
        "Conta bancária (cartão): {bank_card}",
        "Declaro que os dados acima são verdadeiros.",
    ],
    ("hr_form", "en"): [
        "Name: {person}　Department: {dept}　Start date: {date}",
        "Identity card: {hk_id}　Phone: {hk_phone}",
        "Salary card: {bank_card}",
        "I declare the above information to be true and correct.",
    ],
}

TABLE_HEADERS = {
    "zh-Hant": ["項目", "數量", "單價（澳門元）", "金額"],
    "zh-Hans": ["项目", "数量", "单价（元）", "金额"],
    "pt": ["Artigo", "Quantidade", "Preço unitário (MOP)", "Total"],
    "en": ["Item", "Quantity", "Unit price (MOP)", "Amount"],
}
DEPTS = {
    "zh-Hant": ["財務部", "人事部", "市場部", "資訊科技部", "行政部"],
    "zh-Hans": ["财务部", "人事部", "市场部", "技术部"],
    "pt": ["Finanças", "Recursos Humanos", "Marketing", "Informática"],
    "en": ["Finance", "Human Resources", "Marketing", "IT"],
}
EDIT_NOTES = {
    "zh-Hant": "（第{v}版修訂：{person}於{date}更新本段。）",
    "zh-Hans": "（第{v}版修订：{person}于{date}更新本段。）",
    "pt": "(Revisão {v}: parágrafo actualizado por {person} em {date}.)",
    "en": "(Revision {v}: paragraph updated by {person} on {date}.)",
}


@dataclass
class DocText:
    kind: str
    lang: str
    title: str
    paragraphs: list[str]
    table: list[list[str]] | None = None
    # (type, value, where): where = "p<i>" for paragraph i or "t<r>" for table row r.
    planted: list[tuple[str, str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [self.title, *self.paragraphs]
        if self.table:
            out.extend("\t".join(row) for row in self.table)
        return out


def pick_lang(*parts: object) -> str:
    r = rng("lang", *parts)
    return r.choices(LANGS, weights=LANG_WEIGHTS)[0]


def pick_kind(*parts: object) -> str:
    return KINDS[h64("kind", *parts) % len(KINDS)]


def _slots(r: random.Random, lang: str) -> dict[str, str]:
    companies = COMPANIES[lang]
    people = PEOPLE[lang]
    year = r.randrange(2021, 2027)
    slots = {
        "company": r.choice(companies),
        "company2": r.choice(companies),
        "person": r.choice(people),
        "person2": r.choice(people),
        "item": r.choice(ITEMS[lang]),
        "dept": r.choice(DEPTS[lang]),
        "date": f"{year}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
        "year": str(year),
        "amount": f"{r.randrange(1000, 900000):,}",
        "pct": str(r.randrange(2, 30)),
        "n": str(r.randrange(3, 15)),
        "ref": f"{year}-{r.randrange(1, 9999):04d}",
    }
    for name, gen in sensitive.GENERATORS.items():
        slots[name] = gen(r)
    return slots


def _fill(template: str, slots: dict[str, str], where: str, planted: list[tuple[str, str, str]]) -> str:
    for name in sensitive.GENERATORS:
        if "{" + name + "}" in template:
            planted.append((name, slots[name], where))
    return template.format(**slots)


def _table(r: random.Random, kind: str, lang: str, rows: int) -> list[list[str]]:
    header = TABLE_HEADERS[lang]
    body = []
    for _ in range(rows):
        qty = r.randrange(1, 50)
        price = r.randrange(20, 20000)
        body.append([r.choice(ITEMS[lang]), str(qty), f"{price:.2f}", f"{qty * price:.2f}"])
    return [header, *body]


def compose(key: str, kind: str, lang: str, version: int = 1, *, table_rows: int = 0) -> DocText:
    """The text of version `version` of the document identified by `key`."""
    doc = _compose(key, kind, lang, version, table_rows)
    if lang in ("pt", "en"):  # the ideographic space separating fields is for Chinese text only
        doc.title = doc.title.replace("\u3000", "  ")
        doc.paragraphs = [p.replace("\u3000", "  ") for p in doc.paragraphs]
    return doc


def _compose(key: str, kind: str, lang: str, version: int, table_rows: int) -> DocText:
    base = rng("doc", key)
    slots = _slots(base, lang)
    planted: list[tuple[str, str, str]] = []
    title = TITLES[(kind, lang)].format(**slots)
    templates = PARAGRAPHS[(kind, lang)]
    paragraphs = [_fill(t, slots, f"p{i}", planted) for i, t in enumerate(templates)]
    # Each later version rewrites roughly one paragraph in five (chosen by hash, so the edits of
    # version v are stable) and appends a revision note: most bytes stay the same.
    for v in range(2, version + 1):
        vr = rng("edit", key, v)
        note = EDIT_NOTES[lang].format(
            v=v,
            person=vr.choice(PEOPLE[lang]),
            date=f"2026-{vr.randrange(1, 13):02d}-{vr.randrange(1, 29):02d}",
        )
        for i in range(len(paragraphs)):
            if h64("rewrite", key, v, i) % 5 == 0 and not any(p[2] == f"p{i}" for p in planted):
                paragraphs[i] = paragraphs[i] + note
        paragraphs.append(note)
    table = None
    if kind in ("invoice", "price_list") or table_rows:
        table = _table(rng("table", key), kind, lang, table_rows or base.randrange(4, 16))
        if version > 1 and len(table) > 2:
            # A later version changes a few prices.
            for v in range(2, version + 1):
                row = 1 + h64("row", key, v) % (len(table) - 1)
                table[row][2] = f"{float(table[row][2]) * 1.05:.2f}"
    return DocText(kind, lang, title, paragraphs, table, planted)
