"""A real asyncio loop running in a thread of its own, for actors and doors on it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5.0)
    loop.close()


def hold(loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> threading.Event:
    """Keep `loop` busy in one callback until the returned event is set (or `timeout`),
    so that what other threads post meanwhile waits for it as one batch."""
    busy, release = threading.Event(), threading.Event()
    loop.call_soon_threadsafe(lambda: (busy.set(), release.wait(timeout)))
    assert busy.wait(timeout)
    return release
