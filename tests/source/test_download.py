"""Streaming downloads: resumed with Range after a cut, length verified, expired URLs refreshed.

A tiny HTTP/1.1 server on 127.0.0.1 (port 0) misbehaves on purpose: it announces the full
Content-Length and closes the connection early, so the client sees a real truncated transfer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from dingvault.source.client import DingTalkClient
from dingvault.source.errors import DownloadError

from .conftest import fast_config

BLOB = os.urandom(300_000)


@dataclass
class FlakyBlobServer:
    blob: bytes
    cut_after: list[int | None] = field(default_factory=list)  # bytes to send per request, None = all
    ignore_range: bool = False
    require_header: tuple[str, str] | None = None
    expired_first: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        headers["_path"] = lines[0].split()[1]
        self.requests.append(headers)
        if self.require_header and headers.get(self.require_header[0].lower()) != self.require_header[1]:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden")
        elif self.expired_first and "fresh" not in headers["_path"]:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nConnection: close\r\n\r\nexpired")
        else:
            start = 0
            match = re.match(r"bytes=(\d+)-", headers.get("range", ""))
            if match and not self.ignore_range:
                start = int(match.group(1))
                body = self.blob[start:]
                status = f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{len(self.blob) - 1}/{len(self.blob)}\r\n"
            else:
                body = self.blob
                status = "HTTP/1.1 200 OK\r\n"
            limit = self.cut_after.pop(0) if self.cut_after else None
            writer.write(f"{status}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            writer.write(body if limit is None else body[:limit])
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/blob?Signature=secret-sig"


@pytest.fixture
async def blob_server() -> AsyncIterator[FlakyBlobServer]:
    state = FlakyBlobServer(BLOB)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()


async def _fetch(client: DingTalkClient, url: str, **kw: object) -> bytes:
    return b"".join([chunk async for chunk in client.download(url, **kw)])  # type: ignore[arg-type]


async def test_whole_download(blob_server: FlakyBlobServer) -> None:
    async with DingTalkClient(fast_config()) as c:
        assert await _fetch(c, blob_server.url) == BLOB


async def test_truncated_transfer_is_resumed_with_range(blob_server: FlakyBlobServer) -> None:
    blob_server.cut_after = [100_000, 50_000]
    async with DingTalkClient(fast_config()) as c:
        data = await _fetch(c, blob_server.url, headers={"x-oss-date": "d1"})
    assert hashlib.sha256(data).digest() == hashlib.sha256(BLOB).digest()
    assert [r.get("range") for r in blob_server.requests] == [None, "bytes=100000-", "bytes=150000-"]
    # the signed headers are sent on every request, resumed ones included
    assert all(r.get("x-oss-date") == "d1" for r in blob_server.requests)


async def test_server_ignoring_range_is_handled_by_skipping(blob_server: FlakyBlobServer) -> None:
    blob_server.cut_after = [70_000]
    blob_server.ignore_range = True
    async with DingTalkClient(fast_config()) as c:
        assert await _fetch(c, blob_server.url) == BLOB


async def test_size_mismatch_with_expected_size_is_an_error(blob_server: FlakyBlobServer) -> None:
    async with DingTalkClient(fast_config()) as c:
        with pytest.raises(DownloadError, match="differs"):
            await _fetch(c, blob_server.url, expected_size=len(BLOB) + 1)


async def test_endless_truncation_gives_up_without_leaking_the_signature(
    blob_server: FlakyBlobServer,
) -> None:
    blob_server.cut_after = [1000] * 20
    async with DingTalkClient(fast_config(download_attempts=3)) as c:
        with pytest.raises(DownloadError) as info:
            await _fetch(c, blob_server.url)
    assert "secret-sig" not in str(info.value)
    assert "3 attempts" in str(info.value)


async def test_missing_signed_header_is_refused(blob_server: FlakyBlobServer) -> None:
    blob_server.require_header = ("x-oss-signature", "abc")
    async with DingTalkClient(fast_config()) as c:
        with pytest.raises(DownloadError, match="403"):
            await _fetch(c, blob_server.url)
        assert await _fetch(c, blob_server.url, headers={"x-oss-signature": "abc"}) == BLOB


async def test_expired_url_is_refreshed(blob_server: FlakyBlobServer) -> None:
    blob_server.expired_first = True
    fresh_url = blob_server.url.replace("/blob", "/blob-fresh")

    async def refresh() -> tuple[str, dict[str, str]]:
        return fresh_url, {}

    async with DingTalkClient(fast_config()) as c:
        assert await _fetch(c, blob_server.url, refresh=refresh) == BLOB


async def test_unreachable_host_is_a_download_error() -> None:
    async with DingTalkClient(fast_config(download_attempts=2)) as c:
        with pytest.raises(DownloadError):
            await _fetch(c, "http://127.0.0.1:9/nothing")
