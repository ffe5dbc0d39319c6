"""Name and text pools for a Macau company: Cantonese, Macanese-Portuguese and English people."""

from __future__ import annotations

import random

COMPANY_NAME = "濠江數碼科技有限公司"
COMPANY_NAME_EN = "Hou Kong Digital Technology Ltd."

# (Chinese surname, Cantonese romanisation)
SURNAMES = (
    ("陳", "Chan"),
    ("黃", "Wong"),
    ("李", "Lei"),
    ("梁", "Leong"),
    ("何", "Ho"),
    ("林", "Lam"),
    ("張", "Cheong"),
    ("劉", "Lao"),
    ("吳", "Ng"),
    ("鄭", "Cheang"),
    ("區", "Au"),
    ("馮", "Fong"),
    ("譚", "Tam"),
    ("蔡", "Choi"),
    ("盧", "Lou"),
    ("麥", "Mak"),
    ("葉", "Ip"),
    ("羅", "Lo"),
)
GIVEN = (
    ("嘉欣", "Ka Ian"),
    ("志明", "Chi Meng"),
    ("家豪", "Ka Hou"),
    ("詠詩", "Weng Si"),
    ("俊傑", "Chon Kit"),
    ("曉彤", "Hio Tong"),
    ("偉強", "Wai Keong"),
    ("美玲", "Mei Leng"),
    ("子軒", "Chi Hin"),
    ("穎怡", "Weng I"),
    ("浩然", "Hou In"),
    ("淑儀", "Sok I"),
    ("國華", "Kuok Wa"),
    ("綺雯", "I Man"),
    ("文傑", "Man Kit"),
)
PT_FIRST = (
    "José",
    "Maria",
    "António",
    "Ana",
    "Miguel",
    "Rita",
    "Carlos",
    "Sofia",
    "Luís",
    "Teresa",
    "Pedro",
    "Inês",
)
PT_LAST = (
    "da Silva",
    "Rodrigues",
    "Ritchie",
    "Senna Fernandes",
    "Xavier",
    "Gomes",
    "Rosário",
    "Nolasco",
    "Jorge",
    "Marques",
)
EN_FIRST = (
    "Michael",
    "Jennifer",
    "David",
    "Emily",
    "Kelvin",
    "Winnie",
    "Jason",
    "Cherry",
    "Alan",
    "Vivian",
    "Ivan",
    "Karen",
)
TITLES = {
    "總經理辦公室": ("總經理", "行政助理", "秘書"),
    "財務部": ("財務經理", "會計", "出納"),
    "人力資源部": ("人事經理", "招聘專員", "薪酬專員"),
    "法務部": ("法律顧問", "合規主任", "法務助理"),
    "工程部": ("工程經理", "高級工程師", "軟件工程師", "測試工程師"),
    "設計部": ("設計總監", "UI 設計師", "平面設計師"),
    "市場部": ("市場經理", "市場專員", "Business Development Manager"),
    "客戶服務部": ("客服主管", "客服專員", "Customer Success Specialist"),
}

# Top-level departments and their sub-departments.
DEPARTMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("總經理辦公室", ()),
    ("財務部", ("會計組", "出納組")),
    ("人力資源部", ("招聘組",)),
    ("法務部", ()),
    ("工程部", ("後端組", "前端組", "測試組", "運維組")),
    ("設計部", ("產品設計組",)),
    ("市場部", ("澳門市場組", "大灣區市場組")),
    ("客戶服務部", ("一線支援組", "葡語客戶組")),
)

WORK_PLACES = ("澳門新口岸宋玉生廣場 258 號 8 樓", "澳門氹仔布拉干薩街 88 號", "珠海橫琴天羽道 19 號")


def person_name(r: random.Random) -> tuple[str, str, str]:
    """(display name, English/romanised name, language: zh-Hant | pt | en)."""
    pick = r.random()
    if pick < 0.7:
        (sur, sur_en), (given, given_en) = r.choice(SURNAMES), r.choice(GIVEN)
        return sur + given, f"{sur_en} {given_en}", "zh-Hant"
    if pick < 0.85:
        name = f"{r.choice(PT_FIRST)} {r.choice(PT_LAST)}"
        return name, name, "pt"
    sur, sur_en = r.choice(SURNAMES)
    name = f"{r.choice(EN_FIRST)} {sur_en}"
    return name, name, "en"
