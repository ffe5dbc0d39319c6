"""The organisation: credentials, the start-day anchor, the people, and each family's lazy model.

Families attach their models in their `register(state)` (e.g. `state.org.approvals`), so this module
knows nothing about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dingtalk_emulator.company.people import People
from dingtalk_emulator.company.seeding import b62id, h64, hexid, start_of_day_ms
from dingtalk_emulator.config import Profile


class Org:
    def __init__(self, seed: int, profile: Profile, started_at: float) -> None:
        self.seed = seed
        self.profile = profile
        # Every generated timestamp is relative to this midnight (Macau time), so window rules
        # (120/365 days, 7 days, ...) stay meaningful whatever day the emulator runs.
        self.anchor_ms = start_of_day_ms(started_at)
        self.corp_id = "ding" + hexid(seed, "corp", length=16)
        self.app_key = "ding" + b62id(seed, "appkey", length=16).lower()
        self.app_secret = b62id(seed, "appsecret", length=64)
        self.robot_code = self.app_key  # an app robot's robotCode is the app's Client ID
        self.agent_id = 3_000_000_000 + h64(seed, "agent") % 1_000_000_000
        self.unified_app_id = "-".join(
            hexid(seed, "unified", length=32)[i:j] for i, j in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
        )
        self.people = People(
            seed, profile.users, profile.resigned, profile.teams_per_department, self.anchor_ms
        )
        self.name = "濠江數碼科技有限公司"
        # Families append providers of {"id", "kind", "itemId", "type", "value", "where"} dicts: where
        # sensitive values (ID numbers, phones, bank cards) were planted; served as truth kind "sensitive".
        self.sensitive_sources: list[Callable[[Any], Iterable[dict[str, Any]]]] = []

    def credentials(self) -> dict[str, Any]:
        return {
            "corpId": self.corp_id,
            "appKey": self.app_key,
            "appSecret": self.app_secret,
            "robotCode": self.robot_code,
            "agentId": self.agent_id,
            "unifiedAppId": self.unified_app_id,
        }


def truth_sensitive(state: Any) -> Iterator[dict[str, Any]]:
    for source in state.org.sensitive_sources:
        yield from source(state)
