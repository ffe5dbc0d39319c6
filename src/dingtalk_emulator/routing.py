"""Route lookup by leading path segments, for the router and the guard.

Starlette's router tries every route's regex in order (about 150 here) on each request, and the
guard's template lookup did the same for every path it had not seen (ids make most paths new). Both
now try only the routes whose literal leading segments can agree with the path's: the same routes in
the same order, so the first full match, the first partial match (405) and the no-match fallbacks
(redirect, 404) are exactly Starlette's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Host, Match, Mount, Router

DEPTH = 2  # leading segments used as the key ("/v1.0/storage/...")
CACHE_LIMIT = 4096  # keys are mostly fixed; unknown paths (fuzzing) must not grow the cache forever


def literal_segments(path: str) -> tuple[str, ...] | None:
    """The route path's leading segments that hold no parameter (at most DEPTH); None: matches anywhere."""
    if not path.startswith("/"):
        return None
    out: list[str] = []
    for seg in path[1:].split("/")[:DEPTH]:
        if "{" in seg:
            break
        out.append(seg)
    return tuple(out)


def path_key(path: str) -> tuple[str, ...]:
    return tuple(path[1:].split("/", DEPTH)[:DEPTH])


def _may_match(literal: tuple[str, ...] | None, key: tuple[str, ...]) -> bool:
    if literal is None:
        return True
    return all(i >= len(key) or seg == key[i] for i, seg in enumerate(literal))


class SegmentIndex:
    """Candidates for a path: the items whose literal leading segments agree with it, in order."""

    def __init__(self, items: Sequence[tuple[tuple[str, ...] | None, Any]]) -> None:
        self._items = list(items)
        self._cache: dict[tuple[str, ...], list[Any]] = {}

    def candidates(self, path: str) -> list[Any]:
        key = path_key(path)
        found = self._cache.get(key)
        if found is None:
            found = [item for literal, item in self._items if _may_match(literal, key)]
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found


def _route_literal(route: BaseRoute) -> tuple[str, ...] | None:
    if isinstance(route, Host):
        return None
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    if isinstance(route, Mount):
        # A mount matches "<path>/..." (and "<path>" itself redirects): only its own segments count.
        return literal_segments(path) if path else None
    return literal_segments(path)


def install_segment_dispatch(router: Router) -> None:
    """Make `router` try only the candidate routes of each path (same order, same results)."""
    index = SegmentIndex([(_route_literal(r), r) for r in router.routes])
    full_scan = router.middleware_stack  # Starlette's own loop: redirects and the 404 default

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("root_path"):
            await full_scan(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = router
        partial = partial_scope = None
        for route in index.candidates(scope["path"]):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:
            scope["route"] = partial
            scope.update(partial_scope or {})
            await partial.handle(scope, receive, send)
            return
        await full_scan(scope, receive, send)  # nothing here: Starlette decides (redirect or 404)

    router.middleware_stack = dispatch
