"""The control API under `/_emulator/` (never under DingTalk paths).

    GET  /_emulator/org[?counts=false]          credentials, base URLs, profile, counts of every kind
    GET  /_emulator/truth?kind=K[&format=jsonl] {"kind","count","items":[{"id",...}]} or JSON lines
    POST /_emulator/mutate {"op": "...", ...}   one mutation via state.mutations; {"op":"random","count","seed"}
    POST /_emulator/tokens/expire               invalidate every issued token now
    POST /_emulator/clock {"advanceSeconds": N} move the emulator's clock forward (token expiry tests)

With `--state DIR`, every applied mutation is appended to `DIR/mutations.jsonl` and replayed at start.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from dingtalk_emulator.envelope import KNOWN_SCOPES, dumps, json_response
from dingtalk_emulator.state import EmulatorState, MutationError

log = logging.getLogger("dingtalk_emulator.control")
JOURNAL = "mutations.jsonl"


def count_kind(state: EmulatorState, kind: str) -> int:
    if kind in state.counts:
        return state.counts[kind](state)
    return sum(1 for _ in state.truth[kind](state))


def org_info(state: EmulatorState, with_counts: bool = True) -> dict[str, Any]:
    org = state.org
    info = {
        **org.credentials(),
        "orgName": org.name,
        "apiBase": state.base_url,
        "oapiBase": state.base_url,
        "profile": state.config.profile,
        "seed": state.config.seed,
        "exclusive": state.config.exclusive,
        "anchorDay": org.anchor_ms,
        "adminUserId": org.people.admin.userid,
        "scopes": sorted(state.config.scopes) if state.config.scopes is not None else sorted(KNOWN_SCOPES),
    }
    if with_counts:
        info["counts"] = {
            kind: count_kind(state, kind) for kind in sorted(state.truth) if kind != "sensitive"
        }
    return info


# -- mutations ---------------------------------------------------------------------------------


def _journal_path(state: EmulatorState) -> Path | None:
    return Path(state.config.state_dir) / JOURNAL if state.config.state_dir else None


def _identity(state: EmulatorState) -> dict[str, Any]:
    return {"seed": state.config.seed, "profile": state.config.profile}


def _append_journal(state: EmulatorState, op: str, params: dict[str, Any], at_ms: int) -> None:
    path = _journal_path(state)
    if path is None:
        return
    line = dumps({"op": op, "params": params, "at": at_ms}) + b"\n"
    if not path.exists() or path.stat().st_size == 0:
        # The first line says which company the overlay belongs to (checked at load).
        line = dumps({"header": _identity(state)}) + b"\n" + line
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())  # an acknowledged mutation survives a crash


class JournalError(RuntimeError):
    """The state directory could not be written: the mutation is live but would not survive a restart."""


def check_state_dir(state: EmulatorState) -> None:
    """Fail at start-up (not at the first mutation) when --state DIR is unusable or another company's."""
    if not state.config.state_dir:
        return
    directory = Path(state.config.state_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--state {directory}: cannot create the directory: {e}") from e
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise ValueError(f"--state {directory}: not a writable directory")
    path = directory / JOURNAL
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            first = f.readline()
        try:
            header = orjson.loads(first).get("header")
        except (orjson.JSONDecodeError, AttributeError):
            header = None
        if header is not None and header != _identity(state):
            raise ValueError(
                f"--state {directory} holds mutations of seed {header.get('seed')} profile {header.get('profile')!r}, "
                f"not seed {state.config.seed} profile {state.config.profile!r}"
            )


def apply(state: EmulatorState, op: str, params: dict[str, Any], *, journal: bool = True) -> dict[str, Any]:
    """Run one concrete mutation; raise MutationError for unknown ops or bad params."""
    handler = state.mutations.get(op)
    if handler is None:
        raise MutationError(f"unknown op {op!r}; known: {', '.join(sorted(state.mutations))}")
    at = state.now_ms()
    try:
        result = handler(state, dict(params))
    except MutationError:
        raise
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise MutationError(f"{op}: {e}") from e
    if journal:
        try:
            _append_journal(state, op, params, at)
        except OSError as e:
            raise JournalError(f"{op} was applied in memory but could not be persisted: {e}") from e
    return {"op": op, **result}


def apply_random(state: EmulatorState, count: int, seed: int) -> list[dict[str, Any]]:
    """Pick `count` ops across every registered handler (all families), deterministically from `seed`."""
    ops = sorted(state.mutations)
    r = random.Random(seed)
    results: list[dict[str, Any]] = []
    for _ in range(count):
        op = r.choice(ops)
        params = {"rand": r.randrange(2**31)}
        try:
            results.append(apply(state, op, params))
        except MutationError as e:
            # A random pick can be impossible (e.g. nothing left to finish); say so, keep going.
            results.append({"op": op, "skipped": str(e)})
    return results


def load_journal(state: EmulatorState) -> int:
    path = _journal_path(state)
    if path is None or not path.exists():
        return 0
    real_clock = state.clock
    # Replayed mutations happened before the restart: their events were pushed then, so they must
    # not be queued again for clients that connect now.
    real_publish = state.hub.publish_event
    state.hub.publish_event = lambda event_type, data: ""
    replayed = 0
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    # A torn last line from a crash mid-write: everything before it is intact.
                    log.warning("%s:%d: unreadable journal line ignored", path, lineno)
                    continue
                if "header" in entry:
                    continue
                at = entry["at"] / 1000
                state.clock = lambda at=at: at
                try:
                    apply(state, entry["op"], entry["params"], journal=False)
                except MutationError as e:
                    log.warning("%s:%d: replay of %s failed: %s", path, lineno, entry["op"], e)
                    continue
                replayed += 1
    finally:
        state.clock = real_clock
        state.hub.publish_event = real_publish
    return replayed


# -- endpoints ---------------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def routes(state: EmulatorState) -> list[Route]:
    async def org(request: Request) -> Response:
        # ?counts=false skips counting (some kinds are counted by walking them: slow on big profiles).
        return json_response(org_info(state, request.query_params.get("counts", "true") != "false"))

    async def truth(request: Request) -> Response:
        kind = request.query_params.get("kind", "")
        if kind not in state.truth:
            return json_response(
                {"error": f"unknown kind {kind!r}", "kinds": sorted(state.truth)}, status=404
            )
        provider = state.truth[kind]
        if request.query_params.get("format") == "jsonl":

            def lines() -> Iterator[bytes]:
                batch: list[bytes] = []
                for item in provider(state):
                    batch.append(dumps(item))
                    if len(batch) >= 500:
                        yield b"\n".join(batch) + b"\n"
                        batch = []
                if batch:
                    yield b"\n".join(batch) + b"\n"

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        # Big kinds take seconds to walk: keep the event loop (and the Stream hub) responsive.
        items = await run_in_threadpool(lambda: list(provider(state)))
        return json_response({"kind": kind, "count": len(items), "items": items})

    async def mutate(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except (ValueError, orjson.JSONDecodeError) as e:
            return json_response({"error": f"bad JSON body: {e}"}, status=400)
        op = body.pop("op", None)
        if not isinstance(op, str):
            return json_response(
                {"error": "missing 'op'", "ops": sorted(state.mutations) + ["random"]}, status=400
            )
        try:
            if op == "random":
                count, seed = int(body.get("count", 1)), int(body.get("seed", 0))
                if not 0 < count <= 100_000:
                    raise MutationError("count must be 1..100000")
                return json_response({"op": "random", "results": apply_random(state, count, seed)})
            return json_response(apply(state, op, body))
        except MutationError as e:
            return json_response({"error": str(e)}, status=400)
        except JournalError as e:
            return json_response({"error": str(e)}, status=507)

    async def expire_tokens(request: Request) -> Response:
        state.tokens.expire_all()
        return json_response({"expired": True})

    async def clock(request: Request) -> Response:
        try:
            body = await _json_body(request)
            seconds = float(body.get("advanceSeconds", 0))
        except (ValueError, TypeError, orjson.JSONDecodeError) as e:
            return json_response({"error": str(e)}, status=400)
        if seconds < 0:
            return json_response({"error": "the clock only moves forward"}, status=400)
        advance = getattr(state.clock, "advance", None)
        if advance is None:
            return json_response({"error": "this emulator's clock is fixed by its host"}, status=409)
        advance(seconds)
        return json_response({"now": state.now_ms()})

    return [
        Route("/_emulator/org", org, methods=["GET"]),
        Route("/_emulator/truth", truth, methods=["GET"]),
        Route("/_emulator/mutate", mutate, methods=["POST"]),
        Route("/_emulator/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_emulator/clock", clock, methods=["POST"]),
    ]


__all__ = ["apply", "apply_random", "count_kind", "load_journal", "org_info", "routes"]
