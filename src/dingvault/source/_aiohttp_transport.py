"""An httpx transport that sends requests with aiohttp.

httpx stays the client the rest of the connector sees (requests, responses, exceptions, `respx`
mocks); aiohttp underneath parses HTTP in C and keeps one connection pool without per-request
bookkeeping, which halves the client's CPU per request against httpx's pure-Python transport
(`bench/client_transport.py`). The adapter is small and ours rather than a dependency's because
the connector relies on three things an off-the-shelf adapter does not promise:

* the URL goes out exactly as httpx encoded it. Content URLs are pre-signed (OSS signatures in
  the query, §4.4/§5.4), and aiohttp's default re-quoting would rewrite e.g. `%2f` or `%7E`;
* every aiohttp failure, also in the middle of a body, surfaces as an `httpx.TransportError`, which
  the client retries and the downloader resumes with `Range`;
* bodies are read in large chunks, so a big download costs few Python steps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
import yarl

# Body chunks handed to httpx: large, so that a download of many megabytes is a few hundred steps.
CHUNK_SIZE = 256 * 1024


@contextmanager
def httpx_errors() -> Iterator[None]:
    """aiohttp's exceptions as the httpx transport errors the connector already handles."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except aiohttp.ClientPayloadError as exc:  # body cut short or garbled
        raise httpx.ReadError(str(exc)) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise httpx.NetworkError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read whole; closed otherwise (aiohttp decides).
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one `aiohttp.ClientSession`, made on the first request (aiohttp
    wants it made inside the running event loop)."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        self._make_session = session
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._make_session()
        timeout = request.extensions.get("timeout", {})
        data: bytes | httpx.AsyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload: aiohttp chunks it itself
            data = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)
        with httpx_errors():
            response = await self._session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # as httpx encoded it, byte for byte
                headers=request.headers,
                data=data,
                allow_redirects=False,  # httpx follows redirects itself
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
