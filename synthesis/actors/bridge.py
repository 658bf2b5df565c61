"""Crossing from the IOLoop to actors and back without ever blocking the loop (rule 1 of
docs/architecture.md).

A request message carries a `Reply`: a callable the actor calls, from its own thread,
with the result or an exception. `Bridge.ask` turns that into an awaitable with a
timeout; a timeout or a dead actor becomes one API error here, in one place.

Replies cross into the IOLoop through its door (actors/door.py): those that arrive while
the IOLoop has not yet taken the earlier ones are resolved together, one wake-up (a
self-pipe write, and the GIL handed over) per batch, not one per reply, so a bus
transaction that stores 50 creates wakes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pykka

from synthesis.actors.door import door
from synthesis.engine.errors import ApiError

Reply = Callable[[Any], None]


def no_reply(_value: Any) -> None:
    """For messages whose sender does not wait for an answer."""


class Bridge:
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self._door = door(loop)

    def reply_for(self, future: asyncio.Future[Any]) -> Reply:
        def reply(value: Any) -> None:
            """Any thread."""
            with contextlib.suppress(RuntimeError):  # the IOLoop is closed: nobody waits
                self._door.post(_resolve, future, value)

        return reply

    async def ask(
        self,
        actor: pykka.ActorRef[Any],
        make_message: Callable[[Reply], Any],
        timeout: float | None = None,
    ) -> Any:
        """Send `make_message(reply)` to `actor`; await the reply. IOLoop thread."""
        future = self.loop.create_future()
        try:
            actor.tell(make_message(self.reply_for(future)))
        except pykka.ActorDeadError:
            raise ApiError("unavailable", "the execution engine is not running") from None
        try:
            return await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError:
            raise ApiError("unavailable", "the execution engine did not answer in time") from None


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
