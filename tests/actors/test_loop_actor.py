"""LoopActor keeps Pykka's actor contract, as Pykka's own suite states it for its
ThreadingActor: tell, ask, stop, on_start/on_stop/on_failure, a BaseException, the
registry. The actors live on a real asyncio loop running in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from pykka import ActorDeadError, ActorRegistry

from synthesis.actors.loop_actor import LoopActor
from tests.actors.conftest import hold

WAIT = 5.0


@pytest.fixture(autouse=True)
def stop_all() -> Iterator[None]:
    yield
    ActorRegistry.stop_all()


class Events:
    def __init__(self) -> None:
        self.on_start = threading.Event()
        self.registered_before_on_start = threading.Event()
        self.on_stop = threading.Event()
        self.on_failure = threading.Event()
        self.greetings = threading.Event()
        self.threads: list[threading.Thread] = []


class Probe(LoopActor):
    """Pykka's test actor, on `loop`: `fail_in` names a hook that raises."""

    def __init__(self, loop: asyncio.AbstractEventLoop, events: Events, fail_in: str = "") -> None:
        super().__init__()
        self.loop = loop
        self.events = events
        self.fail_in = fail_in

    def on_start(self) -> None:
        self.events.threads.append(threading.current_thread())
        self.events.on_start.set()
        if ActorRegistry.get_by_urn(self.actor_urn) is not None:
            self.events.registered_before_on_start.set()
        if self.fail_in == "on_start":
            raise RuntimeError("on_start failed")
        if self.fail_in == "stop in on_start":
            self.stop()

    def on_stop(self) -> None:
        self.events.on_stop.set()
        if self.fail_in == "on_stop":
            raise RuntimeError("on_stop failed")

    def on_failure(self, *exc_info: Any) -> None:
        self.events.on_failure.set()
        if self.fail_in == "on_failure":
            raise RuntimeError("on_failure failed")

    def on_receive(self, message: Any) -> Any:
        self.events.threads.append(threading.current_thread())
        command = message.get("command")
        if command == "raise exception":
            raise ValueError("foo")
        if command == "raise base exception":
            raise BaseException("bar")
        if command == "stop twice":
            self.stop()
            self.stop()
        elif command == "message self then stop":
            self.actor_ref.tell({"command": "greetings"})
            self.stop()
        elif command == "greetings":
            self.events.greetings.set()
        elif command == "callback":
            message["callback"]()
        elif command == "echo":
            return message["value"]
        return None


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def start(loop: asyncio.AbstractEventLoop, events: Events) -> Callable[..., pykka.ActorRef[Probe]]:
    def start(fail_in: str = "") -> pykka.ActorRef[Probe]:
        return Probe.start(loop, events, fail_in)

    return start


def test_tell_and_ask_are_handled_in_order_on_the_loop_thread(start, events) -> None:
    ref = start()
    seen: list[int] = []
    for n in range(50):
        ref.tell({"command": "callback", "callback": lambda n=n: seen.append(n)})
    assert ref.ask({"command": "echo", "value": "done"}, timeout=WAIT) == "done"
    assert seen == list(range(50))
    assert {t.name for t in events.threads} == {events.threads[0].name}
    assert events.threads[0] is not threading.current_thread()


def test_ask_without_blocking_returns_a_future(start) -> None:
    future = start().ask({"command": "echo", "value": 42}, block=False)
    assert future.get(timeout=WAIT) == 42


def test_an_exception_in_on_receive_is_the_askers_and_the_actor_lives_on(start, events) -> None:
    ref = start()
    with pytest.raises(ValueError, match="foo"):
        ref.ask({"command": "raise exception"}, timeout=WAIT)
    assert ref.is_alive()
    assert not events.on_failure.is_set()
    assert ref.ask({"command": "echo", "value": 1}, timeout=WAIT) == 1


def test_the_actor_has_a_unique_uuid4_urn(start) -> None:
    refs = [start() for _ in range(3)]
    assert len({ref.actor_urn for ref in refs}) == 3
    assert all(uuid.UUID(ref.actor_urn).version == 4 for ref in refs)


def test_on_start_runs_first_and_after_the_actor_is_registered(start, events) -> None:
    ref = start()
    assert ref.ask({"command": "echo", "value": "first?"}, timeout=WAIT) == "first?"
    assert events.on_start.is_set()  # set before the ask's answer: it ran first
    assert events.registered_before_on_start.is_set()


def test_on_start_can_stop_the_actor(start, events) -> None:
    ref = start("stop in on_start")
    assert events.on_stop.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()


def test_a_failing_on_start_stops_the_actor(start, events) -> None:
    ref = start("on_start")
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()
    assert ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_stop_calls_on_stop_unregisters_and_is_idempotent(start, events) -> None:
    ref = start()
    assert not events.on_stop.is_set()
    assert ref.stop(timeout=WAIT) is True
    assert events.on_stop.is_set()
    assert not ref.is_alive()
    assert ActorRegistry.get_by_urn(ref.actor_urn) is None
    assert ref.stop(timeout=WAIT) is False  # already dead
    with pytest.raises(ActorDeadError):
        ref.tell({"command": "echo", "value": 1})


def test_a_failing_on_stop_still_stops_the_actor(start, events) -> None:
    ref = start("on_stop")
    ref.stop(timeout=WAIT)
    assert events.on_stop.is_set()
    assert not ref.is_alive()


