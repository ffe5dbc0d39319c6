"""The shortcuts that keep the emulator's CPU per call low give exactly what the plain way gives:
the route Starlette's full scan would pick, the template the guard would count, the values the
`random` module would draw, the text `datetime` would format."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest
from starlette.routing import Match, Route

from dingtalk_emulator.company import seeding as company_seeding
from dingtalk_emulator.company.sensitive import bank_card, hkid, macau_id, mainland_id
from dingtalk_emulator.files import signing
from dingtalk_emulator.files.seeding import randbelow_rounds, rng
from dingtalk_emulator.guard import UNMATCHED, _find_routes
from dingtalk_emulator.routing import SegmentIndex, literal_segments
from dingtalk_emulator.server import create_app
from dingtalk_emulator.state import EmulatorConfig


@pytest.fixture(scope="module")
def app_and_routes() -> tuple[Any, list[Route]]:
    app, _state = create_app(EmulatorConfig(profile="demo", seed=1, limits="off"))
    return app, [r for r in _find_routes(app._app) if isinstance(r, Route)]  # the guard wraps the app


def _concrete(template: str) -> str:
    return template.replace("{path:path}", "a/b").replace("{", "x").replace("}", "")


def _full_scan(routes: list[Route], method: str, path: str) -> tuple[Route | None, Route | None]:
    """(first full match, first partial match) the way Starlette's router looks."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, partial
        if match is Match.PARTIAL and partial is None:
            partial = route
    return None, partial


def _indexed(routes: list[Route], method: str, path: str) -> tuple[Route | None, Route | None]:
    index = SegmentIndex([(literal_segments(r.path), r) for r in routes])
    return _full_scan(index.candidates(path), method, path)


def test_segment_index_picks_the_route_a_full_scan_picks(app_and_routes: tuple[Any, list[Route]]) -> None:
    _app, routes = app_and_routes
    paths = [_concrete(r.path) for r in routes]
    paths += ["/", "/v1.0", "/v1.0/", "/v1.0/nothing", "/topapi/nothing/here", "/_blob/x", "/a//b", "/x" * 5]
    checked = 0
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            full, partial = _full_scan(routes, method, path)
            assert _indexed(routes, method, path) == (full, partial), (method, path)
            checked += full is not None
    assert checked >= len(routes)  # every route was found by its own path at least once


def test_router_answers_like_the_full_scan_for_unknown_paths_and_methods(
    app_and_routes: tuple[Any, list[Route]],
) -> None:
    from starlette.testclient import TestClient

    app, _routes = app_and_routes
    with TestClient(app) as http:
        wrong_method = http.delete("/v1.0/workflow/processInstances")  # a route exists for GET: 405 path
        assert wrong_method.status_code == 405
        assert wrong_method.json()["code"] == "InvalidAction.NotFound"
        unknown = http.get("/v1.0/no/such/api")
        assert unknown.status_code == 404 and unknown.json()["code"] == "InvalidAction.NotFound"
        legacy = http.post("/topapi/no/such/api")
        assert legacy.status_code == 200 and legacy.json()["errcode"] == 404


def test_guard_templates_match_the_first_matching_route(app_and_routes: tuple[Any, list[Route]]) -> None:
    app, routes = app_and_routes
    for route in routes:
        path = _concrete(route.path)
        expected = next(r.path for r in routes if r.path_regex.match(path))
        assert app.template_of(path) == expected, path
    assert app.template_of("/v1.0/no/such/api") == UNMATCHED


@pytest.mark.parametrize("bounds", [(499, 99899, 37), (98, 49950, 5), (1, 2, 3), (2**31, 2**32 - 1, 10)])
def test_randbelow_rounds_draws_what_randrange_and_choice_draw(bounds: tuple[int, ...]) -> None:
    for seed in range(50):
        expected_rng, fast_rng = rng("t", seed), rng("t", seed)
        expected = [[expected_rng.randrange(n) for n in bounds] for _ in range(300)]
        assert randbelow_rounds(fast_rng, bounds, 300) == expected
    items = list("abcdefg")
    a, b = random.Random(7), random.Random(7)
    assert [items.index(a.choice(items)) for _ in range(50)] == [
        row[0] for row in randbelow_rounds(b, (7,), 50)
    ]
    with pytest.raises(ValueError):
        randbelow_rounds(random.Random(1), (0,), 1)


