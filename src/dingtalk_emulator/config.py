"""Profiles: how big the generated company is.

Record counts are *generated lazily* (record i of a family is derived from the seed and i), so a
profile's size costs start-up time only for the people model; the rest costs nothing until asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from dingtalk_emulator.state import EmulatorConfig

__all__ = ["PROFILES", "EmulatorConfig", "Profile", "profile_for"]


@dataclass(frozen=True)
class Profile:
    name: str
    users: int  # active employees at start
    resigned: int  # employees who left before the start
    teams_per_department: int  # extra numbered sub-departments (large orgs)
    approvals: int  # approval instances over the approval history
    approval_history_days: int  # how far back approvals go (> 365 so some are out of reach)
    attendance_days: int  # calendar days of attendance history (weekdays get records)
    events_per_user: int  # calendar events per user
    todos_per_user: int
    reports: int  # work reports (日志) over the report history
    report_history_days: int


PROFILES: dict[str, Profile] = {
    "demo": Profile("demo", 50, 6, 0, 600, 400, 21, 12, 6, 300, 200),
    "small": Profile("small", 100, 12, 0, 3_000, 400, 60, 20, 10, 1_500, 240),
    "medium": Profile("medium", 300, 40, 1, 20_000, 400, 120, 60, 30, 12_000, 365),
    "large": Profile("large", 2_000, 250, 3, 400_000, 400, 182, 200, 80, 300_000, 365),
}


def profile_for(config: EmulatorConfig) -> Profile:
    try:
        return PROFILES[config.profile]
    except KeyError:
        raise ValueError(f"unknown profile {config.profile!r}; choose one of {', '.join(PROFILES)}") from None
