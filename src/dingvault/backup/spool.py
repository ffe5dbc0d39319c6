"""Attachment downloads spooled to a temporary file, hashed on the way in.

Why spool instead of streaming straight into the vault: the vault writer is synchronous and lives
on its own thread, while downloads are async on the event loop. A spooled file (in memory up to
``MEMORY_LIMIT``, then on disk next to the vault) decouples the two, keeps memory bounded whatever
the file size, and means a download that fails half-way never leaves a half-stored attachment.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Per attachment in memory at most; bigger ones go to disk. Most attachments are small (the
# emulator's companies: a median of 45–60 KB, 95–98 % under 256 KiB), and those are the ones for
# which a temporary file's system calls would cost the most relative to their size.
MEMORY_LIMIT = 256 << 10
# All attachments waiting in memory together; beyond it, new ones go to disk. It is a term of the
# backup's peak memory on any company whose downloads outpace the writer: measured on the large
# company (limits off, 120 s, one run each), 16 MiB (with 1 MiB per file) peaked at 254 MB, 4 MiB
# (with 256 KiB) at 241 MB and no in-memory spooling at 231 MB, storing as many records in the time.
MEMORY_BUDGET = 4 << 20


class SpoolBudget:
    """How many bytes of spooled downloads sit in memory, all queues together.

    Downloads wait in bounded queues until the writer stores them; without a shared budget, many
    files just under MEMORY_LIMIT could still add up. Past the budget, new downloads spool to disk.
    """

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        self.budget = budget
        self.in_memory = 0

    def limit(self) -> int:
        return MEMORY_LIMIT if self.in_memory < self.budget else 0


@dataclass
class SpooledDownload:
    file: IO[bytes]
    size: int
    sha256: str
    budget: SpoolBudget | None = None
    in_memory: int = 0

    def close(self) -> None:
        self.file.close()
        if self.budget is not None and self.in_memory:
            self.budget.in_memory -= self.in_memory
            self.in_memory = 0


async def spool(
    chunks: AsyncIterator[bytes],
    tmp_dir: Path | None = None,
    budget: SpoolBudget | None = None,
    *,
    expected_size: int | None = None,
) -> SpooledDownload:
    """``expected_size``: the size the source announced, if any; a download announced larger than
    the per-file limit goes to disk at once (no in-memory buffer grown and then copied out)."""
    digest = hashlib.sha256()
    size = 0
    limit = budget.limit() if budget is not None else MEMORY_LIMIT
    if expected_size is not None and expected_size > MEMORY_LIMIT:
        limit = 0
    # (SpooledTemporaryFile treats max_size=0 as "no limit", so over budget a real file is used.)
    fh: IO[bytes] = (
        tempfile.SpooledTemporaryFile(max_size=limit, dir=tmp_dir)  # noqa: SIM115 (returned)
        if limit
        else tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 (returned)
    )
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    download = SpooledDownload(fh, size, digest.hexdigest(), budget)
    if budget is not None and isinstance(fh, tempfile.SpooledTemporaryFile) and not fh._rolled:
        download.in_memory = size
        budget.in_memory += size
    return download
