"""Subscription actors against a real store, event bus and aio loop, delivering to a real
loopback receiver: matching, a full queue falling back to the store, and a restart that
delivers what was not delivered yet."""

from __future__ import annotations

import gc
import logging
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from sqlalchemy import delete

from synthesis.actors.aio import AsyncioRunner
from synthesis.actors.bus import EventBus
from synthesis.actors.messages import Commit, Listen, Ping
from synthesis.actors.services import Services
from synthesis.actors.subscriptions import (
    ControlSubscription,
    DeliveryPolicy,
    Redelivery,
    Subscribe,
    Subscription,
    SubscriptionActor,
    SubscriptionSupervisor,
)
from synthesis.engine import clock
from synthesis.engine.events import Event
from synthesis.store import Store
from synthesis.store.paging import Paging
from synthesis.store.subscription_models import (
    all_subscriptions,
    deliveries,
    list_deliveries,
    subscriptions,
)
from tests.conftest import fresh_postgres_database
from tests.receiver import Receiver
from tests.support import make_settings, wait_until

# ---- a loopback webhook receiver (the API tests use it too) ----------------------------


def test_matching_by_type_execution_and_payload_keys() -> None:
    eid = str(uuid.uuid4())
    started = Event("execution_started", {"execution_id": eid, "name": "n"}, eid)
    created = Event("plan_created", {"plan_id": "p1", "name": "nightly"})

    def sub(types: tuple[str, ...] = (), **flt: Any) -> Subscription:
        return Subscription("s", "http://x", frozenset(types), flt, None, 0)

    assert sub().selector.matches(started) and sub().selector.matches(created)
    assert sub(("execution_started",)).selector.matches(started)
    assert not sub(("execution_completed",)).selector.matches(started)
    assert sub(execution_id=eid).selector.matches(started)
    assert not sub(execution_id=eid).selector.matches(created)
    assert not sub(execution_id=str(uuid.uuid4())).selector.matches(started)
    assert sub(name="nightly").selector.matches(created) and not sub(
        name="nightly"
    ).selector.matches(started)
    assert not sub(plan_id=None).selector.matches(started)  # a missing key is not None
    assert sub(("plan_created",), plan_id="p1", name="nightly").selector.matches(created)
    assert "hush" not in repr(Subscription("s", "u", frozenset(), {}, None, 0, "hush"))
    assert "hush" not in repr(Subscribe({"secret": "hush"}, lambda _value: None))
    assert DeliveryPolicy(backoff_seconds=0.5, max_backoff_seconds=3).backoff(1) == 0.5
    assert DeliveryPolicy(backoff_seconds=0.5, max_backoff_seconds=3).backoff(3) == 2.0
    assert DeliveryPolicy(backoff_seconds=0.5, max_backoff_seconds=3).backoff(9) == 3


