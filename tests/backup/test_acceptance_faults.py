"""Acceptance: faults at the source (throttling, 5xx, token expiry, an IP ban, truncated downloads) and
hostile input (names with ../, NUL, RTL overrides, 300 characters; malformed JSON; HTML pages) — the
backup still completes with every item, stores the hostile names verbatim and safely, and reports."""

from __future__ import annotations

import unicodedata

from .emulator_env import (
    assert_complete,
    assert_contents_identical,
    control,
    install,
    start_emulator,
    stored_version,
)

HOSTILE_NAMES = [
    "../../etc/passwd.txt",
    "a\x00b.txt",
    "invoice\u202etxt.exe.txt",
    "長" * 300 + ".txt",
    "..",
    "CON.txt",
]


def test_backup_with_faults_completes_with_every_item(tmp_path):
    emu = start_emulator()
    try:
        inst = install(emu, tmp_path)
        control(
            emu,
            "PUT",
            "faults",
            json={
                "throttle": 0.1,
                "5xx": 0.02,
                "truncate": 0.05,
                "token_expire_after": 1500,
                "ban_once_after": 700,
                "seed": 5,
            },
        )
        stats = inst.backup("full")
        injected = control(emu, "GET", "stats")
        control(emu, "PUT", "faults", json={})
        assert stats.status == "ok", (stats.family_failures, stats.item_failures[:3])
        # the faults really happened, and the client retried through them
        assert stats.api_retries > 50
        assert any("Throttled" in k or "90018" in k or "QpsLimit" in k for k in stats.api_errors), (
            stats.api_errors
        )
        assert injected, "emulator stats available"
        with inst.session() as s:
            assert_complete(inst, s)
            assert assert_contents_identical(inst, s) > 100
    finally:
        emu.stop()


def _is_safe(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and name not in (".", "..")
        and len(name.encode()) <= 255
        and not any(unicodedata.category(c) in ("Cf", "Cc") for c in name)
    )


def test_hostile_names_and_garbled_answers_are_stored_safely_and_reported(tmp_path):
    emu = start_emulator()
    try:
        uploaded = []
        for i, name in enumerate(HOSTILE_NAMES):
            r = control(
                emu, "POST", "mutate", json={"op": "file.upload", "name": name, "extension": "txt", "rand": i}
            )
            uploaded.append((f"{r['spaceId']}/{r['dentryId']}", r["name"]))
        inst = install(emu, tmp_path)
        control(emu, "PUT", "faults", json={"malformed": 0.03, "html": 0.03, "seed": 9})
        stats = inst.backup("full")
        control(emu, "PUT", "faults", json={})
        assert stats.status == "ok", (stats.family_failures, stats.item_failures[:3])
        # the garbled answers were met, retried, and are in the run's report
        assert stats.api_retries > 10
        assert any("BadResponse" in k for k in stats.api_errors), stats.api_errors
        with inst.session() as s:
            assert_complete(inst, s)
            assert_contents_identical(inst, s)
            for source_id, name in uploaded:
                doc = stored_version(s, "file", source_id)
                # the legal original keeps the name exactly as the API gave it...
                assert name in str(doc["raw"]) or doc["fields"].get("name") == name
                (att, *_) = doc["attachments"]
                assert att["name"] == name
                # ...and any name used on a filesystem is a safe one
                assert _is_safe(att["safe_name"]), repr(att["safe_name"])
            run = s.catalog.list_runs(limit=1)[0]
            assert run.status == "succeeded" and run.stats.get("api_errors")
    finally:
        emu.stop()
