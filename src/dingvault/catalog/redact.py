"""Scrub credentials out of text before the catalog stores it (error messages, exception text).

Why: legacy oapi URLs carry ``access_token=`` in the query string, and an HTTP error message that
quotes the URL would otherwise put a live token on disk in the catalog (and in its exports).
"""

from __future__ import annotations

import re

_PATTERNS = (
    # query strings and form bodies: access_token=..., appSecret=..., client_secret=...
    re.compile(
        r"(?i)\b(access_?token|app_?secret|client_?secret|appkey_?secret|suite_?secret|password|signature)"
        r"(=)([^&\s\"']+)"
    ),
    # JSON: "accessToken": "...", "appSecret": "..."
    re.compile(
        r"(?i)(\"(?:access_?token|app_?secret|client_?secret|password|refresh_?token)\"\s*)(:\s*)(\"[^\"]*\")"
    ),
    # HTTP headers: x-acs-dingtalk-access-token: ..., Authorization: Bearer ...
    re.compile(r"(?i)\b(x-acs-dingtalk-access-token|authorization)(\s*[:=]\s*)([^\s,;]+(?: [^\s,;]+)?)"),
)
REDACTED = "[REDACTED]"


def redact_secrets(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text
