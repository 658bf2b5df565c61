"""Room for step processes: running out of file descriptors or processes makes a step
wait for room, never fail.

A running command or script step holds FDS_PER_PROCESS descriptors in the server (the
read ends of its stdout and stderr pipes, and the pidfd that reaps it). At start the
server raises its soft RLIMIT_NOFILE to the hard limit (`raise_open_files_limit`) and
gives the process steps the room that leaves after a reserve for everything else (the
database's connections, HTTP clients and sockets, log files, MCP servers):
`room_for(soft limit)`. A step enters the `ProcessRoom` before it starts its process and
leaves once the process is gone; when the room is full it waits, in order.

A start can still be refused for lack of room the budget does not see: processes (fork
or exec failing with EAGAIN under RLIMIT_NPROC, pid_max or a cgroup's pids.max), memory,
or descriptors other work took. The step then tries again after a pause (`NO_ROOM`,
cli.py), and the room lets no more steps in than are running then, growing back by one
with every start that succeeds: the waiting steps queue instead of all forking in vain.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

FDS_PER_PROCESS = 3  # held while a step's process runs: stdout, stderr, its pidfd
SPAWN_FDS = 4  # more, while one starts: the pipes' write ends, the exec error pipe...
MIN_RESERVE = 64  # descriptors kept for everything but process steps, at the least
RESERVE_SHARE = 5  # ...or a fifth of the limit, when more: sockets are not budgeted
# A start that fails with one of these is tried again: the machine is short of room.
NO_ROOM = frozenset({errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
LOG_EVERY = 60.0  # seconds: the most often the room says steps are waiting
STARTS_PER_PASS = 8  # processes started in one pass of the loop, at most (`turn`)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (what any process may do); returns
    the soft limit before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):  # an infinite hard limit above the kernel's nr_open
        return soft, soft
    return soft, target


def room_for(open_files: int) -> int:
    """How many process steps may run at once under a soft limit of `open_files`."""
    reserve = max(MIN_RESERVE, open_files // RESERVE_SHARE) + SPAWN_FDS
    return max(1, (open_files - reserve) // FDS_PER_PROCESS)


class ProcessRoom:
    """Room for `capacity` step processes at once, handed out in order. aio loop thread
    only; other threads may read `capacity`, `running` and `waiting`."""

    def __init__(self, capacity: int, what: str = "") -> None:
        """`what`: where the capacity comes from, for the log."""
        self.capacity = capacity
        self.running = 0  # steps holding room: their process is starting or running
        self.waiting = 0  # steps waiting for room: queued, or trying a start again
        self._what = what
        self._limit = capacity  # lower than capacity after a start refused for lack of room
        self._queue: deque[asyncio.Future[None]] = deque()
        self._logged = -LOG_EVERY
        self._turns: deque[asyncio.Future[None]] = deque()  # steps waiting to start
        self._starts = 0  # starts in this pass of the loop
        self._pass_due = False  # a new pass is scheduled

    async def enter(self, on_wait: Callable[[str], None]) -> None:
        """Take room for one process, waiting in order while there is none; `on_wait(why)`
        is called first when it must wait."""
        if self.running < self._limit and not self._queue:
            self.running += 1
            return
        future = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        on_wait(f"waiting for room to start: {self.running} step processes are running")
        self.waiting += 1
        self._log()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # given room, then cancelled
                self.leave()
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(future)
            raise
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        """The process is gone and its descriptors closed: room for the next step."""
        self.running -= 1
        self._admit()

    def refused(self) -> None:
        """A start failed for lack of room (the step that tried keeps its place and tries
        again): let no more in than are running now."""
        self._limit = max(1, min(self._limit, self.running))

    def started(self) -> None:
        """A process started: grow back towards the capacity, one start at a time."""
        if self._limit < self.capacity:
            self._limit += 1
            self._admit()

    async def pause(self, delay: float) -> None:
        """A step that was refused waits `delay` seconds before it tries again, counted as
        waiting."""
        self.waiting += 1
        self._log()
        try:
            await asyncio.sleep(delay)
        finally:
            self.waiting -= 1

    async def turn(self) -> None:
        """Wait for a turn to start a process: at most STARTS_PER_PASS start in one pass
        of the loop, the others in the next passes, in order. A start holds the loop
        until the child has exec'd and the GIL is back (Popen lets it go meanwhile; taking
        it back can wait 5 ms on a busy server). Unbounded, a thousand steps that became
        ready together would start in one pass, while every pipe, exit and timer waits
        behind them and more steps pile up for the next pass."""
        if self._starts < STARTS_PER_PASS and not self._turns:
            self._starts += 1
            self._next_pass()
            return
        future = asyncio.get_running_loop().create_future()
        self._turns.append(future)
        self._next_pass()
        try:
            await future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._turns.remove(future)
            raise

    def _next_pass(self) -> None:
        if not self._pass_due:
            self._pass_due = True
            asyncio.get_running_loop().call_soon(self._new_pass)

    def _new_pass(self) -> None:
        """A callback of the next pass: the steps it wakes start in the pass after, before
        this runs again."""
        self._pass_due = False
        self._starts = 0
        while self._turns and self._starts < STARTS_PER_PASS:
            future = self._turns.popleft()
            if not future.done():
                future.set_result(None)
                self._starts += 1
        if self._starts:
            self._next_pass()

    def _admit(self) -> None:
        while self._queue and self.running < self._limit:
            future = self._queue.popleft()
            if not future.done():
                self.running += 1
                future.set_result(None)

    def _log(self) -> None:
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            log.warning(
                "steps are waiting for room to start their process: %d waiting, %d running,"
                " room for %d%s (said at most once a minute)",
                self.waiting,
                self.running,
                self._limit,
                f" ({self._what})" if self._what else "",
            )
