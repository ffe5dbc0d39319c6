"""The stored form of one item version: a canonical JSON document, stored as one vault blob.

::

    {"format": "dingvault.item/1", "kind": ..., "source_id": ..., "container": ...,
     "version_key": ..., "fields": {...}, "raw": {...verbatim API payloads...},
     "attachments": [{"name": <verbatim>, "safe_name": ..., "kind": ..., "size": N,
                      "ref": {...}, "sha256": ..., "blobs": [<blob id>, ...]} , ...]}

Canonical (sorted keys, no insignificant whitespace, UTF-8) so that storing the same version twice —
a rerun after a crash — gives byte-identical plaintext, hence the same content-addressed blob id,
hence "unchanged" in the catalog: that is what makes "no duplicate version" hold. Nothing that varies
between two reads of the same version (capture time, run id, signed URLs) goes in here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from dingvault.source.items import AttachmentRef, Item

FORMAT = "dingvault.item/1"

# Keys that hold short-lived download credentials in some API payloads: they change on every read
# and would make an unchanged record look changed. They are dropped from the stored attachment
# refs (the raw payload itself is kept verbatim).
_VOLATILE_REF_KEYS = frozenset({"url", "resourceUrl", "resourceUrls", "headers", "expirationSeconds"})


@dataclass
class StoredAttachment:
    ref: AttachmentRef
    blob_ids: list[str] = field(default_factory=list)
    sha256: str | None = None
    size: int | None = None
    skipped: str | None = None  # why the content was not downloaded (scope exclusion), if so

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.ref.name,
            "safe_name": self.ref.safe_name,
            "kind": self.ref.kind,
            "size": self.size if self.size is not None else self.ref.size,
            "ref": stable_ref(self.ref.ref),
            "sha256": self.sha256,
            "blobs": list(self.blob_ids),
        }
        if self.skipped:
            doc["skipped"] = self.skipped
        return doc


MAX_VERSION_KEY = 256  # the catalog's column width


def normalize_version_key(key: Any) -> str | None:
    """The version key as the catalog keeps it (text; an over-long one by its SHA-256)."""
    if key is None:
        return None
    key = str(key)
    if len(key) > MAX_VERSION_KEY:  # still a faithful change marker, just shorter
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def stable_ref(ref: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ref.items() if k not in _VOLATILE_REF_KEYS}


def attachment_identity(ref: AttachmentRef) -> bytes:
    """What makes two attachment references the same content (used to reuse blobs, not re-download)."""
    return orjson.dumps({"k": ref.kind, "r": stable_ref(ref.ref), "s": ref.size}, option=orjson.OPT_SORT_KEYS)


def encode_version(item: Item, attachments: list[StoredAttachment]) -> bytes:
    doc = {
        "format": FORMAT,
        "kind": item.kind,
        "source_id": item.source_id,
        "container": item.container,
        "version_key": item.version_key,
        "fields": item.fields,
        "raw": item.raw,
        "attachments": [a.to_doc() for a in attachments],
    }
    encoded = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=_fallback)
    # Copied to its size: orjson returns its working buffer (4 KiB at least), and a version waits
    # in the vault's open segment with a few hundred others before it is packed.
    return bytes(memoryview(encoded))


def decode_version(data: bytes) -> dict[str, Any]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a dingvault item version")
    return doc


def _fallback(obj: Any) -> Any:
    # API payloads are JSON already; anything else (bytes from a media callback) is kept as text.
    if isinstance(obj, bytes | bytearray):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj, key=str)
    return str(obj)
