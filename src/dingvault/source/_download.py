"""Streaming downloads that resume with `Range` and verify the total length.

Content URLs (storage `resourceUrls`, approval `downloadUri`, robot `downloadUrl`) are pre-signed
and short-lived (15 min, §4.4/§5.4). A transfer that is cut (connection reset, truncated body) is
resumed from the last byte received with `Range: bytes=N-` (§5.4: the storage URLs honour it); a
server that ignores the Range and sends the whole body again is handled by skipping what was
already delivered. If the URL has expired (401/403) and a `refresh` callable is given, a fresh
URL + headers are fetched and the transfer continues. Signed query strings are never put into
error messages or logs.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from dingvault.source.errors import DownloadError

Refresh = Callable[[], Awaitable[tuple[str, dict[str, str]]]]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


async def stream_download(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    *,
    expected_size: int | None = None,
    refresh: Refresh | None = None,
    max_attempts: int = 6,
    base_delay: float = 0.2,
    max_delay: float = 10.0,
) -> AsyncIterator[bytes]:
    received = 0
    total = expected_size
    failures = 0
    current_headers = dict(headers or {})

    async def _fail(problem: str) -> None:
        nonlocal failures
        failures += 1
        if failures >= max_attempts:
            raise DownloadError(
                f"download of {redact_url(url)} failed after {failures} attempts "
                f"({received} of {total if total is not None else '?'} bytes): {problem}",
                endpoint="download",
            )
        delay = min(max_delay, base_delay * 2 ** (failures - 1))
        await asyncio.sleep(random.uniform(delay / 2, delay))

    while True:
        request_headers = dict(current_headers)
        if received:
            request_headers["Range"] = f"bytes={received}-"
        try:
            async with http.stream("GET", url, headers=request_headers) as resp:
                status = resp.status_code
                if status in (401, 403) and refresh is not None:
                    await resp.aread()
                    url, current_headers = await refresh()
                    await _fail(f"HTTP {status} (URL expired?), fetched a fresh one")
                    continue
                if status == 416 and total is not None and received >= total:
                    return
                if status >= 500 or status == 429:
                    await resp.aread()
                    await _fail(f"HTTP {status}")
                    continue
                if status >= 400:
                    body = (await resp.aread())[:200].decode("utf-8", errors="replace")
                    raise DownloadError(
                        f"download of {redact_url(url)} refused: HTTP {status} {body}",
                        endpoint="download",
                        status=status,
                    )
                skip = 0
                if status == 206:
                    match = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
                    if not match or int(match.group(1)) != received:
                        raise DownloadError(
                            f"download of {redact_url(url)}: unexpected Content-Range "
                            f"{resp.headers.get('content-range')!r} when resuming at {received}",
                            endpoint="download",
                        )
                    if match.group(3) != "*":
                        total = _agree(total, int(match.group(3)), url)
                else:
                    # 200: the whole body; if we were resuming, the server ignored the Range.
                    skip = received
                    length = resp.headers.get("content-length")
                    if length is not None and not resp.headers.get("content-encoding"):
                        total = _agree(total, int(length), url)
                async for chunk in resp.aiter_bytes():
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk = chunk[skip:]
                        skip = 0
                    if total is not None and received + len(chunk) > total:
                        raise DownloadError(
                            f"download of {redact_url(url)} is longer than announced ({total} bytes)",
                            endpoint="download",
                        )
                    received += len(chunk)
                    yield chunk
        except httpx.TransportError as exc:
            await _fail(f"{type(exc).__name__}: {exc}")
            continue
        if total is None or received == total:
            return
        await _fail(f"truncated at {received} of {total} bytes")


def _agree(known: int | None, announced: int, url: str) -> int:
    if known is not None and known != announced:
        raise DownloadError(
            f"download of {redact_url(url)}: size {announced} differs from the expected {known}",
            endpoint="download",
        )
    return announced
