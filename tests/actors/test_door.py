"""The loop's door (actors/door.py) on a real loop: a drain never holds the loop past
what was posted before it began, and a failing callback leaves nothing behind."""

from __future__ import annotations

import asyncio
import threading

from synthesis.actors.door import door
from tests.actors.conftest import hold

WAIT = 5.0


def test_posts_made_during_a_drain_wait_for_the_loops_next_turn(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Posts keep coming while the loop drains (under load the bus answers faster than
    the loop handles answers): the drain must not run them all in one go, or timers and
    I/O (every socket of the server) wait until the posts stop."""
    ran: list[int] = []
    turn = threading.Event()
    seen_at: list[int] = []

    def step(n: int) -> None:
        ran.append(n)
        if n == 0:
            loop.call_soon(lambda: (seen_at.append(len(ran)), turn.set()))
        if n < 10_000:
            door(loop).post(step, n + 1)  # as a reply posted while the drain runs

    door(loop).post(step, 0)
    assert turn.wait(WAIT)
    assert seen_at[0] < 100, f"the loop's own callbacks waited for {seen_at[0]} posts"


def test_a_callback_raising_a_base_exception_leaves_the_rest_to_run(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """As the loop does for its callbacks: one that raises CancelledError (a
    BaseException) does not keep the ones posted after it from running."""
    done = threading.Event()
    release = hold(loop, WAIT)

    def cancelled() -> None:
        raise asyncio.CancelledError

    door(loop).post(cancelled)
    door(loop).post(done.set)  # same batch: one drain runs both
    release.set()
    assert done.wait(WAIT)
