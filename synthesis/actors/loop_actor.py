"""LoopActor: a Pykka actor that lives on an asyncio loop instead of a thread of its own.

Its messages are handled one at a time, in order, as callbacks on the loop, with Pykka's
own semantics (tell, ask, stop, on_start/on_stop/on_failure, the registry). It is for
actors whose work is asyncio I/O on that loop anyway, such as a step running a
subprocess: such an actor then costs no thread and no thread hop. Its handlers run on the
loop, so they must not block.

Pykka documents `_create_actor_inbox`, `_create_future` and `_start_actor_loop` as the
hooks a runtime implements; this runtime restates Pykka's per-message handling, so it
depends on Pykka's internals of one major version (pinned in pyproject.toml), and
tests/actors/test_loop_actor.py holds it to Pykka's actor contract.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from synthesis.actors.door import Door, door, running_loop

log = logging.getLogger(__name__)


class _LoopInbox:
    """Each envelope put is scheduled on the loop; the loop is the queue."""

    def __init__(self, actor: LoopActor) -> None:
        self._actor = actor
        self._door: Door | None = None  # the actor's loop is set after its inbox

    @property
    def door(self) -> Door:
        if self._door is None:
            self._door = door(self._actor.loop)
        return self._door

    def put(self, envelope: Envelope[Any], /) -> None:
        loop = self._actor.loop
        if running_loop() is loop:  # told from the loop itself (an actor to itself or to
            loop.call_soon(self._actor._handle_envelope, envelope)  # a sibling): no wake-up
        else:  # another thread: through the loop's door, one wake-up per batch
            self.door.post(self._actor._handle_envelope, envelope)

    def get(self) -> Envelope[Any]:
        raise RuntimeError("a LoopActor's inbox is drained by its loop")

    def empty(self) -> bool:
        return True


class LoopActor(pykka.Actor):
    loop: asyncio.AbstractEventLoop  # set in the subclass's __init__, before start() returns

    def _create_actor_inbox(self) -> _LoopInbox:  # type: ignore[override]
        return _LoopInbox(self)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        # on_start first in line: through the door, ahead of whatever is told after it
        # from any thread (a message posted later cannot run before it)
        self.actor_inbox.door.post(self._actor_loop_setup)  # type: ignore[attr-defined]

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        """Loop thread: Pykka's handling of one message, as in its thread loop
        (`Actor._actor_loop_running`, then `_actor_loop_teardown` once stopped)."""
        if self.actor_stopped.is_set():
            if envelope.reply_to is None:
                return
            if isinstance(envelope.message, _ActorStop):  # stopped already: done
                envelope.reply_to.set(None)
                return
            error = pykka.ActorDeadError(f"{self.actor_ref} stopped before handling the message")
            envelope.reply_to.set_exception(exc_info=(type(error), error, None))
            return
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
                return
            self._handle_failure(*sys.exc_info())
            try:
                self.on_failure(*sys.exc_info())
            except Exception:
                self._handle_failure(*sys.exc_info())
        except BaseException:  # as Pykka: this actor stops, and every other one with it
            log.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            # Not waiting: the actors that live on this loop can only stop once it is free.
            pykka.ActorRegistry.stop_all(block=False)