class Engine:
    """Store, bus and aio loop as the runtime wires them, and a subscription supervisor
    that can be stopped and started again over the same store."""

    def __init__(self, store: Store, tmp_path: Any, policy: DeliveryPolicy) -> None:
        self.store = store
        self.policy = policy
        self.settings = make_settings(tmp_path, store.url)
        self.aio = AsyncioRunner()
        self.aio.start()
        self.bus: pykka.ActorRef[Any] = EventBus.start(store)
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.made: list[str] = []
        self.start_supervisor()

    def start_supervisor(self) -> None:
        services = Services(self.settings, self.store, self.bus, self.aio)
        self.supervisor = SubscriptionSupervisor.start(services, self.policy)

    def restart(self) -> None:
        """As a server restart does: supervisor down, bus down (it stores what it
        holds), then both up again."""
        assert self.supervisor is not None
        self.supervisor.stop()
        self.bus.stop()
        self.bus = EventBus.start(self.store)
        self.start_supervisor()

    def subscribe(self, url: str, **fields: Any) -> str:
        row = {
            "id": str(uuid.uuid4()),
            "types": fields.get("types", []),
            "event_filter": fields.get("event_filter", {}),
            "callback_url": url,
            "secret": None,
            "expiration": None,
            "created_at": clock.now(),
            "created_by": None,
        }
        answer = threading.Event()
        assert self.supervisor is not None
        self.supervisor.tell(Subscribe(row, lambda _value: answer.set()))
        assert answer.wait(10)
        self.made.append(row["id"])
        return row["id"]

    def emit(self, execution_id: str, count: int) -> list[Event]:
        return self.send([Event("notification", {"n": i}, execution_id) for i in range(count)])

    def send(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.bus.tell(Commit(events=(event,)))
        return events

    def ask(self, message: Callable[[Callable[[Any], None]], Any]) -> Any:
        """Ask the supervisor as the web layer does; an error answer is raised."""
        answers: list[Any] = []
        answered = threading.Event()

        def reply(value: Any) -> None:
            answers.append(value)
            answered.set()

        assert self.supervisor is not None
        self.supervisor.tell(message(reply))
        assert answered.wait(10)
        if isinstance(answers[0], BaseException):
            raise answers[0]
        return answers[0]

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.bus.stop()
        self.aio.stop()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_tables()
    yield store
    store.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of this module's own: its supervisors lease as no registered node, so
    another module's subscriptions left in the session's database must not be there."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def engines(store: Store, tmp_path: Any) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(**policy: Any) -> Engine:
        made.append(Engine(store, tmp_path, DeliveryPolicy(**policy)))
        return made[-1]

    yield make
    for engine in made:
        engine.stop()
        with store.engine.begin() as conn:  # the PostgreSQL database is shared by the module
            for sid in engine.made:
                conn.execute(delete(deliveries).where(deliveries.c.subscription_id == sid))
                conn.execute(delete(subscriptions).where(subscriptions.c.id == sid))


def test_a_full_queue_falls_back_to_the_store_with_no_gap_and_no_duplicate(
    engines: Callable[..., Engine], receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="synthesis.actors.subscriptions")
    engine = engines(max_queue=3, replay_page=7)
    execution_id = str(uuid.uuid4())
    name = f"queue-{execution_id}"
    engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    receiver.hold(name)
    sent = engine.emit(execution_id, 1)
    wait_until(lambda: receiver.arrived[name] == 1)
    sent += engine.emit(execution_id, 59)  # while the first delivery is held
    wait_until(lambda: any("replaying from the store" in r.message for r in caplog.records))
    receiver.release(name)
    wait_until(lambda: len(receiver.event_ids(name)) >= len(sent))
    assert receiver.event_ids(name) == [e.event_id for e in sent]


def rows_of(
    store: Store, sid: str, status: str | None = None, count: int | None = None
) -> list[dict[str, Any]]:
    """A subscription's delivery rows, oldest event first (none until there are `count`)."""
    rows = list_deliveries(store, sid, status, Paging(limit=1000)).rows
    return rows[::-1] if count is None or len(rows) == count else []


def test_one_kept_alive_connection_carries_the_deliveries_and_every_one_is_recorded(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines()
    execution_id = str(uuid.uuid4())
    name = f"alive-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    sent = engine.emit(execution_id, 30)
    wait_until(lambda: len(receiver.event_ids(name)) >= 30)
    assert receiver.event_ids(name) == [e.event_id for e in sent]
    assert len(receiver.connections[name]) == 1
    rows = wait_until(lambda: rows_of(store, sid, "delivered", count=30))
    assert [(r["event_id"], r["attempts"], r["status_code"]) for r in rows] == [
        (e.event_id, 1, 200) for e in sent
    ]
    last = store.get_event(sent[-1].event_id)
    assert last is not None
    [row] = [r for r in all_subscriptions(store) if r["id"] == sid]
    assert (row["position"], row["failures"]) == (last.seq, 0)


def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_it_is_back(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines(backoff_seconds=0.01, max_backoff_seconds=0.05)  # a 24-hour window
    execution_id = str(uuid.uuid4())
    name = f"down-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    receiver.close(name)
    sent = engine.emit(execution_id, 10)
    wait_until(lambda: receiver.attempts[name] >= 15)  # well past any fixed attempt count
    receiver.open(name)
    wait_until(lambda: len(receiver.event_ids(name)) >= 10)
    assert receiver.event_ids(name) == [e.event_id for e in sent]
    rows = wait_until(lambda: rows_of(store, sid, "delivered", count=10))
    assert [r["event_id"] for r in rows] == [e.event_id for e in sent]
    assert rows[0]["attempts"] >= 15 and rows[0]["error"] is None
    assert [r["attempts"] for r in rows[1:]] == [1] * 9


def test_a_slow_receiver_times_out_and_is_retried_a_quick_one_gets_the_event_once(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines(request_timeout_seconds=0.3, backoff_seconds=0.01, max_backoff_seconds=0.05)
    execution_id = str(uuid.uuid4())
    slow, quick = f"slow-{execution_id}", f"quick-{execution_id}"
    receiver.slow(slow, 1.0, 2)  # over the timeout twice, then quick
    receiver.slow(quick, 0.1, 1)  # under it
    only_this = {"execution_id": execution_id}
    slow_sid = engine.subscribe(receiver.url(slow), event_filter=only_this)
    quick_sid = engine.subscribe(receiver.url(quick), event_filter=only_this)
    [event] = engine.emit(execution_id, 1)

    def timed_out() -> dict[str, Any] | None:
        rows = rows_of(store, slow_sid, "retrying")
        return rows[0] if rows and rows[0]["error"] else None

    row = wait_until(timed_out)
    assert row["error"] == "timed out after 0.3 s (the webhook timeout)"
    assert row["status_code"] is None and row["next_attempt_at"] is not None
    delivered = wait_until(lambda: rows_of(store, slow_sid, "delivered"))
    assert [(r["event_id"], r["attempts"]) for r in delivered] == [(event.event_id, 3)]
    assert [(r["status"], r["attempts"]) for r in rows_of(store, quick_sid)] == [("delivered", 1)]
    assert receiver.arrived[quick] == 1 and receiver.event_ids(quick) == [event.event_id]


def test_an_event_past_its_window_is_dead_and_the_next_one_is_delivered(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines(retry_window_seconds=0.3, backoff_seconds=0.02, max_backoff_seconds=0.05)
    execution_id = str(uuid.uuid4())
    name = f"window-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    poisoned, healthy = (Event("notification", {"n": i}, execution_id) for i in range(2))
    receiver.poison(name, poisoned.event_id)
    engine.send([poisoned, healthy])
    wait_until(lambda: receiver.event_ids(name))
    assert receiver.event_ids(name) == [healthy.event_id]
    dead, delivered = wait_until(lambda: rows_of(store, sid, count=2))
    assert (dead["event_id"], dead["status"]) == (poisoned.event_id, "dead")
    assert (dead["status_code"], dead["error"]) == (503, "HTTP 503 Service Unavailable")
    assert dead["attempts"] >= 2 and dead["next_attempt_at"] is None
    assert clock.duration_ms(dead["created_at"], dead["completed_at"]) >= 300
    assert (delivered["event_id"], delivered["status"]) == (healthy.event_id, "delivered")


def test_a_restart_goes_on_with_the_same_delivery_its_attempts_and_its_window(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines(backoff_seconds=0.01, max_backoff_seconds=0.05)
    execution_id = str(uuid.uuid4())
    name = f"restart-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    sent = engine.emit(execution_id, 5)
    wait_until(lambda: len(receiver.event_ids(name)) == 5)
    receiver.close(name)
    sent += engine.emit(execution_id, 5)

    def retrying(more_than: int = 1) -> dict[str, Any] | None:
        rows = rows_of(store, sid, "retrying")
        return rows[0] if rows and rows[0]["attempts"] > more_than else None

    before = wait_until(retrying)
    engine.restart()
    after = wait_until(lambda: retrying(before["attempts"]))
    assert (after["id"], after["created_at"]) == (before["id"], before["created_at"])
    receiver.open(name)
    wait_until(lambda: len(receiver.event_ids(name)) >= 10)
    assert receiver.event_ids(name) == [e.event_id for e in sent]

    def recorded() -> Counter[str]:
        statuses = Counter(r["status"] for r in rows_of(store, sid))
        return statuses if statuses["delivered"] == 10 else Counter()

    assert wait_until(recorded) == Counter(delivered=10)
    [resumed] = [r for r in rows_of(store, sid) if r["id"] == before["id"]]
    assert resumed["created_at"] == before["created_at"] and resumed["attempts"] > after["attempts"]


def test_a_failure_in_the_delivery_loop_goes_on_with_the_same_delivery_row(
    engines: Callable[..., Engine],
    store: Store,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The loop starts over from the subscription's position after a bug; the event it
    was retrying keeps its one delivery row, its attempts and its window, even when the
    attempt it resumes with fails the same way."""
    engine = engines(backoff_seconds=0.01, max_backoff_seconds=0.05)
    execution_id = str(uuid.uuid4())
    name = f"loop-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    receiver.close(name)
    [event] = engine.emit(execution_id, 1)

    def retrying(more_than: int = 0) -> dict[str, Any] | None:
        rows = rows_of(store, sid, "retrying")
        return rows[0] if rows and rows[0]["attempts"] > more_than else None

    before = wait_until(lambda: retrying(1))
    next_delay = DeliveryPolicy.next_delay
    failures = 0

    def fails_twice(self: DeliveryPolicy, *args: Any) -> float | None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise RuntimeError("a bug in the delivery loop")
        return next_delay(self, *args)

    def failed() -> int:
        return sum("delivery loop failed" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(DeliveryPolicy, "next_delay", fails_twice)
    wait_until(lambda: failed() == 2)
    wait_until(lambda: retrying(before["attempts"] + 1))
    receiver.open(name)
    wait_until(lambda: receiver.event_ids(name) == [event.event_id])
    [row] = wait_until(lambda: rows_of(store, sid, "delivered"))
    assert rows_of(store, sid) == [row]  # one row for the event, not a second beside it
    assert (row["id"], row["created_at"]) == (before["id"], before["created_at"])
    assert row["attempts"] > before["attempts"] + 1


def subscription_actor() -> pykka.ActorRef[Any] | None:
    """The live subscription actor, if any (a test here makes one subscription)."""
    live = [r for r in pykka.ActorRegistry.get_by_class(SubscriptionActor) if r.is_alive()]
    assert len(live) <= 1, live
    return live[0] if live else None


def test_an_actor_dead_of_a_bug_restarts_once_its_last_records_are_stored(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    """The new actor reads the store: it must find what the dead one handed the bus as
    it died, or an event's delivery row stored after that read gets a twin."""
    engine = engines(backoff_seconds=0.01, max_backoff_seconds=0.05)
    execution_id = str(uuid.uuid4())
    name = f"crash-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    receiver.close(name)
    receiver.hold(name)
    [event] = engine.emit(execution_id, 1)
    wait_until(lambda: receiver.arrived[name] == 1)  # the first attempt, held
    blocked, gate = threading.Event(), threading.Event()
    engine.bus.tell(Commit(on_stored=lambda _result: (blocked.set(), gate.wait(20))))
    wait_until(blocked.is_set)  # the bus stores nothing more until the gate opens
    receiver.release(name)
    wait_until(lambda: receiver.attempts[name] >= 2)  # the first one's row handed to the bus
    dying = subscription_actor()
    assert dying is not None
    dying.tell(Redelivery({}))  # a bug: a row without an id
    wait_until(lambda: not dying.is_alive())
    assert engine.ask(Ping) == "pong"  # the supervisor has heard of the crash
    try:
        assert subscription_actor() is None  # not restarted while its last records wait
    finally:
        gate.set()
    wait_until(lambda: subscription_actor() is not None)
    receiver.open(name)
    wait_until(lambda: receiver.event_ids(name) == [event.event_id])
    [row] = wait_until(lambda: rows_of(store, sid, "delivered"))
    assert rows_of(store, sid) == [row]  # one row for the event


def test_too_many_dead_events_in_a_row_pause_the_subscription_until_resumed(
    engines: Callable[..., Engine], store: Store, receiver: Receiver
) -> None:
    engine = engines(
        retry_window_seconds=0.2,
        backoff_seconds=0.02,
        max_backoff_seconds=0.05,
        pause_after_failures=2,
    )
    execution_id = str(uuid.uuid4())
    name = f"pause-{execution_id}"
    sid = engine.subscribe(receiver.url(name), event_filter={"execution_id": execution_id})
    receiver.close(name)
    sent = engine.emit(execution_id, 3)

    def subscription() -> dict[str, Any]:
        [row] = [r for r in all_subscriptions(store) if r["id"] == sid]
        return row

    paused = wait_until(lambda: (row := subscription())["status"] == "paused" and row)
    assert paused["paused_reason"] == (
        "paused after 2 events in a row were not delivered; "
        "the last one: HTTP 503 Service Unavailable"
    )
    second = store.get_event(sent[1].event_id)
    assert second is not None and (paused["failures"], paused["position"]) == (2, second.seq)
    assert [(r["event_id"], r["status"]) for r in rows_of(store, sid)] == [
        (sent[0].event_id, "dead"),
        (sent[1].event_id, "dead"),
    ]
    engine.restart()  # a paused subscription stays paused
    receiver.open(name)
    assert engine.ask(lambda reply: ControlSubscription(sid, "resume", reply))["status"] == "active"
    wait_until(lambda: receiver.event_ids(name))
    assert receiver.event_ids(name) == [sent[2].event_id]
    assert subscription()["status"] == "active"
    assert wait_until(lambda: subscription()["failures"] == 0)


def test_the_supervisor_keeps_no_stored_batch_alive_once_handled(engines) -> None:
    """The supervisor's thread keeps its last message until the next one: the batch it
    was handed must not stay alive with it (a transaction of big events would be held for
    as long as nothing else is stored)."""
    engine = engines()
    heard: list[weakref.ref[Event]] = []  # the stored events, as the listeners hear them
    engine.bus.ask(Listen(lambda events: heard.extend(weakref.ref(e) for e in events)))
    engine.emit(str(uuid.uuid4()), 3)  # nothing is told after: it is the last message
    wait_until(lambda: len(heard) == 3)
    wait_until(lambda: (gc.collect(), not any(ref() for ref in heard))[1], timeout=3)
