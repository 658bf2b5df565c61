"""The gate steps pass before they start: closed while this node cannot prove it is
alive, so nothing new runs on a node the others may be about to replace."""

from __future__ import annotations

import asyncio


class StepGate:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open = asyncio.Event()
        self._open.set()

    def set_open(self, is_open: bool) -> None:
        """Any thread."""
        self._loop.call_soon_threadsafe(self._open.set if is_open else self._open.clear)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def passed(self) -> None:
        """aio loop thread: returns at once while open, else when it opens."""
        await self._open.wait()