def test_identity_numbers_draw_the_same_digits_as_randrange() -> None:
    def digits(r: random.Random, n: int) -> str:
        return "".join(str(r.randrange(10)) for _ in range(n))

    for seed in range(300):
        r = random.Random(seed)
        body = str(r.choice((1, 5, 7))) + digits(r, 6)
        assert macau_id(random.Random(seed)) == f"{body}({r.randrange(10)})"
        r = random.Random(seed)
        prefix = r.choice("ACDEGHKMPRVWYZ")
        assert hkid(random.Random(seed)).startswith(prefix + digits(r, 6))
        r = random.Random(seed)
        card_prefix = r.choice(("62", "4", "5"))
        assert bank_card(random.Random(seed))[:-1] == card_prefix + digits(r, 15 - len(card_prefix))
        assert len(mainland_id(random.Random(seed))) == 18


def test_timestamps_format_like_datetime() -> None:
    r = random.Random(11)
    samples = [r.randrange(0, 4_000_000_000_000) for _ in range(20_000)]
    edges = [0, 999, 1000, 59_999, 60_000, 86_399_999, 86_400_000, 57_599_999, 57_600_000]
    for ms in samples + edges + [s // 1_800_000 * 1_800_000 for s in samples[:2000]]:
        utc = datetime.fromtimestamp(ms / 1000, UTC)
        local = datetime.fromtimestamp(ms / 1000, company_seeding.MACAU_TZ)
        assert company_seeding.iso_minutes(ms) == utc.strftime("%Y-%m-%dT%H:%MZ")
        assert company_seeding.iso_seconds(ms) == utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert company_seeding.local_datetime(ms) == local.strftime("%Y-%m-%d %H:%M:%S")
        assert company_seeding.local_iso(ms) == local.isoformat()
    fractional = 1_795_881_600_000.25
    assert (
        company_seeding.local_iso(fractional)
        == datetime.fromtimestamp(fractional / 1000, company_seeding.MACAU_TZ).isoformat()
    )


def test_http_date_is_formatdate() -> None:
    r = random.Random(3)
    for _ in range(20_000):
        t = int(r.uniform(1.7e9, 1.8e9)) + r.choice((0.0, 0.5, 0.999_999_4, 0.999_999_6, 0.999_999))
        assert signing.http_date(t) == formatdate(t, usegmt=True), t


@pytest.mark.parametrize("size", [1, 70_000, (2 << 20) + 12_345, (5 << 20) + 1])
def test_downloads_send_the_parts_bytes_whole_or_streamed(size: int) -> None:
    """Small downloads go out as one body, big ones stream in ~1 MB messages: the same bytes."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from dingtalk_emulator.api.storage import WHOLE_BODY_LIMIT, range_response
    from dingtalk_emulator.files.blob import Lazy, Raw, Seq, read_all

    def produce() -> Any:
        for i in range(0, size, 65_536):
            yield bytes([i // 65_536 % 251]) * min(65_536, size - i)

    part = Seq([Raw(b"head"), Lazy(size, produce), Raw(b"tail")])
    data = read_all(part)

    async def endpoint(request: Any) -> Any:
        return range_response(request, part, "application/octet-stream")

    app = Starlette(routes=[Route("/f", endpoint)])
    with TestClient(app) as http:
        whole = http.get("/f")
        assert whole.status_code == 200 and whole.content == data
        assert int(whole.headers["content-length"]) == len(data)
        start, end = len(data) // 3, len(data) // 3 + 1_000_000
        ranged = http.get("/f", headers={"Range": f"bytes={start}-{end}"})
        assert ranged.status_code == 206 and ranged.content == data[start : end + 1]
        assert ranged.headers["content-range"] == f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
    assert (len(data) > WHOLE_BODY_LIMIT) == (size > 2 << 20)  # both paths are exercised
