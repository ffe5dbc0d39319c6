"""How much the files world holds per emulator profile (the core's profiles size the people).

medium ≈ 5k files ≈ 500 MB; large ≈ 29k files ≈ 50 GB, most bytes in 3.6 % of the files
(documents with big embedded images or long tables, 5 – 200 MB, log-uniform).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class FilesProfile:
    files_per_drive_space: int
    files_per_group_space: int
    files_per_team_wiki: int
    files_per_personal_wiki: int  # for the ~1 in 4 users who keep "my docs"
    api_groups: int  # groups created through the API (besides department groups)
    robot_conversations: int  # 1:1 chats with the robot + groups where it is @-mentioned
    robot_messages: int  # messages *available to send* (generated lazily)
    big_fraction: float  # share of files that are large documents
    big_max: int  # largest file size
    median_small: int
    audit_logs: int  # exclusive edition file audit log records
    max_versions: int


FILES_PROFILES: dict[str, FilesProfile] = {
    "demo": FilesProfile(6, 2, 6, 2, 2, 6, 300, 0.0, 0, 30_000, 200, 3),
    "small": FilesProfile(40, 5, 15, 4, 3, 20, 5_000, 0.02, 2_000_000, 40_000, 2_000, 3),
    "medium": FilesProfile(400, 20, 60, 8, 6, 200, 200_000, 0.005, 20_000_000, 45_000, 20_000, 4),
    "large": FilesProfile(2_000, 100, 200, 12, 20, 1_000, 2_000_000, 0.036, 200_000_000, 60_000, 200_000, 5),
}


def files_profile(name: str) -> FilesProfile:
    return FILES_PROFILES.get(name, FILES_PROFILES["demo"])


def pick_size(r: random.Random, prof: FilesProfile, min_size: int, big_ok: bool = True) -> int:
    """A file size; only formats that can stream (docx/xlsx/pdf/png) may be big."""
    if prof.big_fraction and r.random() < prof.big_fraction and big_ok:
        # Log-uniform between 5 MB and the profile's maximum.
        lo, hi = math.log(5_000_000), math.log(max(prof.big_max, 5_000_001))
        return max(min_size, int(math.exp(r.uniform(lo, hi))))
    size = int(r.lognormvariate(math.log(prof.median_small), 0.8))
    return max(min_size, min(size, 3_000_000))
