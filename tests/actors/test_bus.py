"""The event bus stores every commit, in order, before a listener or caller hears of it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from synthesis.actors.bus import EventBus
from synthesis.actors.messages import Commit, Listen
from synthesis.engine.events import Event
from synthesis.store import Store
from tests.support import wait_until


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_tables()
    yield store
    store.close()


def test_listeners_hear_only_stored_events_in_order(store: Store) -> None:
    execution_id = str(uuid.uuid4())
    heard: list[Event] = []
    stored_when_heard: list[bool] = []

    def listener(events: list[Event]) -> None:
        known = {e.event_id for e in store.events_for(execution_id)}
        stored_when_heard.extend(e.event_id in known for e in events)
        heard.extend(events)

    bus = EventBus.start(store)
    try:
        bus.tell(Listen(listener))
        sent = [Event("notification", {"n": i}, execution_id) for i in range(300)]
        for event in sent:  # many small commits: the bus groups them into few transactions
            bus.tell(Commit(events=(event,)))
        wait_until(lambda: len(heard) == len(sent))
    finally:
        bus.stop()
    assert [e.event_id for e in heard] == [e.event_id for e in sent]
    assert all(stored_when_heard)
    seqs = [e.seq for e in heard]
    assert seqs == sorted(seqs) and None not in seqs


def test_listeners_hear_each_transaction_once(store: Store) -> None:
    """Commits stored together reach a listener as one call (one crossing into its
    thread per transaction, not one per commit), still in order."""
    execution_id = str(uuid.uuid4())
    calls: list[list[Event]] = []
    release = threading.Event()

    def listener(events: list[Event]) -> None:
        release.wait(10)  # the first call holds the bus while the rest queue up
        calls.append(events)

    bus = EventBus.start(store)
    try:
        bus.tell(Listen(listener))
        sent = [Event("notification", {"n": i}, execution_id) for i in range(100)]
        bus.tell(Commit(events=(sent[0],)))
        wait_until(lambda: len(store.events_for(execution_id)) == 1)
        for event in sent[1:]:
            bus.tell(Commit(events=(event,)))
        release.set()
        wait_until(lambda: sum(len(c) for c in calls) == len(sent))
    finally:
        bus.stop()
    assert [len(c) for c in calls] == [1, 99]
    assert [e.event_id for c in calls for e in c] == [e.event_id for e in sent]


def test_a_refused_commit_fails_only_its_own_caller(store: Store) -> None:
    outcomes: dict[str, object] = {}
    done = threading.Event()
    duplicate = Event("notification", {}, None)

    def record(name: str):
        def on_stored(value: object) -> None:
            outcomes[name] = value
            if len(outcomes) == 3:
                done.set()

        return on_stored

    bus = EventBus.start(store)
    try:
        bus.tell(Commit(events=(duplicate,), on_stored=record("first")))
        bus.tell(Commit(events=(duplicate,), on_stored=record("again")))  # same event_id
        bus.tell(Commit(events=(Event("notification", {}, None),), on_stored=record("other")))
        assert done.wait(10)
    finally:
        bus.stop()
    assert isinstance(outcomes["again"], Exception)
    assert isinstance(outcomes["first"], list) and isinstance(outcomes["other"], list)


def test_stopping_the_bus_stores_what_it_holds(store: Store) -> None:
    execution_id = str(uuid.uuid4())
    bus = EventBus.start(store)
    for i in range(50):
        bus.tell(Commit(events=(Event("notification", {"n": i}, execution_id),)))
    bus.stop()
    assert len(store.events_for(execution_id)) == 50


def test_a_failing_on_stored_callback_does_not_silence_the_transaction(store: Store) -> None:
    """A caller's callback that raises is that caller's problem: the listeners still hear
    every event of its transaction and the bus goes on storing."""
    execution_id = str(uuid.uuid4())
    heard: list[Event] = []

    def broken(_value: object) -> None:
        raise RuntimeError("a bug in a caller")

    bus = EventBus.start(store)
    try:
        bus.tell(Listen(heard.extend))
        first = Event("notification", {"n": 1}, execution_id)
        bus.tell(Commit(events=(first,), on_stored=broken))
        wait_until(lambda: len(heard) == 1)
        second = Event("notification", {"n": 2}, execution_id)
        bus.tell(Commit(events=(second,)))
        wait_until(lambda: len(heard) == 2)
    finally:
        bus.stop()
    assert [e.event_id for e in heard] == [first.event_id, second.event_id]
