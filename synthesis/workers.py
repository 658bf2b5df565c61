"""`synthesis serve --workers N`: N server processes on one port, under one parent.

Each worker is a plain `synthesis serve` started with the parent's own arguments and
`--workers 1`, so it reads the same flags, environment and files and is a node of the
cluster by itself; it binds the port with SO_REUSEPORT and the kernel spreads connections
over the workers. The parent serves nothing: it starts the workers, passes SIGTERM and
SIGINT on to them, starts a worker again when it dies on its own (after a backoff that
grows while it keeps dying at once), and exits 0 once every worker stopped cleanly.

A worker learns that it is one from its environment (WORKER_ENV, its number) and holds the
read end of a pipe whose write end only the parent holds (LIFELINE_ENV): when the parent
dies, even by kill -9, the pipe reads EOF and the worker stops as on SIGTERM, so no
worker outlives its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from synthesis.config import Settings

log = logging.getLogger("synthesis.workers")

WORKER_ENV = "SYNTHESIS_WORKER"  # the worker's number, 1 to N
LIFELINE_ENV = "SYNTHESIS_WORKER_LIFELINE"  # the fd of the pipe from the parent
FIRST_BACKOFF = 0.5  # seconds before a dead worker starts again; doubles while it keeps dying
MAX_BACKOFF = 10.0
STEADY_SECONDS = 10.0  # a worker that lived this long starts again after FIRST_BACKOFF
STOP_MARGIN = 30.0  # beyond the grace periods, before the parent kills what did not stop


@dataclass(frozen=True)
class WorkerRole:
    """What a worker knows of its parent."""

    index: int
    lifeline: int  # a pipe's read end: readable (EOF) once the parent is gone


def worker_role(environ: MutableMapping[str, str] = os.environ) -> WorkerRole | None:
    """This process's role when a parent started it as a worker, else None. The variables
    are taken out of the environment, so step processes do not inherit them."""
    index = environ.pop(WORKER_ENV, None)
    lifeline = environ.pop(LIFELINE_ENV, None)
    if index is None or lifeline is None:
        return None
    return WorkerRole(int(index), int(lifeline))


def needs_postgresql(settings: Settings) -> str | None:
    """Why these settings cannot have several workers, or None when they can."""
    from sqlalchemy.engine import make_url

    if settings.workers == 1 or make_url(settings.database).get_backend_name() == "postgresql":
        return None
    return (
        f"--workers {settings.workers} needs PostgreSQL (--database postgresql://...): "
        "a SQLite database belongs to one server"
    )


def prepare_database(settings: Settings) -> None:
    """Create or upgrade the tables once, in the parent, so a database the workers cannot
    use is one clear error here rather than N workers failing again and again."""
    from synthesis.store import Store

    store = Store(settings.database)
    try:
        store.create_tables()
    finally:
        store.close()


def describe_exit(code: int) -> str:
    if code < 0:
        return f"exit code {code} ({signal.Signals(-code).name})"
    return f"exit code {code}"


class Parent:
    """Keeps `settings.workers` workers running until SIGTERM or SIGINT. Everything runs
    on the parent's event loop."""

    def __init__(self, settings: Settings, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.count = settings.workers
        self.port = settings.port
        grace = settings.shutdown_grace_seconds + settings.kill_grace_seconds
        self.stop_limit = grace + STOP_MARGIN
        self.command = [sys.executable, "-m", "synthesis", *argv, "--workers", "1"]
        self.env = dict(env)
        self.running: dict[int, asyncio.subprocess.Process] = {}
        self.signum: int | None = None
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        """Start the workers and keep them up until the stop; 0 when all stopped cleanly."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signum)
        lifeline, keep_open = os.pipe()  # the parent never writes: only its end matters
        log.info("starting %d workers on port %d", self.count, self.port)
        try:
            codes = await asyncio.gather(
                *(self._keep(index, lifeline) for index in range(1, self.count + 1))
            )
        finally:
            os.close(lifeline)
            os.close(keep_open)
        failed = [index for index, code in enumerate(codes, 1) if code != 0]
        if failed:
            log.error("workers %s did not stop cleanly", ", ".join(map(str, failed)))
            return 1
        log.info("all workers stopped")
        return 0

    async def _keep(self, index: int, lifeline: int) -> int:
        """Run worker `index`, again each time it dies before the stop; its last exit code."""
        backoff = FIRST_BACKOFF
        while True:
            began = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *self.command,
                env={**self.env, WORKER_ENV: str(index), LIFELINE_ENV: str(lifeline)},
                pass_fds=(lifeline,),
            )
            self.running[index] = process
            if self.signum is not None:  # the stop came while it was starting
                process.send_signal(self.signum)
            code = await process.wait()
            del self.running[index]
            if self.signum is not None:
                # killed by the signal passed on before it could handle it: it was still
                # starting and had accepted nothing, so that stop is clean too
                return 0 if code == -self.signum else code
            if time.monotonic() - began >= STEADY_SECONDS:
                backoff = FIRST_BACKOFF
            log.error(
                "worker %d (pid %d) died with %s; starting it again in %gs",
                index,
                process.pid,
                describe_exit(code),
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            if self.signum is not None:
                return 0  # nothing running to stop
            backoff = min(backoff * 2, MAX_BACKOFF)

    def stop(self, signum: int) -> None:
        """SIGTERM or SIGINT: pass it on to every worker; kill those still running once
        they had the grace periods and a margin."""
        first = self.signum is None
        self.signum = signum
        self.stopping.set()
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
        if first:
            log.info("stopping %d workers (%s)", len(self.running), signal.Signals(signum).name)
            asyncio.get_running_loop().call_later(self.stop_limit, self._kill)

    def _kill(self) -> None:
        for index, process in self.running.items():
            log.error(
                "worker %d (pid %d) did not stop in %gs: killed",
                index,
                process.pid,
                self.stop_limit,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()


def supervise(settings: Settings, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`synthesis serve --workers N` (N > 1), with `argv` the parent's own arguments and
    `env` the workers' environment. The parent's main thread."""
    prepare_database(settings)

    async def main() -> int:
        return await Parent(settings, argv, env).run()

    return asyncio.run(main())
