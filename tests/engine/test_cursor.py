"""EventCursor: replayed pages and live events in, each selected event out once, in `seq`
order; a bounded hold for live events during the replay, whose overflow is reported
once and answered by replaying from the store."""

from __future__ import annotations

from synthesis.engine.cursor import EventCursor
from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import Event


class Log:
    """A stand-in for the store's events table: `events_after` as the store answers it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, count: int, execution_id: str = "x", size: int = 0) -> list[Event]:
        added = [
            Event("step_output", {"pad": "." * size}, execution_id, seq=len(self.events) + i + 1)
            for i in range(count)
        ]
        self.events += added
        return added

    def after(self, cursor: EventCursor) -> list[Event]:
        selector = cursor.selector
        return [
            e
            for e in self.events
            if e.seq is not None and e.seq > cursor.position and selector.matches(e)
        ][: cursor.page_size]


def seqs(events: list[Event]) -> list[int | None]:
    return [e.seq for e in events]


def test_a_page_then_live_events_it_already_holds_are_handed_out_once() -> None:
    log = Log()
    cursor = EventCursor(0, page_size=10)
    live = log.add(5)
    cursor.offer(live[2:])  # heard before the read: the page holds them too
    cursor.page(log.after(cursor))
    assert cursor.caught_up
    cursor.offer(live[3:])  # heard again, late
    assert seqs(cursor.drain()) == [1, 2, 3, 4, 5]
    assert cursor.position == 5 and cursor.held == 0


def test_live_events_that_arrive_during_the_replay_follow_it_in_order() -> None:
    log = Log()
    log.add(7)
    cursor = EventCursor(2, page_size=3)
    cursor.page(log.after(cursor))  # 3, 4, 5: a full page
    assert not cursor.caught_up
    assert seqs([cursor.take(), cursor.take()]) == [3, 4]  # type: ignore[list-item]
    cursor.offer(log.add(2))  # 8, 9: stored and heard while the replay goes on
    assert seqs(cursor.drain()) == [5]  # live ones wait for the replay
    cursor.page(log.after(cursor))  # 6, 7, 8: full again
    assert seqs(cursor.drain()) == [6, 7, 8]
    cursor.page(log.after(cursor))  # 9: short, caught up
    assert cursor.caught_up
    assert seqs(cursor.drain()) == [9]
    cursor.offer(log.add(1))
    assert seqs(cursor.drain()) == [10]


def test_duplicates_and_events_out_of_order_are_dropped() -> None:
    log = Log()
    events = log.add(6)
    cursor = EventCursor(0, page_size=10, caught_up=True)
    cursor.offer([events[0], events[2], events[1], events[2]])
    assert seqs(cursor.drain()) == [1, 3]
    cursor.offer([events[2], events[0], events[3]])
    cursor.page([events[3], events[4], events[3], events[5]])  # overlaps what is held
    assert seqs(cursor.drain()) == [4, 5, 6]
    cursor.offer(events)
    assert cursor.drain() == [] and cursor.position == 6


def test_a_selector_applies_to_pages_and_live_events_and_pages_still_advance() -> None:
    log = Log()
    log.add(3, "a")
    log.add(3, "b")
    cursor = EventCursor(0, EventSelector(execution_id="b"), page_size=4)
    cursor.page(log.events[:4])  # the store may return more than the selector wants
    assert seqs(cursor.drain()) == [4] and cursor.position == 4 and not cursor.caught_up
    cursor.page(log.after(cursor))
    cursor.offer(log.add(1, "a") + log.add(1, "b"))
    assert seqs(cursor.drain()) == [5, 6, 8]


def test_an_overflow_is_reported_once_and_the_replay_recovers_what_it_dropped() -> None:
    log = Log()
    cursor = EventCursor(0, page_size=4, hold_limit=3)
    cursor.page(log.after(cursor))
    assert cursor.caught_up
    first = log.add(1)
    cursor.offer(first)
    assert seqs([cursor.take()]) == [1]  # type: ignore[list-item]
    reports = [cursor.offer([event]) for event in log.add(10)]  # held while slow: 2..11
    assert reports == [False, False, False, True] + [False] * 6
    assert not cursor.caught_up and cursor.take() is None and cursor.held == 0
    handed: list[int | None] = []
    while not cursor.caught_up:
        cursor.page(log.after(cursor))
        handed += seqs(cursor.drain())
        cursor.offer(log.add(1))  # and more keep coming
    handed += seqs(cursor.drain())
    assert handed == list(range(2, len(log.events) + 1))


def test_a_short_page_read_before_events_were_dropped_does_not_catch_up() -> None:
    """The page was read before 5 and 6 were stored; they were heard, then dropped: the
    page is short, but the cursor must read again or lose them."""
    log = Log()
    log.add(4)
    cursor = EventCursor(0, page_size=10, hold_limit=1)
    page = log.after(cursor)  # read: 1..4
    assert cursor.offer(log.add(2)) is True  # 5 held, 6 overflows: both dropped
    cursor.page(page)
    assert not cursor.caught_up
    assert seqs(cursor.drain()) == [1, 2, 3, 4]
    cursor.page(log.after(cursor))
    assert cursor.caught_up and seqs(cursor.drain()) == [5, 6]


def test_the_hold_is_counted_in_the_units_of_size_and_one_event_always_fits() -> None:
    log = Log()
    cursor = EventCursor(0, page_size=10, hold_limit=100, size=lambda e: len(e.data["pad"]))
    assert cursor.offer(log.add(1, size=500)) is False  # alone: held
    assert cursor.offer(log.add(1, size=1)) is True
    cursor = EventCursor(0, page_size=10, hold_limit=100, size=lambda e: len(e.data["pad"]))
    assert [cursor.offer([e]) for e in log.add(3, size=40)] == [False, False, True]


def test_a_tail_that_only_reads_pages() -> None:
    """How a polling thread uses it: pages until one is short, handing out what is new."""
    log = Log()
    log.add(5)
    cursor = EventCursor(log.events[-1].seq or 0, page_size=2)  # starts at the newest
    heard: list[int | None] = []

    def wake() -> None:
        while True:
            cursor.page(log.after(cursor))
            heard.extend(seqs(cursor.drain()))
            if cursor.caught_up:
                return

    wake()
    assert heard == []
    log.add(5)
    wake()
    wake()
    assert heard == [6, 7, 8, 9, 10]
    log.add(2)
    wake()
    assert heard == list(range(6, 13))
