"""What set a backup run's pace, in words, from the run's "pipeline" statistics (`RunStats.pipeline`).

Shared by `dingvault backup` (the end of its summary), `dingvault status` (the last run) and the
benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Shares of a run (see `RunStats.pipeline`) beyond which one side is said to have set the pace.
STORAGE_IDLE = 0.1  # the storage side waited for records this much of the run
FETCH_WAIT = 0.5  # fetching waited for room this much of the run
# Processor time of at least this many cores over the run: the process's Python work runs on one
# core at a time (the interpreter lock), so near one core it was busy, not waiting for DingTalk.
BUSY_CORES = 0.9


def pacing(pipeline: Mapping[str, Any]) -> str:
    """What set the run's pace, from its "pipeline" statistics.

    The storage side waiting for records: DingTalk's answers (rate limits, network, downloads),
    unless the process used about a core all along, when fetching was this process's own work.
    Fetching waiting for records ahead of it to be stored: storage, and the catalog when most of
    that was waiting for its commits. Neither waiting: both sides kept up with each other, and
    what limited them is what they share, the processor."""
    if pipeline["storage_idle_share"] >= STORAGE_IDLE:
        if pipeline.get("cpu_cores", 0.0) >= BUSY_CORES:
            return "fetching set the pace, with the processor busy (this process's own work, not DingTalk's answers)"
        return "DingTalk's answers set the pace (rate limits, network)"
    if pipeline["fetch_wait_share"] >= FETCH_WAIT:
        if pipeline["commit_wait_share"] >= pipeline["fetch_wait_share"] / 2:
            return "the catalog's commits set the pace (its database's disk or network)"
        return "storage set the pace (the vault's disk, compression and encryption)"
    return "fetching and storing kept up with each other: the processor set the pace"


def pacing_line(pipeline: Mapping[str, Any]) -> str:
    """One line for the summary: what set the pace, what each side waited, the records in flight."""
    return (
        f"{pacing(pipeline)}; storage waited {pipeline['storage_idle_share']:.0%} of the run, "
        f"fetching {pipeline['fetch_wait_share']:.0%}, commits {pipeline['commit_wait_share']:.0%}; "
        f"records in flight: mean {pipeline['in_flight_mean']:,.0f}, "
        f"peak {pipeline['in_flight_peak']:,} of {pipeline['in_flight_limit']:,}"
    )
