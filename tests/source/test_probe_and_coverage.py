"""probe() reports per family what the granted scopes allow; coverage data and docs agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from dingtalk_emulator.server import serve_in_thread
from dingtalk_emulator.state import EmulatorConfig
from dingvault.source.collectors import COLLECTOR_CLASSES, FAMILIES
from dingvault.source.coverage import COVERAGE, NOT_CAPTURED, render_markdown
from dingvault.source.errors import AuthenticationError
from dingvault.source.items import KINDS
from dingvault.source.probe import probe

from .emulator_support import client_for

CONTACT_AND_APPROVAL_READ = {
    "qyapi_get_member",
    "qyapi_get_department_list",
    "Contact.Common.Read",
    "Workflow.Form.Read",
    "Workflow.Instance.Read",
}


async def test_probe_with_every_scope_is_ok_except_exclusive() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    try:
        async with client_for(emu) as client:
            report = await probe(client)
    finally:
        emu.stop()
    assert set(report) == set(FAMILIES)
    for family, result in report.items():
        if family == "exclusive":
            assert result.status == "unavailable" and "not available" in str(result)
        else:
            assert result.ok, (family, str(result))


async def test_probe_names_the_missing_scopes() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off", scopes=CONTACT_AND_APPROVAL_READ))
    try:
        async with client_for(emu) as client:
            report = await probe(client)
    finally:
        emu.stop()
    assert report["contacts"].ok
    assert report["approvals"].status == "missing_scopes"
    assert report["approvals"].missing_scopes == ["Workflow.Instance.Write"]
    assert "Drive.Space.Read" in report["files"].missing_scopes
    assert "Storage.DownloadInfo.Read" in report["files"].missing_scopes
    assert report["calendar"].missing_scopes == ["Calendar.Event.Read"]
    assert str(report["todo"]) == "missing scopes [Todo.Todo.Read]"
    assert report["reports"].missing_scopes == ["qyapi_report_query"]  # legacy 60011, from the table


async def test_probe_with_bad_credentials_raises() -> None:
    emu = serve_in_thread(EmulatorConfig(profile="demo", limits="off"))
    try:
        async with client_for(emu, app_secret="wrong") as client:
            with pytest.raises(AuthenticationError):
                await probe(client)
    finally:
        emu.stop()


def test_coverage_covers_every_family_and_kind() -> None:
    assert [c.family for c in COVERAGE] == list(FAMILIES)
    covered = [k for c in COVERAGE for k in c.kinds]
    assert sorted(covered) == sorted(KINDS)
    for entry, collector in zip(COVERAGE, COLLECTOR_CLASSES, strict=True):
        assert set(entry.kinds) == set(collector.kinds)
        assert entry.apis == collector.apis and entry.apis
        assert entry.captured and entry.not_available and entry.incremental
    assert any("group chats" in text for text in NOT_CAPTURED)


def test_docs_coverage_page_is_generated_from_the_data() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "coverage.md"
    assert page.read_text(encoding="utf-8") == render_markdown()
    assert "no public API returns chat history" in render_markdown()
