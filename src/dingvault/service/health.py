"""The service's HTTP endpoints: ``/healthz`` (JSON) and ``/metrics`` (Prometheus text format).

Served by uvicorn inside the service's own event loop (no second process, no thread); bind it to
loopback unless a reverse proxy or the Prometheus scraper sits elsewhere. ``/healthz`` answers
200 with ``"status": "ok"`` or ``"degraded"`` (and the reasons) while the service runs, and 503
while it starts or stops - what a load balancer or systemd's watchdog script wants to know.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def make_app(health: Callable[[], dict[str, Any]], metrics: Callable[[], bytes]) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        report = await asyncio.to_thread(health)
        code = 200 if report.get("status") in ("ok", "degraded") else 503
        return JSONResponse(report, status_code=code)

    async def metrics_endpoint(request: Request) -> Response:
        body = await asyncio.to_thread(metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_endpoint)])


class HealthServer:
    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        # The service handles SIGTERM/SIGINT itself (graceful shutdown of runs first).
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()  # a failed bind: raise it here, clearly
                raise OSError("the health endpoint could not start")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return 0

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
