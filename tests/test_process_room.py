"""Running out of file descriptors or processes never fails a step: it waits for room,
visibly (integrations/room.py). Real servers under real limits."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from synthesis.actors.aio import AsyncioRunner
from synthesis.integrations.base import RunContext
from synthesis.integrations.cli import execute_command
from synthesis.integrations.room import STARTS_PER_PASS, ProcessRoom, room_for
from tests.api.test_metrics import prometheus
from tests.support import TOKEN, Client, ServeProcess, wait_until

WAITING = "waiting for room to start"


@pytest.fixture
def lock(open_dir: Path) -> Iterator[tuple[Path, IO[str]]]:
    """A file held locked: steps that `flock -s` it run until the test lets go."""
    path = open_dir / "lock"
    path.write_text("")
    path.chmod(0o644)
    with path.open() as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        yield path, holder


def held_steps(path: Path, count: int) -> list[dict[str, Any]]:
    """`count` steps at once, each one process (flock locks the shell's descriptor: no
    child)."""
    command = f"exec 9<{path} && exec flock -s 9"
    return [
        {"id": f"s{i}", "type": "command", "parameters": {"command": command}, "depends_on": []}
        for i in range(count)
    ]


def noted(client: Client, execution_id: str, why: str) -> list[dict[str, Any]]:
    """The running steps whose `error` says they wait for room (why)."""
    steps = client.execution(execution_id)["steps"]
    return [s for s in steps if s["status"] == "running" and (s["error"] or "").startswith(why)]


def test_steps_past_the_descriptor_budget_wait_for_room_then_all_complete(
    tmp_path: Path, lock: tuple[Path, IO[str]]
) -> None:
    path, holder = lock
    room = room_for(128)
    # A soft limit of 100 under a hard one of 128: the server raises it to 128. Without
    # the room, 40 processes (3 descriptors each) would not fit: starts fail with EMFILE.
    server = ServeProcess(
        tmp_path / "data",
        "--token",
        TOKEN,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 128)),
    )
    client = server.client(TOKEN)
    try:
        execution_id = client.create(held_steps(path, 40))
        waiting = wait_until(lambda: len(noted(client, execution_id, WAITING)) == 40 - room)
        figures = client.get("/metrics").json
        families = prometheus(client)
        fcntl.flock(holder, fcntl.LOCK_UN)
        done = client.wait_for_status(execution_id, timeout=30)
    finally:
        assert server.stop() == 0
    assert waiting and figures["process_room"] == {
        "capacity": room,
        "running": room,
        "waiting": 40 - room,
    }
    assert figures["resource_usage"]["open_files_limit"] == 128  # raised from 100
    assert families["synthesis_steps_waiting_for_room"].value() == 40 - room
    assert families["synthesis_process_room"].value() == room
    assert done["status"] == "completed", [(s["status"], s["error"]) for s in done["steps"]]
    assert {(s["status"], s["error"]) for s in done["steps"]} == {("completed", None)}


def test_a_start_refused_for_lack_of_processes_is_tried_again(
    tmp_path: Path, step_user: str, lock: tuple[Path, IO[str]]
) -> None:
    """Root ignores RLIMIT_NPROC, but a step process that became the step user cannot
    exec while that user runs as many processes as the limit (EAGAIN)."""
    path, holder = lock
    server = ServeProcess(
        tmp_path / "data",
        "--token",
        TOKEN,
        "--run-as",
        step_user,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (3, 3)),
    )
    client = server.client(TOKEN)
    try:
        execution_id = client.create(held_steps(path, 6))
        refused = wait_until(lambda: noted(client, execution_id, WAITING), timeout=15)
        waiting = wait_until(lambda: client.get("/metrics").json["process_room"]["waiting"])
        fcntl.flock(holder, fcntl.LOCK_UN)
        done = client.wait_for_status(execution_id, timeout=30)
    finally:
        assert server.stop() == 0
    assert refused[0]["error"] == f"{WAITING}: {os.strerror(errno.EAGAIN)}"
    assert waiting >= 1
    assert done["status"] == "completed", [(s["status"], s["error"]) for s in done["steps"]]
    assert {(s["status"], s["error"]) for s in done["steps"]} == {("completed", None)}


def test_a_child_whose_pidfd_cannot_be_opened_is_still_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of descriptors just after the fork: the step's process is watched without one,
    never left running while its start is reported failed (and started again)."""
    runner = AsyncioRunner()
    runner.start()
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), runner.loop).result(10)

        def no_descriptor(_pid: int, _flags: int = 0) -> int:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

        monkeypatch.setattr(os, "pidfd_open", no_descriptor)
        params = {"command": "echo started; exit 7", "timeout": 5}
        coroutine = execute_command(params, RunContext())
        result = asyncio.run_coroutine_threadsafe(coroutine, runner.loop).result(10)
    finally:
        runner.stop()
    assert (result.status, result.output, result.exit_code) == ("failed", "started\n", 7)


def test_steps_ready_together_start_a_few_per_pass_of_the_loop_in_order() -> None:
    """A thousand steps ready at once must not all start in one pass of the loop, while
    every exit and timer waits behind them."""

    async def scenario() -> list[tuple[int, int]]:
        loop, room, passes = asyncio.get_running_loop(), ProcessRoom(100), [0]

        def count() -> None:  # one callback in every pass
            passes[0] += 1
            loop.call_soon(count)

        loop.call_soon(count)
        turns: list[tuple[int, int]] = []

        async def step(index: int) -> None:
            await room.turn()
            turns.append((passes[0], index))

        await asyncio.gather(*(step(i) for i in range(3 * STARTS_PER_PASS + 1)))
        return turns

    turns = asyncio.run(scenario())
    assert [index for _, index in turns] == list(range(3 * STARTS_PER_PASS + 1))
    per_pass = [sum(1 for p, _ in turns if p == n) for n in {p for p, _ in turns}]
    assert max(per_pass) == STARTS_PER_PASS and len(per_pass) == 4
