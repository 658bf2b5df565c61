"""Which events a stream wants: the one filter of both WebSockets, the webhook
subscriptions and the store's replay reads. Pure.

(Not to be confused with the store's `EventFilter`, the query of `GET /api/events`: a
type, dates and paging over the stored events, newest first.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.events import Event

_MISSING = object()


@dataclass(frozen=True)
class EventSelector:
    """An event is selected when its type is one of `types` (None: any type), its
    execution is `execution_id` (None: any execution, or none) and each `payload` key is in
    its payload with that value (a missing key never equals anything, not even None).

    The store applies `types` and `execution_id` in SQL (`Store.events_after`): a superset
    of the selected events. `matches` is the whole rule; an EventCursor applies it to
    every event it is given, read or live."""

    types: frozenset[str] | None = None
    execution_id: str | None = None
    payload: tuple[tuple[str, Any], ...] = ()  # (key, value) pairs

    @classmethod
    def of(
        cls,
        types: Iterable[str] | None = None,
        execution_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> EventSelector:
        """As the API says it: no types, or an empty list, is every type."""
        wanted = frozenset(types or ())
        return cls(wanted or None, execution_id, tuple((payload or {}).items()))

    @classmethod
    def for_subscription(
        cls, types: Iterable[str] | None, event_filter: Mapping[str, Any]
    ) -> EventSelector:
        """A webhook subscription's `types` and `filter`: the filter's `execution_id` is
        the event's execution, any other key a key of its payload."""
        payload = {k: v for k, v in event_filter.items() if k != "execution_id"}
        return cls.of(types, event_filter.get("execution_id"), payload)

    def matches(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.execution_id is not None and event.execution_id != self.execution_id:
            return False
        if not self.payload:  # the sockets' case: no generator to build per event
            return True
        return all(event.data.get(key, _MISSING) == value for key, value in self.payload)


EVERY_EVENT = EventSelector()
