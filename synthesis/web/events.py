"""/api/events: the stored events, newest first, and one by id."""

from __future__ import annotations

from synthesis.engine.errors import FieldError, not_found, validation_error
from synthesis.engine.events import EVENT_TYPES
from synthesis.store import EventFilter
from synthesis.web.base import ApiHandler, choice_param, date_params, page_params


class EventsHandler(ApiHandler):
    async def get(self) -> None:
        query = self.query(("type", "execution_id", "from_date", "to_date", "limit", "offset"))
        errors: list[FieldError] = []
        limit, offset = page_params(query, errors)
        from_date, to_date = date_params(query, errors)
        kind = choice_param(query, "type", EVENT_TYPES, errors)
        if errors:
            raise validation_error(errors)
        flt = EventFilter(kind, query.get("execution_id"), from_date, to_date, limit, offset)
        total, events = await self.read(self.runtime.store.list_events, flt)
        self.send(
            {
                "total": total,
                "offset": offset,
                "limit": limit,
                "events": [e.record() for e in events],
            }
        )


class EventHandler(ApiHandler):
    async def get(self, event_id: str) -> None:
        self.query(())
        event = await self.read(self.runtime.store.get_event, event_id)
        if event is None:
            raise not_found("event", event_id)
        self.send(event.record())


default_handlers = [
    (r"/api/events", EventsHandler),
    (r"/api/events/(?!subscriptions$)([^/]+)", EventHandler),
]
