"""The IOLoop side of the event stream: one listener of stored events, many sockets.

The bus (SQLite) or the node's tail (PostgreSQL) tells the listener each stored batch on
its own thread; the listener crosses into the IOLoop with `call_soon_threadsafe` (rule 2
of docs/architecture.md), once for all the batches told before the IOLoop takes them (so
the busier the IOLoop, the bigger its batches), and the hub hands each socket the events
of those batches that it selects, in one call. A socket that joins first registers, then replays
what is stored, then goes live; its EventCursor (engine/cursor.py) holds what it hears
meanwhile and hands each event out once, in `seq` order: no gap and no duplicate, even
while events keep coming.

Sockets are indexed by their EventSelector, and selectors by the execution they name
(None: any execution): an event is matched once per distinct selector that may want it,
not once per socket, and a socket never hears of an event it does not select.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Protocol

from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import Event


class Listener(Protocol):
    def deliver(self, events: list[Event]) -> None:
        """IOLoop thread: stored events it selects, in order, never an empty list. The
        list is shared with the other listeners of the same selector: read it only."""


class EventHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._heard: list[Event] = []  # told, not yet taken by the IOLoop: in seq order
        self._scheduled = False  # a _publish_heard is on its way
        self._selector_of: dict[Listener, EventSelector] = {}
        self._groups: dict[EventSelector, dict[Listener, None]] = {}  # insertion-ordered sets
        self._by_execution: dict[str | None, set[EventSelector]] = {}

    def bus_listener(self) -> Callable[[list[Event]], None]:
        """The callable to register on the bus (bus thread)."""

        def heard(events: list[Event]) -> None:
            if not self._selector_of:  # nobody listens: no wake-up (a socket that joins
                return  # later replays what was stored before it from the store)
            with self._lock:
                self._heard.extend(events)
                if self._scheduled:  # the IOLoop has not taken the last ones yet
                    return
                self._scheduled = True
            self._loop.call_soon_threadsafe(self._publish_heard)

        return heard

    def add(self, listener: Listener, selector: EventSelector) -> None:
        """IOLoop thread: `listener` hears the live events `selector` selects (a listener
        added again keeps only its new selector)."""
        self.remove(listener)
        self._selector_of[listener] = selector
        group = self._groups.get(selector)
        if group is None:
            group = self._groups[selector] = {}
            self._by_execution.setdefault(selector.execution_id, set()).add(selector)
        group[listener] = None

    def remove(self, listener: Listener) -> None:
        selector = self._selector_of.pop(listener, None)
        if selector is None:
            return
        group = self._groups[selector]
        del group[listener]
        if not group:
            del self._groups[selector]
            selectors = self._by_execution[selector.execution_id]
            selectors.discard(selector)
            if not selectors:
                del self._by_execution[selector.execution_id]

    def __len__(self) -> int:
        return len(self._selector_of)

    def _publish_heard(self) -> None:
        with self._lock:
            events, self._heard = self._heard, []
            self._scheduled = False
        self._publish(events)

    def _publish(self, events: list[Event]) -> None:
        """IOLoop thread: one stored batch, in `seq` order."""
        chosen: dict[EventSelector, list[Event]] = {}
        anywhere = self._by_execution.get(None, ())
        for event in events:
            for selector in anywhere:
                if selector.matches(event):
                    chosen.setdefault(selector, []).append(event)
            if event.execution_id is not None:
                for selector in self._by_execution.get(event.execution_id, ()):
                    if selector.matches(event):
                        chosen.setdefault(selector, []).append(event)
        for selector, selected in chosen.items():
            group = self._groups.get(selector)
            if group:
                for listener in list(group):  # a delivery may remove its listener
                    listener.deliver(selected)
