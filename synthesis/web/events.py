"""/api/events: the stored events, newest first, and one by id."""

from __future__ import annotations

from typing import Any

from synthesis.engine.errors import not_found
from synthesis.engine.events import EVENT_TYPES
from synthesis.store import EventFilter
from synthesis.web.base import ApiHandler
from synthesis.web.declare import (
    OBJECT,
    PAGE,
    TEXT,
    TEXT_OR_NULL,
    TIMESTAMP,
    Endpoint,
    choice,
    dates,
    page,
    paging,
    path_param,
    shape,
    text,
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Event": shape(
        {
            "event_id": TEXT,
            "type": {"enum": list(EVENT_TYPES)},
            "timestamp": TIMESTAMP,
            "execution_id": TEXT_OR_NULL,
            "payload": OBJECT,
        }
    ),
    "EventList": page("events", "Event"),
    "ExecutionMessage": shape(
        {"type": {"enum": list(EVENT_TYPES)}, "timestamp": TIMESTAMP, "data": OBJECT}
    ),
}


class EventsHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/events",
            "listEvents",
            "Events",
            "Stored events, newest first",
            ok=(200, "A page of events", "EventList"),
            query=(
                choice("type", EVENT_TYPES, "Only this event type"),
                text("execution_id", "Only this execution's"),
                *dates("Happened"),
                *PAGE,
            ),
        ),
    )

    async def get(self) -> None:
        q = self.query()
        flt = EventFilter(
            **vars(paging(q)),
            type=q["type"],
            execution_id=q["execution_id"],
            from_date=q["from_date"],
            to_date=q["to_date"],
        )
        page = await self.read_page(self.runtime.store.list_events, flt)
        self.send_page(page, "events", [e.record() for e in page.rows])


class EventHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/events/{event_id}",
            "getEvent",
            "Events",
            "One event",
            ok=(200, "The event", "Event"),
            errors=(404,),
            params=(
                path_param(
                    "event_id",
                    "An event id (`subscriptions` is the subscriptions list)",
                    **{"not": {"const": "subscriptions"}},
                ),
            ),
        ),
    )

    async def get(self, event_id: str) -> None:
        self.query()
        event = await self.read(self.runtime.store.get_event, event_id)
        if event is None:
            raise not_found("event", event_id)
        self.send(event.record())


default_handlers = [
    (r"/api/events", EventsHandler),
    (r"/api/events/(?!subscriptions$)([^/]+)", EventHandler),
]
