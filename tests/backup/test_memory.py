"""The allocator setting of a backup run: threads started after it share the limited arenas."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Counts glibc's arenas (malloc_info prints one <heap> per arena) after 8 threads allocated.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from dingvault.backup.memory import limit_malloc_arenas
    if sys.argv[1] == "limit":
        assert limit_malloc_arenas(2)
    hold = []
    # All alive at once: a thread that ended hands its arena to the next one.
    barrier = threading.Barrier(8)
    def work():
        hold.append([bytearray(100_000) for _ in range(20)])
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    with tempfile.NamedTemporaryFile() as f:
        fp = libc.fopen(f.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        print(open(f.name).read().count("<heap nr="))
    """
)


def _arenas(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threads_share_the_limited_arenas() -> None:
    # Without the limit each new thread that allocates gets an arena of its own (up to 8 per core).
    assert _arenas("default") > 2
    assert _arenas("limit") <= 2


def test_applying_twice_is_harmless() -> None:
    from dingvault.backup.memory import limit_malloc_arenas

    first = limit_malloc_arenas()
    assert limit_malloc_arenas() == first
