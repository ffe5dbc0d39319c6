"""Helpers for the connector's tests against the DingTalk emulator (over loopback)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dingvault.source.client import ClientConfig, DingTalkClient, RetryPolicy
from dingvault.source.collectors.base import Collector
from dingvault.source.items import AllScope, Batch, Item, Mode


def client_for(emulator: Any, **overrides: Any) -> DingTalkClient:
    org = emulator.state.org
    values: dict[str, Any] = {
        "app_key": org.app_key,
        "app_secret": org.app_secret,
        "api_base": emulator.base_url,
        "oapi_base": emulator.base_url,
        "rate_per_api": 1000,
        "retry": RetryPolicy(
            max_attempts=8, base_delay=0.01, max_delay=0.2, throttle_delay=0.05, qpm_delay=0.05
        ),
        "ban_default_wait": 0.2,
        "ban_wait_unit": 0.02,
    }
    values.update(overrides)
    return DingTalkClient(ClientConfig(**values))


def truth(emulator: Any, kind: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{emulator.base_url}/_emulator/truth", params={"kind": kind}, timeout=30)
    response.raise_for_status()
    return response.json()["items"]


def api_group_chat_ids(emulator: Any) -> list[str]:
    """Chat ids of the groups created through the API (the ones an app can be told about)."""
    return [
        g["chatId"] for g in truth(emulator, "group") if g.get("origin") == "api" and not g.get("deleted")
    ]


def live_ids(emulator: Any, kind: str) -> set[str]:
    return {t["id"] for t in truth(emulator, kind) if not t.get("deleted")}


@dataclass
class RunResult:
    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    cursors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    complete: set[tuple[str, str]] = field(default_factory=set)
    error: BaseException | None = None
    errors: dict[str, BaseException] = field(default_factory=dict)  # collector name -> its failure

    def ids(self, kind: str) -> set[str]:
        return {sid for k, sid in self.items if k == kind}

    def of_kind(self, kind: str) -> list[Item]:
        return [item for (k, _), item in self.items.items() if k == kind]


async def run(
    collectors: Iterable[Collector],
    mode: Mode = "full",
    cursors: dict[tuple[str, str], dict[str, Any]] | None = None,
    scope: Any = None,
) -> RunResult:
    """Drive collectors like the engine does: gather items, apply cursors in batch order."""
    result = RunResult(cursors=dict(cursors or {}))
    for collector in collectors:
        try:
            async for batch in collector.collect(
                mode=mode, cursors=dict(cursors or {}), scope=scope or AllScope()
            ):
                result.batches.append(batch)
                for item in batch.items:
                    result.items[item.key] = item
                if batch.cursor is not None:
                    result.cursors[batch.cursor.key] = batch.cursor.state
                for sid in batch.deleted or ():
                    kind = batch.deleted_kind or (batch.items[0].kind if batch.items else collector.kind)
                    result.deleted.add((kind, sid))
                for listing in batch.complete or ():
                    result.complete.add((listing.kind, listing.container))
        except Exception as exc:  # recorded for the test to assert on; the other collectors go on
            result.error = exc
            result.errors[collector.name] = exc
    return result


async def fetch_all(collector: Collector, item: Item) -> list[bytes]:
    out = []
    for ref in item.attachments:
        out.append(b"".join([chunk async for chunk in collector.open_attachment(ref)]))
    return out
