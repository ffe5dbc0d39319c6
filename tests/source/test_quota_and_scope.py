"""The monthly quota stops only the families that need quota; a scope narrows what is read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dingtalk_emulator.server import RunningEmulator, serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import build_collectors
from dingvault.source.errors import QuotaExhausted

from .emulator_support import client_for, live_ids, run


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    # The emulator enforces its quota only with realistic limits (so the client paces at 20/s).
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="realistic", monthly_quota=40))
    yield emu
    emu.stop()


async def test_quota_stops_approvals_and_reports_but_contacts_complete(emulator: RunningEmulator) -> None:
    async with client_for(emulator, rate_per_api=20) as client:
        result = await run(build_collectors(client, families=["contacts", "approvals", "reports"]))
        calls_after_quota = dict(client.calls)
    assert isinstance(result.errors.get("approvals"), QuotaExhausted)
    assert isinstance(result.errors.get("reports"), QuotaExhausted)
    assert "contacts" not in result.errors
    assert result.ids("user") == live_ids(emulator, "user")
    assert result.ids("resigned_user") == live_ids(emulator, "resigned_user")
    # Once the quota answer came, the client stopped spending calls on non-exempt APIs.
    assert calls_after_quota.get("/topapi/report/list", 0) <= 1


class OnlyUsers:
    """A scope selecting a few users (the engine's Scope offers the same protocol)."""

    def __init__(self, users: set[str]) -> None:
        self.users = users

    def includes_user(self, userid: str) -> bool:
        return userid in self.users

    def includes_dept(self, dept_id: object) -> bool:
        return True

    def includes_kind(self, kind: str) -> bool:
        return kind != "resigned_user"

    def includes_file(self, name: str, size: int | None) -> bool:
        return not name.endswith(".pdf")


async def test_scope_limits_people_based_families_and_file_downloads() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    try:
        async with client_for(emu) as client:
            everyone = await run(build_collectors(client, families=["contacts"]))
            chosen = set(sorted(everyone.ids("user"))[:5])
            scoped = await run(
                build_collectors(
                    client, families=["contacts", "approvals", "attendance", "calendar", "files"]
                ),
                scope=OnlyUsers(chosen),
            )
    finally:
        emu.stop()
    assert not scoped.errors
    # The org chart is always complete (scopes are resolved against it) ...
    assert scoped.ids("user") == everyone.ids("user")
    assert not scoped.ids("resigned_user")  # ... but excluded kinds are not read at all.
    approvals = scoped.of_kind("approval")
    assert approvals and {a.fields["owner"] for a in approvals} <= chosen
    attendance = scoped.of_kind("attendance")
    assert attendance and {a.fields["owner"] for a in attendance} <= chosen
    events = scoped.of_kind("calendar_event")
    unions = {u.fields["unionid"] for u in everyone.of_kind("user") if u.source_id in chosen}
    assert events and {e.source_id.split("/")[0] for e in events} <= unions
    files = scoped.of_kind("file")
    pdfs = [f for f in files if f.fields["name"].endswith(".pdf")]
    assert pdfs and all(not f.attachments for f in pdfs)  # metadata kept, content not downloaded
    assert any(f.attachments for f in files)
