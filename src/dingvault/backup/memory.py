"""Process-wide memory settings for a backup run: glibc's arenas and trimming, SQLite's heap limit.

Arenas: a run has several threads (the event loop, storage, change-detection reads, catalog commits,
the pack uploader and timer). glibc gives each thread that allocates while another holds an arena
lock an arena of its own, up to 8 per core, and memory freed in an arena is kept there for reuse
by that arena only. Measured with ``bench/backup.py --memory-report`` on the large company (120 s,
limits off): with the default arenas 172 MB were free-but-kept by malloc at the peak (453 MB RSS);
with two arenas 88 MB (393 MB RSS), for the same records per CPU-second. The interpreter lock
serialises nearly all the allocating work anyway, so fewer arenas cost no measurable contention.

Large blocks and trimming: glibc serves a block from the heap unless it is at least the mmap
threshold, and that threshold rises (up to 32 MiB) each time a mapped block is freed. After the
first pack buffer or big download chunk is freed, later ones of the same size land on the heap,
where they leave holes that are kept, not returned. A fixed threshold (`map_large_blocks`) keeps
every block of 1 MiB or more mapped, so freeing it returns it at once; and a run gives the holes
that remain back to the system every second (`releasing_free_memory`, ``malloc_trim``: 2-5 ms a
call). Measured with ``bench/backup.py --memory-report`` (limits off, same machine, one session):
peak RSS medium 206 → 189 MB, large (120 s) 243 → 238 MB (223-233 MB in other runs), no change in
CPU per record that shows (bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

# mallopt parameter numbers (glibc malloc.h)
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 1 << 20
RELEASE_EVERY = 1.0  # seconds between two releases of free memory during a run

_done: set[int] = set()  # mallopt parameters applied in this process


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose malloc these settings are for), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it: musl's mallopt ignores settings)
    except (OSError, AttributeError):
        return None
    return libc


def _mallopt(param: int, value: int) -> bool:
    """Set one glibc malloc parameter once per process; True when it is in force."""
    if param in _done:
        return True
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(param, value) != 1:
        log.debug("mallopt(%d, %d) refused", param, value)
        return False
    _done.add(param)
    return True


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; True when it was applied (once per process).

    Arenas already created stay, but threads started afterwards share the first ones, so call this
    before the run's threads start. Not glibc (musl, macOS, Windows): nothing to do, False.
    """
    return _mallopt(M_ARENA_MAX, arenas)


def map_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve every block of ``threshold`` bytes or more by its own mapping, returned when freed.

    Setting the threshold turns off glibc's sliding one (see the module's notes). True when it
    was applied (once per process); not glibc: False.
    """
    return _mallopt(M_MMAP_THRESHOLD, threshold)


# Every SQLite connection of the process together (catalog and vault index): see limit_sqlite_heap.
SQLITE_HEAP_LIMIT = 24 << 20


def limit_sqlite_heap(limit: int = SQLITE_HEAP_LIMIT) -> int:
    """Cap the memory of all SQLite connections in this process together; returns the limit now set.

    Why: each connection's page cache (``catalog.engine.SQLITE_CACHE_KIB``) fills as the catalog
    grows, and a run keeps several connections (change detection, commits, the vault's index), so
    SQLite's memory grew with the organisation: 37-60 MB at the large company's peak against 25 MB
    for the medium one (``bench/backup.py --memory-report``). With a soft heap limit, SQLite
    recycles its least recently used cache pages before it allocates more, so the total stays
    near the limit however large the catalog is, while each connection may still use a large
    cache when the others are idle. Measured on the medium company: same CPU per record.

    The limit is process-wide (``PRAGMA soft_heap_limit`` sets ``sqlite3_soft_heap_limit64``);
    a lower one already set (by the embedding program) is kept.
    """
    import sqlite3

    db = sqlite3.connect(":memory:")
    try:
        current = int(db.execute("PRAGMA soft_heap_limit").fetchone()[0])
        if 0 < current <= limit:
            return current
        return int(db.execute(f"PRAGMA soft_heap_limit={int(limit)}").fetchone()[0])
    finally:
        db.close()


def release_free_memory() -> bool:
    """Give the memory malloc keeps after a run back to the system (glibc's ``malloc_trim``).

    A run frees most of what it allocated, but glibc keeps freed memory inside its heaps for
    reuse: 75-100 MB at the end of a medium or large company's run. A long-lived process (the
    scheduler of ``dingvault serve``) would carry that between runs. Returns True when memory was
    released; False elsewhere than glibc or when there was nothing to release.
    """
    libc = _glibc()
    if libc is None:
        return False
    trim = libc.malloc_trim
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return trim(0) == 1


@contextlib.contextmanager
def releasing_free_memory(every: float = RELEASE_EVERY) -> Iterator[None]:
    """Release malloc's free memory to the system every ``every`` seconds while the block runs.

    A thread of its own: ``malloc_trim`` runs without the interpreter lock (ctypes releases it),
    so the event loop goes on while the heaps are walked. Nothing happens elsewhere than glibc.
    """
    if _glibc() is None:
        yield
        return
    stop = threading.Event()

    def release() -> None:
        while not stop.wait(every):
            release_free_memory()

    thread = threading.Thread(target=release, name="dingvault-release-memory", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
