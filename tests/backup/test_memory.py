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


# Fills three connections' page caches (16 MiB each) from a ~40 MB database and prints how much
# memory SQLite then holds in all (sqlite3_status64 of the library the sqlite3 module loaded).
_SQLITE_SCRIPT = textwrap.dedent(
    """
    import ctypes, os, sqlite3, sys, tempfile
    from dingvault.backup.memory import limit_sqlite_heap
    if sys.argv[1] == "limit":
        assert limit_sqlite_heap(8 << 20) == 8 << 20
    path = os.path.join(tempfile.mkdtemp(), "t.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    db.executemany("INSERT INTO t(v) VALUES (randomblob(400))", ([] for _ in range(100_000)))
    db.commit()
    db.close()
    conns = [sqlite3.connect(path) for _ in range(3)]
    for c in conns:
        c.execute("PRAGMA cache_size=-16384")
        assert c.execute("SELECT count(*), sum(length(v)) FROM t").fetchone() == (100_000, 40_000_000)
    lib = ctypes.CDLL("libsqlite3.so.0")
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        print("other-library")
        sys.exit(0)
    cur, hi = ctypes.c_int64(), ctypes.c_int64()
    lib.sqlite3_status64(0, ctypes.byref(cur), ctypes.byref(hi), 0)  # SQLITE_STATUS_MEMORY_USED
    print(cur.value)
    """
)


def _sqlite_memory(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _SQLITE_SCRIPT, mode], capture_output=True, text=True, check=True
    ).stdout.strip()
    if out == "other-library":
        pytest.skip("the sqlite3 module is not linked to the system's libsqlite3.so.0 here")
    return int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads libsqlite3.so.0")
def test_sqlite_heap_limit_bounds_every_connection_together() -> None:
    # Without the limit each connection's cache fills to its own 16 MiB: ~48 MB in all.
    assert _sqlite_memory("default") > 30 << 20
    # With it, the least recently used pages are recycled: all three stay near the one limit.
    assert _sqlite_memory("limit") < 12 << 20


def test_sqlite_heap_limit_keeps_a_lower_one() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dingvault.backup.memory import limit_sqlite_heap as f; print(f(4 << 20), f(24 << 20))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(4 << 20), str(4 << 20)]


# What the scripts below read of the process: glibc's malloc counters and the anonymous RSS.
_MALLOC_PROBE = textwrap.dedent(
    """
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    """
)


# Leaves glibc's heap full of freed 64 KiB holes (below the mmap threshold, so on the heap), then
# prints malloc's free-but-kept bytes and the process's anonymous RSS before and after release.
_TRIM_SCRIPT = _MALLOC_PROBE + textwrap.dedent(
    """
    from dingvault.backup.memory import release_free_memory

    blocks = [bytearray(b"x" * 65_000) for _ in range(3_000)]  # ~195 MB, every page touched
    keep = blocks[::50]  # a few stay, so the heap cannot simply shrink from its top
    del blocks
    before = (libc.mallinfo2().fordblks, anon())
    released = release_free_memory()
    after = (libc.mallinfo2().fordblks, anon())
    print(released, *before, *after, len(keep))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_free_memory_gives_freed_heap_back() -> None:
    out = subprocess.run([sys.executable, "-c", _TRIM_SCRIPT], capture_output=True, text=True, check=True)
    released, free_before, anon_before, _free_after, anon_after, _ = out.stdout.split()
    assert released == "True"
    assert int(free_before) > 150_000_000  # malloc kept what was freed...
    assert int(anon_before) - int(anon_after) > 100_000_000  # ...and gave it back


def test_an_encoded_version_holds_only_its_own_bytes() -> None:
    # Versions wait in the vault's open segment, a few hundred at a time: each must cost its
    # size, not the encoder's 4 KiB working buffer.
    import tracemalloc

    from dingvault.backup.payload import decode_version, encode_version
    from dingvault.source.items import Item

    items = [
        Item(kind="todo", source_id=f"t{i}", raw={"card": {"taskId": f"t{i}", "subject": "覆核合約"}})
        for i in range(1000)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        payloads = [encode_version(item, []) for item in items]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    size = sum(len(p) for p in payloads)
    assert size > 100_000  # ~200 bytes each
    assert held < 1.5 * size, (held, size)
    assert decode_version(payloads[7])["raw"]["card"]["taskId"] == "t7"


# Frees a 4 MiB block (mapped, which raises glibc's sliding threshold to 4 MiB), then takes a
# 2 MiB one and prints how many blocks are mapped: 1 if it was mapped, 0 if it came from the heap.
_MMAP_SCRIPT = _MALLOC_PROBE + textwrap.dedent(
    """
    import sys
    from dingvault.backup.memory import map_large_blocks

    if sys.argv[1] == "fixed":
        assert map_large_blocks(1 << 20)
    mapped_before = libc.mallinfo2().hblks
    big = bytearray(4 << 20)
    del big
    block = bytearray(2 << 20)
    print(libc.mallinfo2().hblks - mapped_before, len(block))
    """
)


def _mapped_after_a_big_free(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _MMAP_SCRIPT, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_blocks_stay_mapped_after_a_bigger_one_was_freed() -> None:
    # glibc's own threshold slid up to 4 MiB: the 2 MiB block came from the heap, and would leave
    # a hole there when freed.
    assert _mapped_after_a_big_free("default") == 0
    # With a fixed threshold it is mapped, and freeing it returns it to the system.
    assert _mapped_after_a_big_free("fixed") == 1


# Leaves freed holes on the heap inside `releasing_free_memory`, waits, and prints the anonymous
# RSS while the blocks were held and after the wait, then whether the releasing thread is gone.
_RELEASING_SCRIPT = _MALLOC_PROBE + textwrap.dedent(
    """
    import threading, time
    from dingvault.backup.memory import releasing_free_memory

    with releasing_free_memory(every=0.05):
        blocks = [bytearray(b"x" * 65_000) for _ in range(3_000)]  # on the heap, every page touched
        keep = blocks[::50]
        before = anon()
        del blocks
        time.sleep(0.5)
        after = anon()
    names = [t.name for t in threading.enumerate()]
    print(before, after, "dingvault-release-memory" in names, len(keep))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_free_memory_is_released_while_a_run_goes_on() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RELEASING_SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, thread_left = int(out[0]), int(out[1]), out[2]
    assert before - after > 100_000_000  # given back without anyone calling release_free_memory
    assert thread_left == "False"
