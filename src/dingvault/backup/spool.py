"""Attachment downloads spooled to a temporary file, hashed on the way in.

Why spool instead of streaming straight into the vault: the vault writer is synchronous and lives
on its own thread, while downloads are async on the event loop. A spooled file (in memory up to
``MEMORY_LIMIT``, then on disk next to the vault) decouples the two, keeps memory bounded whatever
the file size, and means a download that fails half-way never leaves a half-stored attachment.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Per attachment in memory at most; bigger ones go to disk. Most attachments are small (the
# emulator's companies: a median of 45–60 KB, 95–98 % under 256 KiB), and those are the ones for
# which a temporary file's system calls would cost the most relative to their size.
MEMORY_LIMIT = 256 << 10
# All attachments waiting in memory together; beyond it, new ones go to disk. It is a term of the
# backup's peak memory on any company whose downloads outpace the writer: measured on the large
# company (limits off, 120 s, one run each), 16 MiB (with 1 MiB per file) peaked at 254 MB, 4 MiB
# (with 256 KiB) at 241 MB and no in-memory spooling at 231 MB, storing as many records in the time.
MEMORY_BUDGET = 4 << 20
# All downloads waiting on disk together. Without it they were bounded only by the records in
# flight: on the emulator's large company (limits off, files up to 200 MB) over 1 GB at once.
DISK_BUDGET = 512 << 20


# Temporary files kept open for the next downloads once theirs is stored (see TempFilePool).
POOL_FILES = 256
POOL_BYTES = 32 << 20
POOL_FILE_MAX = 128 << 10


class TempFilePool:
    """Temporary files reused from one spooled download to the next.

    Why: creating a temporary file and closing it again (the file system allocates an inode and
    its blocks, then frees both) was about a third of the fetch side's processor time on the
    medium company (limits off, storing nothing: 1,600 records/s with a file per download, 2,329
    with none on disk; bench/RESULTS.md). A reused file is overwritten in place: no inode, no new
    blocks. What lies beyond the current download's length is an earlier download's, so a pooled
    download is read through a window of exactly its length (`window`).

    Bounded: at most ``max_files`` idle files holding ``max_bytes`` together; a file that grew past
    ``max_file`` (a big download) is closed, not kept. A download in a reused file counts what the
    file holds on disk against the disk budget, not only its own length. Thread-safe.
    """

    def __init__(
        self,
        tmp_dir: Path | None = None,
        *,
        max_files: int = POOL_FILES,
        max_bytes: int = POOL_BYTES,
        max_file: int = POOL_FILE_MAX,
    ) -> None:
        self.tmp_dir = tmp_dir
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.max_file = max_file
        self._idle: list[tuple[IO[bytes], int]] = []  # (file, bytes it holds on disk)
        self._idle_bytes = 0
        self._lock = threading.Lock()
        self._closed = False
        self.created = 0  # files created (for tests)

    def acquire(self) -> tuple[IO[bytes], int]:
        """A temporary file positioned at its start, and how many bytes it already holds."""
        with self._lock:
            if self._idle:
                fh, held = self._idle.pop()
                self._idle_bytes -= held
                fh.seek(0)
                return fh, held
            self.created += 1
        return tempfile.TemporaryFile(dir=self.tmp_dir), 0

    def release(self, fh: IO[bytes], held: int) -> None:
        with self._lock:
            keep = (
                not self._closed
                and held <= self.max_file
                and len(self._idle) < self.max_files
                and self._idle_bytes + held <= self.max_bytes
            )
            if keep:
                self._idle.append((fh, held))
                self._idle_bytes += held
        if not keep:
            fh.close()

    def close(self) -> None:
        """Close the idle files; files given back later are closed, not kept."""
        with self._lock:
            self._closed = True
            idle, self._idle, self._idle_bytes = self._idle, [], 0
        for fh, _held in idle:
            fh.close()


class _Window(io.RawIOBase):
    """The first ``size`` bytes of a file descriptor, read with ``pread`` from its own position.
    Closing it leaves the descriptor open: it belongs to the file it was taken from."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [memoryview(b)[:n]], self._pos)
        self._pos += got
        return got

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def window(fd: int, size: int) -> IO[bytes]:
    """A reader of the first ``size`` bytes of ``fd`` (which may hold more: a reused file)."""
    return _Window(fd, size)  # type: ignore[return-value]


