"""The gate steps pass before they start: closed while this node cannot prove it is
alive, so nothing new runs on a node the others may be about to replace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class StepGate:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, fresh: Callable[[], bool] = lambda: True
    ) -> None:
        """`fresh()`: whether this node's last acknowledged heartbeat is recent. Asked at
        every step start, so a node that wakes from a freeze (SIGCONT) starts nothing
        before its watchdog has even run."""
        self._loop = loop
        self._fresh = fresh
        self._open = asyncio.Event()
        self._open.set()

    def set_open(self, is_open: bool) -> None:
        """Any thread."""
        self._loop.call_soon_threadsafe(self._open.set if is_open else self._open.clear)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def passed(self) -> None:
        """aio loop thread: returns at once while open and fresh, else when it opens."""
        while True:
            if not self._fresh():
                self._open.clear()  # the keeper opens it again on its next acknowledgement
            if self._open.is_set():
                return
            await self._open.wait()
