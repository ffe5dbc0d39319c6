"""The process's limit on open files, raised to what a backup run may need.

Downloads wait for the writer as spooled temporary files (`backup/spool.py`): up to the engine's
records in flight, each an open file once it is over the in-memory budget. On the emulator's large
company (limits off) over 1,000 were open at once — against the soft limit of 1,024 descriptors a
systemd service or a login shell gets by default on Linux, before counting sockets and SQLite's
files. Running out would fail downloads with EMFILE; the hard limit is usually far higher
(524,288 under systemd), and raising the soft limit up to it needs no privilege.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Enough for every record in flight to hold a spooled file and a few versions, plus connections.
WANTED = 16_384


def raise_open_files_limit(wanted: int = WANTED) -> int | None:
    """Raise the soft limit on open files towards ``wanted`` (never above the hard limit, never
    lower than it was); returns the soft limit now in force, None where there is no such limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
            return soft
        return target
    return soft
