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

MEMORY_LIMIT = 1 << 20  # 1 MiB per attachment in memory at most; bigger ones go to disk


@dataclass
class SpooledDownload:
    file: IO[bytes]
    size: int
    sha256: str

    def close(self) -> None:
        self.file.close()


async def spool(chunks: AsyncIterator[bytes], tmp_dir: Path | None = None) -> SpooledDownload:
    digest = hashlib.sha256()
    size = 0
    fh = tempfile.SpooledTemporaryFile(max_size=MEMORY_LIMIT, dir=tmp_dir)  # noqa: SIM115 (returned)
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
    return SpooledDownload(fh, size, digest.hexdigest())
