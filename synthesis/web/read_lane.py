"""A lane for short store reads asked many times a second (GET /api/executions/{id}):
one thread that runs them in batches, so that under load the IOLoop pays for one hop per
batch instead of one per read.

Through the read pool each read costs a thread wake-up, a self-pipe write back and the
GIL handed back and forth several times: about 300 µs of CPU for a read of 30 µs
(benchmarks/README.md, "REST reads and creates"). Here a read asked while the lane works
waits for its next batch (a deque append, no system call), and a batch's answers go back
to the IOLoop through its door (actors/door.py), with the bridge's replies: one wake-up.
The IOLoop never blocks (rule 1): it only appends and is told.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from synthesis.actors.door import door

T = TypeVar("T")
_Item = tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class ReadLane:
    def __init__(self, loop: asyncio.AbstractEventLoop, name: str = "synthesis-read-lane") -> None:
        self._loop = loop
        self._items: deque[_Item] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._busy = False  # the thread is running a batch: no need to wake it
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """IOLoop thread: run `fn(*args)` on the lane; its answer or error comes back as
        the future's. Refused (RuntimeError) once closed."""
        future: asyncio.Future[T] = self._loop.create_future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the read lane is closed")
            self._items.append((future, fn, args))
            if not self._busy:
                self._wake.notify()
        return future

    def close(self) -> None:
        """Any thread but the lane's: what was asked is still answered, then the thread ends."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        """Lane thread: take everything asked, run it, send the answers back at once."""
        while True:
            with self._wake:
                self._busy = False
                while not self._items and not self._closed:
                    self._wake.wait()
                if not self._items:
                    return
                batch = list(self._items)
                self._items.clear()
                self._busy = True
            if not self._run_batch(batch):
                return
            del batch  # nothing of a batch is kept while the lane waits for the next

    def _run_batch(self, batch: list[_Item]) -> bool:
        """Lane thread. False once the IOLoop is closed (nobody waits any more)."""
        answers: list[tuple[asyncio.Future[Any], bool, Any]] = []
        for future, fn, args in batch:
            try:
                answers.append((future, True, fn(*args)))
            except BaseException as exc:  # the caller's error, raised where it awaits
                answers.append((future, False, exc))
        try:
            door(self._loop).post(_settle, answers)
        except RuntimeError:
            return False
        return True


def _settle(answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """IOLoop thread."""
    for future, ok, value in answers:
        if future.done():  # its request went away (cancelled)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
