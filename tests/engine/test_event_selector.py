"""EventSelector: the one filter selects exactly what each of the three filters it replaced
selected (the execution socket's, the events socket's and a subscription's), over every
combination of a grid of events and filters."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from synthesis.engine.event_selector import EVERY_EVENT, EventSelector
from synthesis.engine.events import Event

E1, E2 = "exec-1", "exec-2"
EVENTS = [
    Event("execution_started", {"execution_id": E1, "name": "n"}, E1),
    Event("step_output", {"execution_id": E1, "step_id": "a", "n": 0}, E1),
    Event("execution_completed", {"execution_id": E2, "status": "failed"}, E2),
    Event("plan_created", {"plan_id": "p1", "name": "nightly"}),
    Event("notification", {"message": "hi", "data": None}),
    Event("notification", {"message": "hi", "data": {"k": [1]}}, E2),
]

# ---- the filters as they were written before EventSelector -----------------------------


def execution_socket_wanted(execution_id: str, event: Event) -> bool:
    return event.execution_id == execution_id


def events_socket_wanted(types: set[str] | None, execution_id: str | None, event: Event) -> bool:
    return (types is None or event.type in types) and (
        execution_id is None or event.execution_id == execution_id
    )


_MISSING = object()


def subscription_matched(types: frozenset[str], flt: Mapping[str, Any], event: Event) -> bool:
    if types and event.type not in types:
        return False
    for key, wanted in flt.items():
        have = event.execution_id if key == "execution_id" else event.data.get(key, _MISSING)
        if have != wanted:
            return False
    return True


TYPE_CHOICES: list[tuple[str, ...]] = [
    (),
    ("notification",),
    ("execution_started", "plan_created"),
    ("execution_paused",),
]
EXECUTION_CHOICES = [None, E1, E2]
PAYLOAD_CHOICES: list[dict[str, Any]] = [
    {},
    {"name": "nightly"},
    {"name": "n", "execution_id": E1},
    {"data": None},  # a key present with null, not a missing key
    {"data": {"k": [1]}},
    {"n": 0},
    {"n": False},  # 0 == False in Python, as in the filter before
    {"status": "failed", "plan_id": "p1"},
]


def test_the_execution_socket_selects_what_it_wanted() -> None:
    for execution_id, event in itertools.product([E1, E2], EVENTS):
        selector = EventSelector(execution_id=execution_id)
        assert selector.matches(event) == execution_socket_wanted(execution_id, event)


def test_the_events_socket_selects_what_it_wanted() -> None:
    for types, execution_id, event in itertools.product(TYPE_CHOICES, EXECUTION_CHOICES, EVENTS):
        selector = EventSelector.of(types, execution_id)
        wanted = events_socket_wanted(set(types) or None, execution_id, event)
        assert selector.matches(event) == wanted, (types, execution_id, event)


def test_a_subscription_selects_what_it_matched() -> None:
    for types, execution_id, payload, event in itertools.product(
        TYPE_CHOICES, EXECUTION_CHOICES, PAYLOAD_CHOICES, EVENTS
    ):
        flt = dict(payload)
        if execution_id is not None:
            flt["execution_id"] = execution_id
        selector = EventSelector.for_subscription(frozenset(types), flt)
        wanted = subscription_matched(frozenset(types), flt, event)
        assert selector.matches(event) == wanted, (types, flt, event)


def test_no_types_is_every_type_and_a_missing_key_is_not_none() -> None:
    assert all(EVERY_EVENT.matches(e) for e in EVENTS)
    assert EventSelector.of([]) == EventSelector.of(None) == EVERY_EVENT
    assert not EventSelector.of(payload={"plan_id": None}).matches(EVENTS[0])
    assert not EventSelector(types=frozenset()).matches(EVENTS[0])  # built directly: none
