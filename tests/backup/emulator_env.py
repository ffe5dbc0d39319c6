"""Helpers for the acceptance tests: an emulated DingTalk on loopback and a dingvault home wired to it."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dingtalk_emulator.config import EmulatorConfig
from dingtalk_emulator.server import RunningEmulator
from dingvault.backup.payload import decode_version
from dingvault.backup.session import Session, init_home, open_session
from dingvault.backup.stats import RunStats
from dingvault.cli.demo_run import reachable_truth, truth_items
from dingvault.home import open_home
from dingvault.source.client import RetryPolicy
from dingvault.vault.keys import FAST_KDF_FOR_TESTS

PASSPHRASE = "correct horse battery staple 馬"

# Quick retries and ban waits, so fault tests take seconds, not minutes; no client-side pacing
# when the emulator's limits are off.
FAST_CLIENT = {
    "rate_per_api": 1000,
    "retry": RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.2, throttle_delay=0.02),
    "ban_default_wait": 0.2,
    "ban_wait_unit": 0.02,
}


def start_emulator(**config: Any) -> RunningEmulator:
    config.setdefault("profile", "demo")
    config.setdefault("limits", "off")
    return RunningEmulator(EmulatorConfig(**config)).start()


def control(emu: RunningEmulator, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, f"{emu.base_url}/_emulator/{path}", timeout=60, **kw)
    r.raise_for_status()
    return r.json()


def api_chat_ids(emu: RunningEmulator) -> list[str]:
    return sorted(
        {
            g["chatId"]
            for g in truth_items(emu.base_url, "group")
            if g.get("origin") == "api" and g.get("chatId")
        }
    )


@dataclass
class Installation:
    emu: RunningEmulator
    home_path: Path
    cache: Path

    def session(self) -> Session:
        return open_session(open_home(self.home_path), PASSPHRASE, cache_dir=self.cache)

    def refresh_known_chats(self) -> None:
        home = open_home(self.home_path)
        settings = home.load_settings()
        settings.backup.setdefault("collectors", {})["known_chat_ids"] = api_chat_ids(self.emu)
        home.save_settings(settings)

    def backup(self, mode: str, **kw: Any) -> RunStats:
        self.refresh_known_chats()
        with self.session() as s:
            return asyncio.run(s.backup(mode, client_overrides=FAST_CLIENT, **kw))


def install(emu: RunningEmulator, tmp_path: Path) -> Installation:
    home = open_home(tmp_path / "home")
    init_home(home, PASSPHRASE, kdf=FAST_KDF_FOR_TESTS)
    inst = Installation(emu, home.path, tmp_path / "cache")
    org = control(emu, "GET", "org")
    with inst.session() as s:
        asyncio.run(s.connect(org["appKey"], org["appSecret"], api_base=emu.base_url, oapi_base=emu.base_url))
    return inst


KINDS = (
    "department",
    "user",
    "resigned_user",
    "approval_template",
    "approval",
    "drive_space",
    "file",
    "wiki_workspace",
    "wiki_node",
    "doc",
    "attendance",
    "calendar_event",
    "todo",
    "report",
    "group",
)


def catalog_live(s: Session, kind: str) -> set[str]:
    return set(s.catalog.live_ids(kind))


def assert_complete(inst: Installation, s: Session) -> None:
    """Every reachable record of every kind is live in the catalog, and nothing else is."""
    problems = []
    for kind in KINDS:
        want = reachable_truth(inst.emu.base_url, kind)
        everything = {str(t["id"]) for t in truth_items(inst.emu.base_url, kind) if not t.get("deleted")}
        got = catalog_live(s, kind)
        missing = want - got
        if missing:
            problems.append(f"{kind}: {len(missing)} reachable records missing, e.g. {sorted(missing)[:3]}")
        extra = got - everything
        if extra:
            problems.append(
                f"{kind}: {len(extra)} records live in the backup but not at the source: {sorted(extra)[:3]}"
            )
    assert not problems, "; ".join(problems)


def stored_version(s: Session, kind: str, source_id: str) -> dict[str, Any]:
    info = s.catalog.get_item(kind, source_id)
    assert info is not None, f"{kind}/{source_id} not in the catalog"
    (latest,) = [v for v in s.catalog.item_versions(kind, source_id) if v.id == info.latest_version_id]
    return decode_version(s.vault.get_blob(bytes.fromhex(latest.content_hash)))


def attachment_sha256(s: Session, attachment: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    with s.vault.open_stream([bytes.fromhex(b) for b in attachment["blobs"]]) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def assert_contents_identical(inst: Installation, s: Session) -> int:
    """File contents and approval attachments read back from the vault equal the source's bytes."""
    checked = 0
    for t in truth_items(inst.emu.base_url, "file"):
        if t.get("deleted") or t["type"] != "FILE" or t.get("storageDriver") == "ALIDOC":
            continue
        doc = stored_version(s, "file", str(t["id"]))
        assert doc["attachments"], f"file {t['id']} stored without its content"
        assert attachment_sha256(s, doc["attachments"][0]) == t["sha256"], f"file {t['id']} content differs"
        checked += 1
    reachable = reachable_truth(inst.emu.base_url, "approval")
    for t in truth_items(inst.emu.base_url, "approval"):
        if str(t["id"]) not in reachable:
            continue
        doc = stored_version(s, "approval", str(t["id"]))
        by_file = {a["ref"].get("fileId"): a for a in doc["attachments"]}
        for expected in t.get("attachments", []):
            stored = by_file.get(expected["fileId"])
            assert stored is not None, f"approval {t['id']}: attachment {expected['fileId']} missing"
            assert attachment_sha256(s, stored) == expected["sha256"]
            checked += 1
    return checked


def version_counts(s: Session) -> dict[tuple[str, str], int]:
    return {
        (kind, sid): len(s.catalog.item_versions(kind, sid))
        for kind in KINDS
        for sid in s.catalog.live_ids(kind)
    }
