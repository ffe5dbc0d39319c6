"""Calendar: changes made to a user's calendar before they leave are not lost.

Regression: the collector lists active users only, so an event created (or edited, or cancelled)
after a run by someone who then left was never captured — neither by the incremental nor by a
later full run. The collector now asks once more with the syncToken it kept for such a user.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dingtalk_emulator.server import RunningEmulator, serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import build_collectors
from dingvault.source.items import Mode

from .emulator_support import RunResult, client_for, run, truth


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off", seed=3))
    yield emu
    emu.stop()


def _mutate(emu: RunningEmulator, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{emu.base_url}/_emulator/mutate", json=body, timeout=30)
    answer.raise_for_status()
    return answer.json()


async def _calendar(emu: RunningEmulator, mode: Mode, cursors: dict | None = None) -> tuple[RunResult, int]:
    async with client_for(emu) as client:
        result = await run(build_collectors(client, families=("calendar",)), mode=mode, cursors=cursors)
        calls = sum(client.calls.values())
    assert result.error is None, result.error
    return result, calls


def _leaver(emu: RunningEmulator, full: RunResult) -> tuple[str, str, list[str]]:
    """A user with a kept syncToken and at least two events: (userid, unionId, their event ids)."""
    people = emu.state.org.people
    for user in people.users:
        events = sorted(sid for sid in full.ids("calendar_event") if sid.startswith(f"{user.unionid}/"))
        if len(events) >= 2 and full.cursors.get(("calendar", user.unionid), {}).get("syncToken"):
            return user.userid, user.unionid, events
    raise AssertionError("no user with two events")


@pytest.mark.parametrize("mode", ["incremental", "full"])
async def test_changes_before_a_user_leaves_are_captured(emulator: RunningEmulator, mode: Mode) -> None:
    full, _ = await _calendar(emulator, "full")
    userid, union, events = _leaver(emulator, full)
    created = _mutate(emulator, op="calendar.create", unionId=union)["eventId"]
    _mutate(emulator, op="calendar.update", unionId=union, eventId=events[0].split("/", 1)[1])
    _mutate(emulator, op="calendar.delete", unionId=union, eventId=events[1].split("/", 1)[1])
    _mutate(emulator, op="user.leave", userid=userid)
    # The truth still holds the departed user's calendar, the new event included.
    live = {t["id"]: t for t in truth(emulator, "calendar_event") if not t.get("deleted")}
    assert f"{union}/{created}" in live

    second, _ = await _calendar(emulator, mode, full.cursors)
    new = second.items.get(("calendar_event", f"{union}/{created}"))
    assert new is not None, "event created before the user left was missed"
    assert new.fields["owner"] == userid and new.fields["calendar_owner"] == union
    edited = second.items.get(("calendar_event", events[0]))
    assert edited is not None and edited.version_key != full.items[("calendar_event", events[0])].version_key
    assert edited.fields["title"] == live[events[0]]["summary"]
    assert ("calendar_event", events[1]) in second.deleted
    # Asked once: the cursor records the departure, and the next run leaves the user alone.
    assert second.cursors[("calendar", union)] == {"departed": True, "userid": userid}
    third, _ = await _calendar(emulator, "incremental", second.cursors)
    assert not {sid for _, sid in third.items if sid.startswith(f"{union}/")}
    assert not {sid for _, sid in third.deleted if sid.startswith(f"{union}/")}


async def test_a_departed_user_the_api_no_longer_knows_is_not_a_failure(emulator: RunningEmulator) -> None:
    full, _ = await _calendar(emulator, "full")
    _, union, _ = _leaver(emulator, full)
    cursors = dict(full.cursors)
    # A user unknown to the API (as DingTalk may answer for someone who left): refused, not an error.
    gone = "ZZunknownUnionIdiE"
    cursors[("calendar", gone)] = {**cursors[("calendar", union)], "userid": "0"}
    result, _ = await _calendar(emulator, "incremental", cursors)  # no IncompleteCollection
    assert result.cursors[("calendar", gone)] == {"departed": True, "userid": "0"}
    assert not {sid for _, sid in result.items if sid.startswith(f"{gone}/")}