class SpoolBudget:
    """How many bytes of spooled downloads sit in memory and on disk, all queues together.

    Downloads wait in bounded queues until the writer stores them; without a shared budget, many
    files just under MEMORY_LIMIT could still add up. Past the memory budget, new downloads spool
    to disk. A download announced larger than MEMORY_LIMIT waits (`reserve_disk`) until it fits
    under the disk budget. Event loop only.

    Why a download of the page the writer needs next waits only for room held by pages already
    handed to the writer: a family's pages reach the writer in order, so room held by its later
    pages is given back only after that page is stored. Waiting for it would stall the run;
    pages handed over leave the disk whatever the fetch side does.
    """

    def __init__(
        self, budget: int = MEMORY_BUDGET, disk_budget: int = DISK_BUDGET, files: TempFilePool | None = None
    ) -> None:
        self.budget = budget
        # Files for downloads spooled to disk, reused (POOL_BYTES more on disk at most when idle).
        self.files = files
        self.in_memory = 0
        self.disk_budget = disk_budget
        self.on_disk = 0  # reserved or written, all downloads
        self.handed_over = 0  # of which downloads of pages handed to the writer
        self.peak_on_disk = 0
        self._room = asyncio.Event()

    def limit(self) -> int:
        return MEMORY_LIMIT if self.in_memory < self.budget else 0

    async def reserve_disk(self, expected_size: int | None, is_next: Callable[[], bool]) -> int:
        """Wait until a download announced at ``expected_size`` fits on disk; returns the bytes
        reserved for it (nothing for one that will stay in memory or did not say its size).

        ``is_next()``: the download belongs to the page the writer needs next (see the class).
        Something always fits when nothing it waits for is on disk. Checked again whenever room
        is given back and on `wake`."""
        n = expected_size if expected_size is not None and expected_size > MEMORY_LIMIT else 0
        if n:
            while True:
                held = self.handed_over if is_next() else self.on_disk
                if held == 0 or held + n <= self.disk_budget:
                    break
                self._room.clear()
                await self._room.wait()
        self.add_on_disk(n)
        return n

    def hand_over(self, downloads: list[SpooledDownload]) -> None:
        """These downloads' page goes to the writer: their room is given back without help."""
        for download in downloads:
            if download.on_disk and not download.handed_over:
                download.handed_over = True
                self.handed_over += download.on_disk

    def release_disk(self, n: int, handed_over: bool = False) -> None:
        self.add_on_disk(-n)
        if handed_over:
            self.handed_over -= n

    def wake(self) -> None:
        """Have waiting downloads look again (which page the writer needs next changed)."""
        self._room.set()

    def add_on_disk(self, n: int) -> None:
        """Count ``n`` more bytes on disk (fewer if negative, which wakes waiting downloads)."""
        self.on_disk += n
        self.peak_on_disk = max(self.peak_on_disk, self.on_disk)
        if n < 0:
            self._room.set()


@dataclass
class SpooledDownload:
    file: IO[bytes]
    size: int
    sha256: str
    budget: SpoolBudget | None = None
    in_memory: int = 0
    on_disk: int = 0
    handed_over: bool = False
    # A reused temporary file (``file`` is then a window on it): its pool, the file, and the bytes
    # it holds on disk.
    pooled: tuple[TempFilePool, IO[bytes], int] | None = None

    def close(self) -> None:
        self.file.close()
        if self.pooled is not None:
            pool, fh, held = self.pooled
            self.pooled = None
            pool.release(fh, held)
        if self.budget is not None and self.in_memory:
            self.budget.in_memory -= self.in_memory
            self.in_memory = 0
        if self.budget is not None and self.on_disk:
            self.budget.release_disk(self.on_disk, self.handed_over)
            self.on_disk = 0


async def spool(
    chunks: AsyncIterator[bytes],
    tmp_dir: Path | None = None,
    budget: SpoolBudget | None = None,
    *,
    expected_size: int | None = None,
    reserved: int = 0,
) -> SpooledDownload:
    """``expected_size``: the size the source announced, if any; a download announced larger than
    the per-file limit goes to disk at once (no in-memory buffer grown and then copied out).
    ``reserved``: what `SpoolBudget.reserve_disk` set aside for it, replaced by what the download
    really put on disk once it is complete (which `close` gives back). If the download fails, the
    reservation stays with the caller, who gives it back."""
    digest = hashlib.sha256()
    size = 0
    limit = budget.limit() if budget is not None else MEMORY_LIMIT
    if expected_size is not None and expected_size > MEMORY_LIMIT:
        limit = 0
    # (SpooledTemporaryFile treats max_size=0 as "no limit", so over budget a real file is used.)
    pool = budget.files if budget is not None and not limit else None
    held = 0
    if limit:
        fh: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=limit, dir=tmp_dir)  # noqa: SIM115 (returned)
    elif pool is not None:
        fh, held = pool.acquire()
    else:
        fh = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 (returned)
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
        if pool is not None:
            fh.flush()  # read back through the descriptor (the window), not this buffer
        else:
            fh.seek(0)
    except BaseException:
        fh.close()  # (a pooled one too: how much of it was written is unknown)
        raise
    if pool is not None:
        download = SpooledDownload(
            window(fh.fileno(), size), size, digest.hexdigest(), budget, pooled=(pool, fh, max(held, size))
        )
    else:
        download = SpooledDownload(fh, size, digest.hexdigest(), budget)
    if budget is None:
        return download
    if isinstance(fh, tempfile.SpooledTemporaryFile) and not fh._rolled:
        download.in_memory = size
        budget.in_memory += size
    else:
        # A reused file holds what its largest download left: that is what the disk holds.
        download.on_disk = download.pooled[2] if download.pooled is not None else size
    budget.add_on_disk(download.on_disk - reserved)  # the reservation becomes what is on disk
    return download
