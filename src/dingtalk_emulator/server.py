"""The app factory: one Starlette app serving both "hosts" (api.dingtalk.com and oapi.dingtalk.com).

    app, state = create_app(EmulatorConfig(profile="demo", seed=1))
    uvicorn.run(app, port=...)          # or starlette.testclient.TestClient(app)

The connector gets the same base URL for its api and oapi bases. `state.base_url` must be set to
the bound address (the CLI and `serve_in_thread` do it) because signed download URLs are absolute.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from dingtalk_emulator import control
from dingtalk_emulator.api import FAMILY_MODULES
from dingtalk_emulator.company.org import Org, truth_sensitive
from dingtalk_emulator.config import profile_for
from dingtalk_emulator.envelope import api_error_response, legacy_error_response
from dingtalk_emulator.guard import Guard
from dingtalk_emulator.routing import install_segment_dispatch
from dingtalk_emulator.state import EmulatorConfig, EmulatorState
from dingtalk_emulator.stream import StreamHub
from dingtalk_emulator.tokens import TokenStore


def _family_modules() -> list[Any]:
    return [importlib.import_module(f"dingtalk_emulator.api.{name}") for name in FAMILY_MODULES]


async def _not_found(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the caller's API generation, never as a bare text page.

    Legacy: errcode 404 "请求的URI地址不存在"; new API: 404 `InvalidAction.NotFound` — both are what
    the platform is seen to answer elsewhere; the reference does not document them (uncertain).
    """
    status = getattr(exc, "status_code", 404)
    path = request.url.path
    if path.startswith("/v1.0/") or path.startswith("/v2.0/"):
        return api_error_response(
            status, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
        )
    if path.startswith("/_"):
        return PlainTextResponse("Not Found" if status == 404 else "Method Not Allowed", status_code=status)
    return legacy_error_response(404, "请求的URI地址不存在")


def create_app(config: EmulatorConfig, *, clock: Any = None) -> tuple[Any, EmulatorState]:
    state = EmulatorState(config=config)
    if clock is not None:
        state.clock = clock
    state.org = Org(config.seed, profile_for(config), state.clock())
    state.truth["sensitive"] = truth_sensitive
    state.tokens = TokenStore(lambda: state.clock())
    org = state.org
    state.hub = StreamHub(
        app_key=org.app_key, app_secret=org.app_secret, corp_id=org.corp_id, unified_app_id=org.unified_app_id
    )
    state.guard = Guard(
        limits=config.limits,
        faults=config.faults,
        seed=config.seed,
        monthly_quota=config.monthly_quota,
        on_token_fault=state.tokens.expire_all,
    )
    routes: list[BaseRoute] = []
    for module in _family_modules():
        module.register(state)
        routes.extend(module.routes(state))
    routes.extend(control.routes(state))
    routes.extend(state.hub.routes())
    routes.extend(state.guard.routes())
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    install_segment_dispatch(app.router)
    app.state.emulator = state
    control.check_state_dir(state)
    control.load_journal(state)  # --state DIR: replay the persisted mutation overlay
    return state.guard.wrap(app), state


def uvicorn_options() -> dict[str, Any]:
    """How uvicorn serves the emulator (CLI and `RunningEmulator` alike).

    No access log and no proxy-header rewriting: both cost CPU on every call and the emulator is
    only ever reached directly. Loop and HTTP parser stay on "auto" (uvloop/httptools when installed).
    """
    return {"log_level": "warning", "lifespan": "off", "access_log": False, "proxy_headers": False}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RunningEmulator:
    """A uvicorn server on a background thread (tests, the demo, benchmarks)."""

    def __init__(self, config: EmulatorConfig, *, clock: Any = None) -> None:
        import uvicorn

        if not config.port:
            config.port = free_port(config.host)
        self.app, self.state = create_app(config, clock=clock)
        self.state.base_url = f"http://{config.host}:{config.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=config.host, port=config.port, **uvicorn_options())
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dingtalk-emulator", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as e:  # uvicorn exits (SystemExit) when it cannot bind: report it in start()
            self.error = e

    @property
    def base_url(self) -> str:
        return self.state.base_url

    def start(self, timeout: float = 10.0) -> RunningEmulator:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                why = f" ({type(self.error).__name__}: {self.error})" if self.error else ""
                raise RuntimeError(f"emulator did not start on {self.base_url}{why}; is the port in use?")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(config: EmulatorConfig, **kw: Any) -> RunningEmulator:
    return RunningEmulator(config, **kw).start()
