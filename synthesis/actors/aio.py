"""The asyncio side of the house: one event loop on its own thread, where every step's
I/O runs as a coroutine, so no actor thread ever blocks on a subprocess or a socket."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

POLL_FIRST, POLL_MOST = 0.01, 0.5  # seconds between looks at a child without a pidfd


class _LoopBoundPidfdWatcher(asyncio.PidfdChildWatcher):
    """A pidfd child watcher for our loop's children only.

    Python 3.11 re-attaches the process-wide watcher to any loop the main thread sets
    (`asyncio.run` does), and detaching drops the children being watched: an embedding
    application, or a test, would leave our steps waiting forever. This one ignores
    re-attachment, and hands children started on other threads' loops to a thread-based
    watcher, which works for any loop.

    A child whose pidfd cannot be opened (no descriptor left) is polled for instead:
    asyncio would leave it running unwatched and report its start as failed, and a step
    that tried again would then run twice."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        super().attach_loop(loop)
        self._thread = threading.get_ident()
        self._others = asyncio.ThreadedChildWatcher()
        self._polled: dict[int, asyncio.TimerHandle] = {}

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def add_child_handler(self, pid: int, callback: Any, *args: Any) -> None:
        if threading.get_ident() != self._thread:
            self._others.add_child_handler(pid, callback, *args)
            return
        try:
            super().add_child_handler(pid, callback, *args)
        except OSError:  # EMFILE, ENFILE: no pidfd, so look every so often instead
            self._poll(pid, callback, args, POLL_FIRST)

    def _poll(self, pid: int, callback: Any, args: tuple[Any, ...], delay: float) -> None:
        """Loop thread: reap `pid` without a descriptor, looking again after `delay`."""

        def look() -> None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere, as asyncio's own watcher says
                done, status = pid, 255 << 8
            if done == 0:
                self._poll(pid, callback, args, min(delay * 2, POLL_MOST))
                return
            del self._polled[pid]
            callback(pid, os.waitstatus_to_exitcode(status), *args)

        assert self._loop is not None
        self._polled[pid] = self._loop.call_later(delay, look)

    def remove_child_handler(self, pid: int) -> bool:
        if (handle := self._polled.pop(pid, None)) is not None:
            handle.cancel()
            return True
        return super().remove_child_handler(pid) or self._others.remove_child_handler(pid)


def _use_pidfd_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, asyncio waits for each child on a thread of its own; a pidfd
    watcher bound to our loop is cheaper and faster. Python 3.12+ uses pidfds itself.
    Runs on the loop's thread."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    asyncio.set_child_watcher(_LoopBoundPidfdWatcher(loop))


def _release_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """Our loop is closing: if the process-wide watcher is ours, let asyncio make a new one."""
    if sys.version_info >= (3, 12):
        return
    watcher = getattr(asyncio.get_event_loop_policy(), "_watcher", None)
    if isinstance(watcher, _LoopBoundPidfdWatcher) and watcher._loop is loop:
        asyncio.set_child_watcher(None)


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
        _release_child_watcher(self.loop)
        self.loop.close()
