"""The demo job: the real product path, end to end, against the DingTalk emulator.

emulator (demo company, free loopback port) → init (a temporary home unless --home) → connect →
full backup → random mutations at the "source" → incremental backup → vault verify (reading every
pack) → a summary: counts per kind against the emulator's ground truth, time, vault size.

This module (with the tests) is the only product code that imports ``dingtalk_emulator``.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

# Piped output (CI logs, `make demo | tee`) gets a width that fits the summary tables; a
# terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 110)


DAY_MS = 86_400_000


def truth_items(base_url: str, kind: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base_url}/_emulator/truth", params={"kind": kind}, timeout=60)
    r.raise_for_status()
    return list(r.json()["items"])


def reachable_truth(base_url: str, kind: str, now_ms: float | None = None) -> set[str]:
    """The live ids of ``kind`` that the public API can reach (dingtalk-api.md's documented limits).

    The emulator's truth also holds records no API call returns: approval instances older than
    365 days (§4.2), completed todos older than ~180 days (§6.3), knowledge-base spaces with no
    node to reach them through, file spaces of groups without members or disbanded (§5.2), groups of
    removed departments (§3.4) and "my docs" of people who have left. A backup is complete when it
    holds every *reachable* record; what it captured before a record went out of reach stays in it.
    """
    now = now_ms if now_ms is not None else time.time() * 1000
    items = [i for i in truth_items(base_url, kind) if not i.get("deleted")]
    if kind == "approval":
        items = [i for i in items if i.get("createTime", now) >= now - 365 * DAY_MS + 2 * 3600_000]
    elif kind == "todo":
        items = [i for i in items if not i.get("isDone") or now - i.get("modifiedTime", now) < 179 * DAY_MS]
    elif kind == "group":
        # No API lists a standard org's groups (§3.4): a department group's chatid comes only from
        # its department (`dept_group_chat_id`), so once the department is removed its group (then
        # disbanded) is out of reach, e.g. one created and disbanded between two runs. Groups the app
        # created stay reachable through the chatids it keeps.
        live_depts = {str(d["id"]) for d in truth_items(base_url, "department") if not d.get("deleted")}
        items = [i for i in items if i.get("origin") != "dept" or str(i.get("deptId")) in live_depts]
    elif kind == "wiki_workspace":
        # "My docs" opens only as its owner (§5.2 mineWorkspaces): a person who has left cannot.
        active = _active_unionids(base_url)
        items = [i for i in items if i.get("type") != "PERSONAL" or i.get("owner") in active]
    if kind in ("drive_space", "file", "wiki_node", "doc"):
        closed = _unreachable_spaces(base_url)
        if kind == "file":
            items = [i for i in items if str(i["id"]).split("/")[0] not in closed]
        elif kind in ("wiki_node", "doc"):
            items = [i for i in items if str(i.get("spaceId")) not in closed]
        else:
            with_files = {
                str(f["id"]).split("/")[0] for f in truth_items(base_url, "file") if not f.get("deleted")
            }
            items = [
                i
                for i in items
                if (i.get("origin") != "wiki" or str(i["id"]) in with_files) and str(i["id"]) not in closed
            ]
    return {str(i["id"]) for i in items}


def _active_unionids(base_url: str) -> set[str]:
    return {
        str(u["unionid"]) for u in truth_items(base_url, "user") if not u.get("deleted") and u.get("unionid")
    }


def _unreachable_spaces(base_url: str) -> set[str]:
    """Storage spaces no API call can open: a group's file space is read as one of its members
    (§5.1), so a group without members keeps it closed, and a disbanded group's answers
    `conversationNotExist` (§5.2); "my docs" of a person who has left opens for nobody."""
    closed = {
        str(g["spaceId"])
        for g in truth_items(base_url, "group")
        if not g.get("deleted") and g.get("spaceId") and (not g.get("memberCount") or g.get("status") != 1)
    }
    active = _active_unionids(base_url)
    closed |= {
        str(w["spaceId"])
        for w in truth_items(base_url, "wiki_workspace")
        if not w.get("deleted")
        and w.get("type") == "PERSONAL"
        and w.get("owner") not in active
        and w.get("spaceId")
    }
    return closed


def _vault_size(vault: Any) -> int:
    return sum(info.size for info in vault.backend.list(""))


def run_demo(
    port: int = 0,
    *,
    home: Path | None = None,
    passphrase: str | None = None,
    limits: str = "realistic",
    mutations: int = 50,
    seed: int = 1,
) -> int:
    from dingtalk_emulator.config import EmulatorConfig
    from dingtalk_emulator.server import RunningEmulator
    from dingvault.backup.session import init_home, open_session
    from dingvault.cli.backup_cmd import print_summary
    from dingvault.config.cli_common import RichBackupProgress, backup_progress
    from dingvault.home import open_home
    from dingvault.vault import verify

    started = time.monotonic()
    temp_dir: str | None = None
    if home is None:
        temp_dir = tempfile.mkdtemp(prefix="dingvault-demo-")
        home = Path(temp_dir) / "home"
    if passphrase is None:
        # A throwaway passphrase for a throwaway home; it is never written anywhere.
        passphrase = secrets.token_urlsafe(18)
    emu = RunningEmulator(EmulatorConfig(port=port, profile="demo", seed=seed, limits=limits)).start()
    try:
        base = emu.base_url
        org = httpx.get(f"{base}/_emulator/org", timeout=30).json()
        console.rule(
            f"[bold]dingvault demo[/] — emulated DingTalk of {org.get('orgName', 'the demo company')} at {base}"
        )
        h = open_home(home)
        if not h.is_initialised():
            init_home(h, passphrase)
            console.print(
                f"1. [green]init[/]     home {h.path} (vault + catalog created; recovery key not shown in the demo)"
            )
        else:
            console.print(f"1. [green]init[/]     using the existing home {h.path}")
        # An app knows the group chats it created itself; the emulator's ground truth stands in for
        # that record here, so those groups' files are backed up too.
        groups = httpx.get(f"{base}/_emulator/truth", params={"kind": "group"}, timeout=30).json()["items"]
        known_chats = sorted({g["chatId"] for g in groups if g.get("origin") == "api" and g.get("chatId")})
        settings = h.load_settings()
        settings.backup.setdefault("collectors", {})["known_chat_ids"] = known_chats
        h.save_settings(settings)

        with open_session(h, passphrase) as s:
            report = asyncio.run(s.connect(org["appKey"], org["appSecret"], api_base=base, oapi_base=base))
            ok = sum(1 for v in report.values() if str(v) == "ok")
            console.print(
                f"2. [green]connect[/]  app {org['appKey']}: credentials valid; {ok}/{len(report)} families allowed"
            )

            console.print("3. [bold]full backup[/]")
            with backup_progress(console) as progress:
                full = asyncio.run(
                    s.backup("full", progress=RichBackupProgress(progress, s.expected_items()))
                )
            print_summary(full.to_dict())

            r = httpx.post(
                f"{base}/_emulator/mutate",
                json={"op": "random", "count": mutations, "seed": seed},
                timeout=60,
            )
            r.raise_for_status()
            console.print(
                f"4. [yellow]{mutations} random changes[/] made at the source (edits, new records, deletions)"
            )

            # Groups the mutations created through the API are known to the app as well.
            groups = truth_items(base, "group")
            s.settings.backup["collectors"]["known_chat_ids"] = sorted(
                {g["chatId"] for g in groups if g.get("origin") == "api" and g.get("chatId")}
            )
            console.print("5. [bold]incremental backup[/]")
            with backup_progress(console) as progress:
                inc = asyncio.run(
                    s.backup("incremental", progress=RichBackupProgress(progress, s.expected_items()))
                )
            print_summary(inc.to_dict())

            console.print("6. [bold]vault verify[/] (structure + every pack decrypted and checked)")
            report_v = verify(s.vault, read_data=True)
            status = "[green]OK[/]" if report_v.ok else f"[red]{len(report_v.errors)} problems[/]"
            console.print(f"   verify: {status}  {report_v.counters}")

            counts = s.catalog.counts_per_kind()
            table = Table(title="What the vault holds (after both runs) vs. the source")
            for col in (
                "kind",
                "at source",
                "API can reach",
                "live in backup",
                "deleted marked",
                "versions",
                "coverage",
            ):
                table.add_column(col, justify="left" if col == "kind" else "right")
            all_complete = True
            problems: list[tuple[str, list[str], list[str]]] = []
            for kind in sorted(counts):
                c = counts[kind]
                live = set(s.catalog.live_ids(kind))
                try:
                    at_source = {str(i["id"]) for i in truth_items(base, kind) if not i.get("deleted")}
                    reachable = reachable_truth(base, kind)
                except httpx.HTTPError:
                    table.add_row(kind, "?", "?", str(c.live), str(c.deleted), str(c.versions), "-")
                    continue
                # Complete: everything the API can reach is in the backup, and nothing the source
                # no longer has is still counted as live.
                ok = reachable <= live <= at_source
                all_complete = all_complete and ok
                # Rounded down, so one missing record never shows as 100%.
                pct = f"{100 * len(reachable & live) // len(reachable)}%" if reachable else "-"
                if not ok:
                    problems.append((kind, sorted(reachable - live)[:3], sorted(live - at_source)[:3]))
                table.add_row(
                    kind,
                    str(len(at_source)),
                    str(len(reachable)),
                    str(c.live),
                    str(c.deleted),
                    str(c.versions),
                    pct if ok else f"[red]{pct}[/]",
                )
            console.print(table)
            for kind, missing, extra in problems:
                if missing:
                    console.print(
                        f"[red]{kind}: reachable at the source but not in the backup, e.g. {missing}[/]"
                    )
                if extra:
                    console.print(f"[red]{kind}: live in the backup but gone at the source, e.g. {extra}[/]")
            size = _vault_size(s.vault)
            console.print(
                f"Total time {time.monotonic() - started:.1f} s; vault size {size / 1e6:.1f} MB "
                f"({len(s.vault.snapshots())} snapshots); home {h.path}"
                + (" (temporary, removed now)" if temp_dir else "")
            )
            healthy = report_v.ok and full.status == "ok" and inc.status == "ok" and all_complete
        return 0 if healthy else 1
    finally:
        emu.stop()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
