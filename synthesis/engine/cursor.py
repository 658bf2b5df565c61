"""Replay, then live, with no gap and no duplicate: the one event cursor. Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from synthesis.engine.event_selector import EVERY_EVENT, EventSelector
from synthesis.engine.events import Event


def _one(_event: Event) -> int:
    return 1


class EventCursor:
    """A reader's place in the store's event order (`seq`): it is given the pages its
    owner reads from the store and the live events its owner hears, and hands out each
    selected event once, in `seq` order, never one at or below its position.

    No I/O, no threads, no event loop: its owner reads the pages, writes what it hands
    out, and calls it from one thread at a time.

    The protocol, the same for every owner:

    - `take()` (or `drain()`) the next event to send. Events of the pages come first;
      live events only once the cursor is `caught_up`.
    - Nothing to take and not `caught_up`: read the next page,
      `store.events_after(cursor.position, cursor.selector, limit=cursor.page_size)`,
      and give it to `page()`. A page shorter than `page_size` catches the cursor up.
    - Nothing to take and `caught_up`: wait for live events, given to `offer()`.

    Live events are held until the replay catches up, bounded by `hold_limit` in the
    units of `size` (one per event unless told: a socket counts bytes). An offer past the
    bound drops every held event and returns True, once; then live events are dropped
    (and remembered by `seq`) until the next page, and the cursor replays from its
    position again. A short page catches it up only if no dropped event is newer than
    the page: the store holds every dropped event, since an event is heard only once it
    is stored.

    The owner must start hearing live events before it reads its first page, so every
    event is either in a page or offered (or both: the cursor keeps one).

    Its three users:

    - A WebSocket (web/sockets.py, IOLoop thread) registers with the hub, then takes,
      sends and reads pages until it is caught up, pacing itself on the client; each event
      the hub delivers is offered, then, once live, sent at once. An overflow closes the
      socket with 1013 (`hold_limit`: `websocket_buffer_bytes`, counted in bytes).
    - A webhook SubscriptionActor (actors/subscriptions.py, aio loop) starts at its
      stored position and takes one event at a time, POSTing it until it is handled;
      the supervisor offers it the live events. Its held events are its queue
      (`hold_limit`: `max_queue` events): when they arrive faster than the callback takes
      them, the overflow (logged) sends it back to the store, read from its position.
    - A cluster event tail (a plain thread) never hears live events: woken by a NOTIFY or
      a poll, it gives the cursor pages (`page()`, then `drain()` for the new events)
      until one is short (`caught_up`), and hands what it drained to its listeners. It
      never overflows.
    """

    def __init__(
        self,
        position: int = 0,
        selector: EventSelector = EVERY_EVENT,
        *,
        page_size: int = 1000,
        hold_limit: int = 1000,
        size: Callable[[Event], int] = _one,
        caught_up: bool = False,
    ) -> None:
        """`position`: the seq after which to start; `caught_up`: start live (no
        replay), e.g. a socket that asked for no history."""
        self.position = position  # every event at or below it is read, taken or unwanted
        self.selector = selector
        self.page_size = page_size
        self.caught_up = caught_up
        self._limit = hold_limit
        self._size = size
        self._ready: deque[Event] = deque()  # from pages: at or below position
        self._held: deque[tuple[Event, int]] = deque()  # live, with its size: above it
        self._held_size = 0
        self._dropping = False  # overflowed: live events are dropped until the next page
        self._dropped = 0  # the newest seq dropped

    def offer(self, events: Iterable[Event]) -> bool:
        """Live events, in `seq` order. Those not selected, at or below the position, or
        not newer than the last one held are ignored. True when this offer overflowed the
        bound (once, until the next page)."""
        overflowed = False
        for event in events:
            seq = event.seq
            if seq is None or seq <= self.position or not self.selector.matches(event):
                continue
            if self._held and seq <= (self._held[-1][0].seq or 0):
                continue
            if self._dropping:
                self._dropped = max(self._dropped, seq)
                continue
            size = self._size(event)
            if self._held and self._held_size + size > self._limit:  # one alone always fits
                self._overflow(seq)
                overflowed = True
                continue
            self._held.append((event, size))
            self._held_size += size
        return overflowed

    def page(self, events: Iterable[Event]) -> None:
        """A page read from the store after `position`, in `seq` order, up to `page_size`
        rows (the store may narrow by `selector` or not: the cursor checks every event)."""
        rows = 0
        for event in events:
            rows += 1
            seq = event.seq
            if seq is None or seq <= self.position:
                continue
            self.position = seq
            if self.selector.matches(event):
                self._ready.append(event)
        while self._held and (self._held[0][0].seq or 0) <= self.position:
            _event, size = self._held.popleft()
            self._held_size -= size
        self._dropping = False
        self.caught_up = rows < self.page_size and self._dropped <= self.position

    def take(self) -> Event | None:
        """The next event to send, or None: read a page (not `caught_up`) or wait."""
        if self._ready:
            return self._ready.popleft()
        if not self.caught_up or not self._held:
            return None
        event, size = self._held.popleft()
        self._held_size -= size
        self.position = event.seq or self.position
        return event

    def drain(self) -> list[Event]:
        """Every event `take()` would give now, in order."""
        taken: list[Event] = []
        while (event := self.take()) is not None:
            taken.append(event)
        return taken

    @property
    def held(self) -> int:
        """Live events waiting for the replay (or the owner) to take them."""
        return len(self._held)

    def _overflow(self, seq: int) -> None:
        if self._held:
            seq = max(seq, self._held[-1][0].seq or 0)
        self._held.clear()
        self._held_size = 0
        self._dropped = max(self._dropped, seq)
        self._dropping = True
        self.caught_up = False
