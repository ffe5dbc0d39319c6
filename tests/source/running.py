"""Sources for tests of the runners that read many sources a bounded few at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable


class Running:
    """Makes sources that each yield one value, and counts how many run at once (`most`)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.now = 0
        self.most = 0

    def source(self, n: int) -> Callable[[], AsyncIterator[int]]:
        async def run() -> AsyncIterator[int]:
            self.now += 1
            self.most = max(self.most, self.now)
            await asyncio.sleep(self.pause)
            yield n
            self.now -= 1

        return run
