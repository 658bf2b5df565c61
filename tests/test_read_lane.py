"""The read lane (web/read_lane.py): every read answered on the lane's one thread, in
order, errors raised where awaited, and nothing asked is lost on close."""

from __future__ import annotations

import asyncio
import threading
import weakref

import pytest

from synthesis.web.read_lane import ReadLane
from tests.support import wait_until


def test_reads_are_answered_in_batches_and_errors_reach_their_caller() -> None:
    async def main() -> None:
        lane = ReadLane(asyncio.get_running_loop())
        gate = threading.Event()
        threads: set[str] = set()

        def read(value: int) -> int:
            gate.wait(5)  # the first read holds the lane while the others are asked
            threads.add(threading.current_thread().name)
            return value * 2

        def broken() -> None:
            raise KeyError("gone")

        first = lane.submit(read, 0)
        rest = [lane.submit(read, i) for i in range(1, 50)]
        failing = lane.submit(broken)
        gate.set()
        assert await asyncio.gather(first, *rest) == [i * 2 for i in range(50)]
        with pytest.raises(KeyError):
            await failing
        assert threads == {"synthesis-read-lane"}
        await asyncio.to_thread(lane.close)
        with pytest.raises(RuntimeError):
            lane.submit(read, 1)

    asyncio.run(main())


def test_close_answers_what_was_asked_first() -> None:
    async def main() -> None:
        lane = ReadLane(asyncio.get_running_loop())
        started = threading.Event()
        release = threading.Event()

        def slow() -> str:
            started.set()
            release.wait(5)
            return "slow"

        running = lane.submit(slow)
        assert await asyncio.to_thread(started.wait, 5)
        queued = lane.submit(lambda: "queued")
        closing = asyncio.ensure_future(asyncio.to_thread(lane.close))
        release.set()
        await closing
        assert (await running, await queued) == ("slow", "queued")

    asyncio.run(main())


def test_the_lane_keeps_nothing_of_a_batch_while_it_waits() -> None:
    """An answer (an execution with its steps' output: megabytes) is the caller's alone
    once given: the lane thread holds no reference to it while it waits for more work."""

    class Answer:
        pass

    async def main() -> None:
        lane = ReadLane(asyncio.get_running_loop())
        answer = await lane.submit(Answer)
        gone = weakref.ref(answer)
        del answer
        await asyncio.to_thread(wait_until, lambda: gone() is None)
        await asyncio.to_thread(lane.close)

    asyncio.run(main())
