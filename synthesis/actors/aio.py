"""The asyncio side of the house: one event loop on its own thread, where every step's
I/O runs as a coroutine, so no actor thread ever blocks on a subprocess or a socket."""

from __future__ import annotations

import asyncio
import os
import sys
import threading


def _use_pidfd_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, asyncio waits for each child on a thread of its own; a pidfd
    watcher attached to our loop is cheaper and faster. Python 3.12+ uses pidfds itself.
    Runs on the loop's thread."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.set_child_watcher(watcher)


class AsyncioRunner:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="synthesis-aio", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        _use_pidfd_child_watcher(self.loop)
        self.loop.run_forever()

    async def ping(self) -> bool:
        """Awaited from another loop: True when this loop answers."""
        future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, True), self.loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
