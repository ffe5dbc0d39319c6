"""Process-wide allocator setting for a backup run (glibc only; elsewhere nothing is changed).

Why: a run has several threads (the event loop, storage, change-detection reads, catalog commits,
the pack uploader and timer). glibc gives each thread that allocates while another holds an arena
lock an arena of its own, up to 8 per core, and memory freed in an arena is kept there for reuse
by that arena only. Measured with ``bench/backup.py --memory-report`` on the large company (120 s,
limits off): with the default arenas 172 MB were free-but-kept by malloc at the peak (453 MB RSS);
with two arenas 88 MB (393 MB RSS), for the same records per CPU-second. The interpreter lock
serialises nearly all the allocating work anyway, so fewer arenas cost no measurable contention.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number (glibc malloc.h)
ARENAS = 2

_done = False


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; True when it was applied (once per process).

    Arenas already created stay, but threads started afterwards share the first ones, so call this
    before the run's threads start. Not glibc (musl, macOS, Windows): nothing to do, False.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    try:
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it: musl's mallopt ignores settings)
    except AttributeError:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
        return False
    _done = True
    return True
