"""A door into an asyncio loop from other threads: callbacks posted from any thread run
on the loop in the order posted, and a batch of them costs the loop one wake-up.

`loop.call_soon_threadsafe` writes to the loop's self-pipe on every call, and the loop
reads it back: under load, when the bus stores dozens of commits in one transaction and
answers each one's actor (or HTTP request) from its own thread, that was a system call
pair, and the GIL handed over, per answer. A door writes once per batch: the first post
since the loop last drained it schedules the drain; later posts join the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Door:
    """Cross-thread entry to one loop: callbacks posted from any thread run on the loop in
    the order posted, and a batch of them costs one wake-up (one self-pipe write) instead
    of one each. Under load the bus stores dozens of commits a transaction and answers
    each one's actor from its thread: that was a write and a read of the self-pipe per
    answer. A posted callback runs no later than a `call_soon` made after the post."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._scheduled = False

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Any thread. RuntimeError if the loop is closed (it would never run it: an
        actor's `stop()` or `ask()` would wait for ever), as `call_soon_threadsafe`."""
        if self._loop.is_closed():
            raise RuntimeError("Event loop is closed")
        self._queue.append((callback, args))
        if not self._scheduled:
            self._scheduled = True
            if running_loop() is self._loop:
                self._loop.call_soon(self._drain)  # on the loop already: no wake-up
            else:
                with contextlib.suppress(RuntimeError):  # closed since: nobody waits now
                    self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """Loop thread. The flag drops first: a post that finds it down schedules a drain
        of its own, so nothing posted is left behind. Only what was posted before this
        drain runs now: posts made meanwhile wait for their drain, after the callbacks and
        I/O the loop has ready (as `call_soon_threadsafe` would), so a steady stream of
        posts cannot hold the loop."""
        self._scheduled = False
        queue = self._queue
        for _ in range(len(queue)):
            callback, args = queue.popleft()
            try:
                callback(*args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:  # as the loop does for a callback: log it, go on
                log.exception("a callback posted to the loop failed")


_doors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Door] = weakref.WeakKeyDictionary()
_doors_lock = threading.Lock()


def door(loop: asyncio.AbstractEventLoop) -> Door:
    """The one door of `loop` (any thread)."""
    with _doors_lock:
        found = _doors.get(loop)
        if found is None:
            found = _doors[loop] = Door(loop)
        return found


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running on this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