def test_messages_left_after_a_stop_get_actor_dead_and_stops_succeed(start) -> None:
    ref = start()
    gate = threading.Event()
    ref.tell({"command": "callback", "callback": lambda: gate.wait(WAIT)})
    stopping = ref.stop(block=False)
    asked = ref.ask({"command": "echo", "value": 1}, block=False)
    stopped_again = ref.stop(block=False)
    gate.set()
    assert stopping.get(timeout=WAIT) is True
    with pytest.raises(ActorDeadError):
        asked.get(timeout=WAIT)
    assert stopped_again.get(timeout=WAIT) is True  # as Pykka's threading runtime answers


def test_an_actor_can_stop_itself_twice(start) -> None:
    start().ask({"command": "stop twice"}, timeout=WAIT)


def test_messages_told_before_a_self_stop_are_handled(start, events) -> None:
    ref = start()
    ref.ask({"command": "message self then stop"}, timeout=WAIT)
    assert events.greetings.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert ActorRegistry.get_all() == []


def test_an_unhandled_exception_from_a_tell_calls_on_failure_and_stops_it(start, events) -> None:
    ref = start()
    ref.tell({"command": "raise exception"})
    assert events.on_failure.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not events.on_stop.is_set()  # on_failure instead of on_stop, as in Pykka
    assert ActorRegistry.get_all() == []


def test_a_failing_on_failure_still_stops_the_actor(start, events) -> None:
    ref = start("on_failure")
    ref.tell({"command": "raise exception"})
    assert events.on_failure.wait(WAIT)
    assert ref.actor_stopped.wait(WAIT)
    assert not ref.is_alive()


def test_a_base_exception_stops_every_actor_and_the_loop_lives_on(
    loop: asyncio.AbstractEventLoop, start, events
) -> None:
    ref = start()
    other_events = Events()
    other = Probe.start(loop, other_events)
    threaded = pykka.ThreadingActor.start()
    assert len(ActorRegistry.get_all()) == 3
    ref.tell({"command": "raise base exception"})
    assert events.on_stop.wait(WAIT)
    assert other_events.on_stop.wait(WAIT)
    assert threaded.actor_stopped.wait(WAIT)
    assert ref.actor_stopped.is_set() and other.actor_stopped.is_set()
    assert ActorRegistry.get_all() == []
    assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "alive"), loop).result(WAIT)
    assert Probe.start(loop, Events()).ask({"command": "echo", "value": 7}, timeout=WAIT) == 7


def test_the_registry_finds_it_by_class_and_urn(start) -> None:
    ref = start()
    assert ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert ActorRegistry.get_by_class(Probe) == [ref]
    assert ActorRegistry.get_by_class_name("Probe") == [ref]
    ActorRegistry.stop_all()
    assert not ref.is_alive()
    assert ActorRegistry.get_all() == []


def test_a_proxy_calls_its_methods_on_the_loop(start, events) -> None:
    ref = start()
    proxy = ref.proxy()
    answer = proxy.on_receive({"command": "echo", "value": "via proxy"})
    assert answer.get(timeout=WAIT) == "via proxy"
    assert proxy.fail_in.get(timeout=WAIT) == ""


def test_messages_told_from_other_threads_wake_the_loop_once_per_batch(
    loop: asyncio.AbstractEventLoop, start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tells from another thread that arrive while the loop is busy are handled in order
    after one wake-up (one self-pipe write), not one each."""
    ref = start()
    assert ref.ask({"command": "echo", "value": "ready"}, timeout=WAIT) == "ready"
    release = hold(loop, WAIT)
    wakeups: list[object] = []
    real = loop.call_soon_threadsafe
    monkeypatch.setattr(loop, "call_soon_threadsafe", lambda *a: (wakeups.append(a), real(*a)))
    seen: list[int] = []
    for n in range(100):
        ref.tell({"command": "callback", "callback": lambda n=n: seen.append(n)})
    release.set()
    assert ref.ask({"command": "echo", "value": "done"}, timeout=WAIT) == "done"
    assert seen == list(range(100))
    assert len(wakeups) == 1


def test_an_actor_started_from_another_thread_starts_before_its_messages(
    loop: asyncio.AbstractEventLoop, start, events: Events
) -> None:
    """Even when a batch of cross-thread messages is already waiting for the loop, an
    actor started after them runs on_start before anything told to it afterwards."""
    first = start()
    assert first.ask({"command": "echo", "value": "ready"}, timeout=WAIT) == "ready"
    release = hold(loop, WAIT)
    order: list[str] = []
    first.tell({"command": "callback", "callback": lambda: order.append("first's message")})
    second_events = Events()
    second = Probe.start(loop, second_events)
    second.tell(
        {
            "command": "callback",
            "callback": lambda: order.append(
                "second's message, started: " + str(second_events.on_start.is_set())
            ),
        }
    )
    release.set()
    assert second.ask({"command": "echo", "value": "done"}, timeout=WAIT) == "done"
    assert order == ["first's message", "second's message, started: True"]


def test_stopping_an_actor_whose_loop_is_closed_fails_at_once(events: Events) -> None:
    """A closed loop runs nothing: a tell or a stop fails at once (as it did through
    `call_soon_threadsafe`), rather than being dropped, which left `stop()` waiting for ever."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ref = Probe.start(loop, events)
    assert ref.ask({"command": "echo", "value": "ready"}, timeout=WAIT) == "ready"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT)
    loop.close()
    outcome: list[BaseException] = []

    def stop() -> None:
        try:
            ref.stop()
        except BaseException as exc:
            outcome.append(exc)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    stopper.join(2)
    try:
        assert not stopper.is_alive(), "stop() waits for a loop that is closed"
        assert isinstance(outcome[0], RuntimeError)
        with pytest.raises(RuntimeError):
            ref.tell({"command": "greetings"})
    finally:
        ActorRegistry.unregister(ref)  # stop_all would wait for it too
