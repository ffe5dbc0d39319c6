"""First-level blocks of an online document (alidocs), derived from its text and edit count.

The documented block shape is `{"blockType":"paragraph","paragraph":{"text":...},"id","index"}`
(§5.5). Titles are rendered as `heading` blocks and tables as `table` blocks with the same
pattern (`{"blockType":"heading","heading":{"level":1,"text":...}}`, `{"blockType":"table",
"table":{"rows":[[...]]}}`) — those two shapes are **uncertain** (not shown in the reference).

The `doc` truth's sha256 is over the canonical JSON of the full block list: UTF-8,
`sort_keys`, separators `(",", ":")`, non-ASCII kept as is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import corpus
from .storage_model import Dentry, b62id


def blocks_of(d: Dentry) -> list[dict[str, Any]]:
    doc = corpus.compose(d.content_key, d.kind, d.lang, d.doc_version)
    out: list[dict[str, Any]] = [{"blockType": "heading", "heading": {"level": 1, "text": doc.title}}]
    out.extend({"blockType": "paragraph", "paragraph": {"text": p}} for p in doc.paragraphs)
    if doc.table:
        out.append({"blockType": "table", "table": {"rows": doc.table}})
    for i, b in enumerate(out):
        b["id"] = b62id(17, d.uuid, "block", i).lower()
        b["index"] = i
    return out


def canonical_sha256(blocks: list[dict[str, Any]]) -> str:
    text = json.dumps(blocks, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
