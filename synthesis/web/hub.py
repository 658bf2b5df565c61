"""The IOLoop side of the event stream: one listener of stored events, many sockets.

The bus (SQLite) or the node's tail (PostgreSQL) tells the listener each stored batch on
its own thread; the listener crosses into the IOLoop with `call_soon_threadsafe` (rule 2
of docs/architecture.md) and the hub hands each event to every socket. A socket that
joins first registers, then replays what is stored, then goes live; its EventCursor
(engine/cursor.py) holds what it hears meanwhile and hands each event out once, in `seq`
order: no gap and no duplicate, even while events keep coming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from synthesis.engine.events import Event


class Listener(Protocol):
    def deliver(self, event: Event) -> None:
        """IOLoop thread: one stored event, in order."""


class EventHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._listeners: set[Listener] = set()

    def bus_listener(self) -> Callable[[list[Event]], None]:
        """The callable to register on the bus (bus thread)."""

        def heard(events: list[Event]) -> None:
            self._loop.call_soon_threadsafe(self._publish, events)

        return heard

    def add(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def remove(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def _publish(self, events: list[Event]) -> None:
        for listener in list(self._listeners):
            for event in events:
                listener.deliver(event)
