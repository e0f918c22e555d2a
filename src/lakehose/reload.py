"""A reload from the catalog run on demand: shared by all who wait, and spaced.

Processes keep the registry (streams, keys, tokens) in memory and refresh it
every second. A request that names something the memory lacks (a key or stream
created a moment ago) waits for a reload that *started after it asked*, so what
the CLI created is there the moment the CLI returned. Such reloads run one at a
time and at most one every ``spacing`` seconds, and every request waiting
meanwhile shares the next one: a client sending unknown names as fast as it can
costs the catalog a bounded number of reads, and each of its requests waits at
most about ``spacing`` plus one read before its 4xx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SpacedReload:
    def __init__(self, reload: Callable[[], None], spacing: float) -> None:
        self._reload = reload  # blocking; run in a worker thread
        self._spacing = spacing
        self._done = float("-inf")  # start time (monotonic) of the latest reload that finished
        self._task: asyncio.Task[None] | None = None

    def ran(self, started: float) -> None:
        """Record a reload done elsewhere (the periodic refresh) that started at ``started``."""
        self._done = max(self._done, started)

    async def since(self, asked: float) -> None:
        """Return once a reload started at or after ``asked`` has finished; raises what it raised."""
        while self._done < asked:
            if self._task is None:
                self._task = asyncio.create_task(self._run())
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            await asyncio.sleep(max(0.0, self._done + self._spacing - time.monotonic()))
            started = time.monotonic()
            await asyncio.to_thread(self._reload)
            self.ran(started)
        finally:
            self._task = None
