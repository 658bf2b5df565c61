"""EventHub: each listener hears, in one call per stored batch and in `seq` order, exactly
the events its selector selects, whoever else listens; a listener may leave during a
delivery. The batches come from another thread, as the bus sends them. And the frames
the sockets write for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from synthesis.engine.event_selector import EVERY_EVENT, EventSelector
from synthesis.engine.events import Event
from synthesis.web.hub import EventHub
from synthesis.web.sockets import text_frames

E1, E2 = "exec-1", "exec-2"


def batch(first_seq: int) -> list[Event]:
    kinds = [
        ("step_started", E1),
        ("notification", E1),
        ("step_completed", E1),
        ("notification", E2),
        ("plan_created", None),
        ("notification", None),
        ("execution_completed", E2),
    ]
    return [
        Event(kind, {"n": i}, execution_id, seq=first_seq + i)
        for i, (kind, execution_id) in enumerate(kinds)
    ]


class Recorder:
    def __init__(self, hub: EventHub | None = None) -> None:
        self.calls: list[list[int]] = []
        self.leave_from = hub  # leaves the hub during its first delivery

    def deliver(self, events: list[Event]) -> None:
        assert events, "never an empty delivery"
        self.calls.append([e.seq or 0 for e in events])
        if self.leave_from is not None:
            self.leave_from.remove(self)


def run_batches(setup: Callable[[EventHub], None], batches: list[list[Event]]) -> EventHub:
    async def scenario() -> EventHub:
        hub = EventHub(asyncio.get_running_loop())
        setup(hub)
        heard = hub.bus_listener()
        for events in batches:
            # From another thread, like the bus. The hub's callback is queued on the loop
            # before the thread's result is, so it has run when to_thread returns.
            await asyncio.to_thread(heard, events)
        return hub

    return asyncio.run(scenario())


def test_each_listener_hears_only_what_it_selects_one_call_per_batch() -> None:
    events = batch(1) + batch(8)
    selectors = {
        "notes": EventSelector.of(["notification"]),
        "notes2": EventSelector.of(["notification"]),  # the same selector: a shared group
        "e1": EventSelector.of(None, E1),
        "e2_notes": EventSelector.of(["notification", "execution_completed"], E2),
        "all": EVERY_EVENT,
        "none_yet": EventSelector.of(["step_output"]),
    }
    recorders = {name: Recorder() for name in selectors}

    def setup(hub: EventHub) -> None:
        for name, selector in selectors.items():
            hub.add(recorders[name], selector)

    hub = run_batches(setup, [batch(1), batch(8)])
    for name, selector in selectors.items():
        expected = [
            [e.seq for e in half if selector.matches(e)] for half in (events[:7], events[7:])
        ]
        assert recorders[name].calls == [seqs for seqs in expected if seqs], name
    assert len(hub) == len(selectors)


def test_a_listener_that_leaves_during_a_delivery_hears_no_more_and_others_go_on() -> None:
    notes = EventSelector.of(["notification"])
    staying = Recorder()
    leaving: list[Recorder] = []

    def setup(hub: EventHub) -> None:
        leaving.append(Recorder(hub))
        hub.add(leaving[0], notes)
        hub.add(staying, notes)

    hub = run_batches(setup, [batch(1), batch(8)])
    assert leaving[0].calls == [[2, 4, 6]]
    assert staying.calls == [[2, 4, 6], [9, 11, 13]]
    assert len(hub) == 1


def test_adding_again_replaces_the_selector_and_remove_forgets_empty_groups() -> None:
    one, gone = Recorder(), Recorder()

    def setup(hub: EventHub) -> None:
        hub.add(one, EventSelector.of(["notification"]))
        hub.add(one, EventSelector.of(None, E2))
        hub.add(gone, EventSelector.of(["plan_created"]))
        hub.remove(gone)
        hub.remove(gone)  # twice is harmless

    hub = run_batches(setup, [batch(1)])
    assert one.calls == [[4, 7]]
    assert len(hub) == 1
    assert set(hub._groups) == {EventSelector.of(None, E2)}


def test_batches_told_before_the_loop_takes_them_reach_a_listener_in_one_call() -> None:
    """The bus tells two batches while the IOLoop is busy: one delivery, in order."""
    notes = Recorder()

    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop())
        hub.add(notes, EventSelector.of(["notification"]))
        heard = hub.bus_listener()
        heard(batch(1))  # told on the loop's own thread: it takes them once this yields
        heard(batch(8))
        await asyncio.to_thread(lambda: None)  # queued after the hub's callback: it has run
        heard(batch(15))
        await asyncio.to_thread(lambda: None)

    asyncio.run(scenario())
    assert notes.calls == [[2, 4, 6, 9, 11, 13], [16, 18, 20]]


def test_text_frames_are_rfc_6455_server_frames_at_each_length_boundary() -> None:
    """Final, unmasked text frames with the 7-, 16- and 64-bit lengths at their edges."""
    messages = [b"x" * n for n in (0, 1, 125, 126, 65535, 65536)]
    data, found = text_frames(messages), []
    while data:
        assert data[0] == 0x81  # FIN, text
        length, at = data[1], 2
        assert not length & 0x80  # not masked
        if length in (126, 127):
            width = 2 if length == 126 else 8
            length, at = int.from_bytes(data[2 : 2 + width], "big"), 2 + width
        found.append(data[at : at + length])
        data = data[at + length :]
    assert found == messages
    assert [len(text_frames([m])) - len(m) for m in messages] == [2, 2, 2, 4, 4, 10]


def test_batches_nobody_listens_to_do_not_wake_the_loop() -> None:
    """With no socket, a stored batch costs the IOLoop nothing; once one joins, the next
    batch reaches it."""
    wakeups: list[object] = []  # the hub's crossings into the loop (not to_thread's own)
    recorder = Recorder()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counted(callback: Callable[..., object], *args: object) -> object:
            if getattr(callback, "__self__", None) is hub:
                wakeups.append(callback)
            return real(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        hub = EventHub(loop)
        heard = hub.bus_listener()
        await asyncio.to_thread(heard, batch(1))
        assert wakeups == []
        hub.add(recorder, EVERY_EVENT)
        await asyncio.to_thread(heard, batch(100))

    asyncio.run(scenario())
    assert len(wakeups) == 1
    assert recorder.calls == [[e.seq for e in batch(100)]]
