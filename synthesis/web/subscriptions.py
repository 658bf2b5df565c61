"""/api/events/subscriptions: webhook subscriptions (create, list, get, delete, pause,
resume), each one's delivery records, and redeliveries. The deliveries themselves are the
subscription actors' work (actors/subscriptions.py)."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from synthesis.actors.subscriptions import ControlSubscription, Redeliver, Subscribe, Unsubscribe
from synthesis.engine import address_policy, clock
from synthesis.engine.errors import FieldError, not_found, validation_error
from synthesis.engine.events import EVENT_TYPES
from synthesis.store.subscription_models import (
    DELIVERY_STATUSES,
    SUBSCRIPTION_STATUSES,
    get_subscription,
    list_deliveries,
    list_subscriptions,
)
from synthesis.web.base import ApiHandler
from synthesis.web.declare import (
    EMPTY,
    PAGE,
    TEXT,
    TEXT_OR_NULL,
    TIME_OR_NULL,
    TIMESTAMP,
    Body,
    Endpoint,
    choice,
    page,
    paging,
    path_param,
    ref,
    shape,
)

MAX_URL_CHARS = 2048
MAX_SECRET_CHARS = 1024
SUBSCRIPTION_ID = path_param("subscription_id", "A subscription id")
CREATE = Body(
    "SubscriptionCreate",
    {
        "type": "object",
        "properties": {
            "callback_url": {
                "type": "string",
                "maxLength": MAX_URL_CHARS,
                "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@:]",
                "description": "An http:// or https:// URL with a host; each matching event "
                "is POSTed to it",
            },
            "types": {
                "type": ["array", "null"],
                "items": {"enum": list(EVENT_TYPES)},
                "description": "Event types to deliver; none or empty: all",
            },
            "filter": {
                "type": ["object", "null"],
                "description": "Keys the events must match (execution_id: one execution's)",
                "properties": {"execution_id": {"type": "string", "minLength": 1}},
                "propertyNames": {"minLength": 1},
            },
            "expiration": {**TIME_OR_NULL, "description": "In the future"},
            "secret": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": MAX_SECRET_CHARS,
                "description": "Signs each delivery: X-Synthesis-Signature: sha256=<hex HMAC>",
            },
        },
        "required": ["callback_url"],
        "additionalProperties": False,
    },
)
SCHEMAS: dict[str, dict[str, Any]] = {
    CREATE.name: CREATE.schema,
    "Subscription": shape(
        {
            "subscription_id": TEXT,
            "types": {"type": "array", "items": {"enum": list(EVENT_TYPES)}},
            "filter": {"type": "object"},
            "callback_url": TEXT,
            "created_at": TIMESTAMP,
            "expiration": TIME_OR_NULL,
            "has_secret": {"type": "boolean"},
            "status": {
                "enum": list(SUBSCRIPTION_STATUSES),
                "description": "`paused`: nothing is delivered until it is resumed",
            },
            "paused_at": TIME_OR_NULL,
            "paused_reason": {
                **TEXT_OR_NULL,
                "description": "By request, or after too many events in a row were "
                "not delivered (`--webhook-pause-after`), with the last error",
            },
        }
    ),
    "SubscriptionList": shape({"subscriptions": {"type": "array", "items": ref("Subscription")}}),
    "Delivery": shape(
        {
            "delivery_id": TEXT,
            "subscription_id": TEXT,
            "event_id": TEXT,
            "event_type": {"enum": list(EVENT_TYPES)},
            "status": {
                "enum": list(DELIVERY_STATUSES),
                "description": "`pending` (a redelivery not tried yet), `retrying`, "
                "`delivered`, `failed` (given up at once: refused by --deny-private-targets, "
                "or the event was pruned) or `dead` "
                "(its retry window ended; `error` holds the last error)",
            },
            "attempts": {"type": "integer", "minimum": 0},
            "status_code": {"type": ["integer", "null"]},
            "error": TEXT_OR_NULL,
            "created_at": {
                **TIMESTAMP,
                "description": "The first attempt (a redelivery: when it was asked for); "
                "its retry window starts here",
            },
            "completed_at": TIME_OR_NULL,
            "next_attempt_at": TIME_OR_NULL,
            "redelivery_of": {
                **TEXT_OR_NULL,
                "description": "The delivery this one delivers again",
            },
        }
    ),
    "DeliveryList": {"allOf": [page("deliveries", "Delivery"), shape({"subscription_id": TEXT})]},
}
ACTIONS = {
    "pause": "Stop delivering until resumed (409 if paused already)",
    "resume": "Deliver again from where it stopped, nothing skipped (409 if not paused)",
}


def parse_subscription(
    body: dict[str, Any], now: str, deny_private: bool = False
) -> dict[str, Any]:
    """The row fields a request body asks for; a validation_error naming each bad field.
    With `deny_private`, a literal IP address the address policy refuses is one too (a
    name is checked at each delivery, when it is resolved)."""
    errors: list[FieldError] = []

    url = body.get("callback_url")
    if not isinstance(url, str) or not url.strip():
        errors.append(FieldError("callback_url", "required: an http:// or https:// URL"))
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            errors.append(FieldError("callback_url", "must be an http:// or https:// URL"))
        elif len(url) > MAX_URL_CHARS:
            errors.append(FieldError("callback_url", f"must be at most {MAX_URL_CHARS} chars"))
        elif deny_private and (refused := address_policy.literal_refusal(host)):
            errors.append(FieldError("callback_url", refused))

    types = body.get("types")
    if types is None:
        types = []
    elif not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        errors.append(FieldError("types", "must be a list of event types"))
        types = []
    else:
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            errors.append(
                FieldError(
                    "types",
                    f"unknown event types {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}",
                )
            )
        types = list(dict.fromkeys(types))

    event_filter = body.get("filter")
    if event_filter is None:
        event_filter = {}
    elif not isinstance(event_filter, dict):
        errors.append(FieldError("filter", "must be an object of keys the events must match"))
        event_filter = {}
    else:
        if "" in event_filter:
            errors.append(FieldError("filter", "keys must not be empty"))
        wanted = event_filter.get("execution_id")
        if "execution_id" in event_filter and not (isinstance(wanted, str) and wanted):
            errors.append(FieldError("filter.execution_id", "must be an execution id"))

    expiration = body.get("expiration")
    if expiration is not None:
        if not isinstance(expiration, str):
            errors.append(FieldError("expiration", "must be an ISO 8601 date-time"))
            expiration = None
        else:
            try:
                expiration = clock.parse_time(expiration)
            except ValueError:
                errors.append(FieldError("expiration", "must be an ISO 8601 date-time"))
                expiration = None
            else:
                if expiration <= now:
                    errors.append(FieldError("expiration", "must be in the future"))

    secret = body.get("secret")
    if secret is not None and (
        not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_CHARS
    ):
        errors.append(
            FieldError("secret", f"must be a non-empty string of at most {MAX_SECRET_CHARS}")
        )

    if errors:
        raise validation_error(errors)
    return {
        "types": types,
        "event_filter": event_filter,
        "callback_url": url,
        "expiration": expiration,
        "secret": secret,
    }


def subscription_view(row: dict[str, Any]) -> dict[str, Any]:
    """The reference's shape; the secret itself is never shown."""
    return {
        "subscription_id": row["id"],
        "types": row["types"],
        "filter": row["event_filter"],
        "callback_url": row["callback_url"],
        "created_at": row["created_at"],
        "expiration": row["expiration"],
        "has_secret": row["secret"] is not None,
        "status": row["status"],
        "paused_at": row["paused_at"],
        "paused_reason": row["paused_reason"],
    }


def delivery_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery_id": row["id"],
        "subscription_id": row["subscription_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "status_code": row["status_code"],
        "error": row["error"],
        "created_at": row["created_at"],
        "completed_at": row["completed_at"],
        "next_attempt_at": row["next_attempt_at"],
        "redelivery_of": row["redelivery_of"],
    }


class SubscriptionsHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/events/subscriptions",
            "listSubscriptions",
            "Subscriptions",
            "Webhook subscriptions that have not expired",
            ok=(200, "The subscriptions", "SubscriptionList"),
            errors=(),
            params=(),
        ),
        Endpoint(
            "post",
            "/api/events/subscriptions",
            "createSubscription",
            "Subscriptions",
            "Subscribe a webhook to events",
            ok=(201, "Subscribed", "Subscription"),
            errors=(503,),
            params=(),
            body=CREATE,
        ),
    )

    async def get(self) -> None:
        self.query()
        rows = await self.read(list_subscriptions, self.runtime.store, clock.now())
        self.send({"subscriptions": [subscription_view(r) for r in rows]})

    async def post(self) -> None:
        now = clock.now()
        row = {
            "id": str(uuid.uuid4()),
            **parse_subscription(self.json_body(), now, self.runtime.settings.deny_private_targets),
            "created_at": now,
            "created_by": self.principal.subject,
        }
        stored = await self.runtime.bridge.ask(
            self.runtime.subscriptions, lambda reply: Subscribe(row, reply)
        )
        self.send(subscription_view(stored), 201)


class SubscriptionHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/events/subscriptions/{subscription_id}",
            "getSubscription",
            "Subscriptions",
            "One subscription (the secret is never shown)",
            ok=(200, "The subscription", "Subscription"),
            errors=(404,),
            params=(SUBSCRIPTION_ID,),
        ),
        Endpoint(
            "delete",
            "/api/events/subscriptions/{subscription_id}",
            "deleteSubscription",
            "Subscriptions",
            "Stop and delete a subscription",
            ok=(200, "Deleted", "Deleted"),
            errors=(404, 503),
            params=(SUBSCRIPTION_ID,),
        ),
    )

    async def get(self, subscription_id: str) -> None:
        self.query()
        row = await self.read(get_subscription, self.runtime.store, subscription_id, clock.now())
        if row is None:
            raise not_found("subscription", subscription_id)
        self.send(subscription_view(row))

    async def delete(self, subscription_id: str) -> None:
        await self.runtime.bridge.ask(
            self.runtime.subscriptions, lambda reply: Unsubscribe(subscription_id, reply)
        )
        self.send({"success": True, "message": "Subscription deleted successfully"})


class SubscriptionActionHandler(ApiHandler):
    endpoints = tuple(
        Endpoint(
            "post",
            f"/api/events/subscriptions/{{subscription_id}}/{action}",
            f"{action}Subscription",
            "Subscriptions",
            summary,
            ok=(200, "Done", "Subscription"),
            errors=(404, 409, 503),
            params=(SUBSCRIPTION_ID,),
            body=EMPTY,
        )
        for action, summary in ACTIONS.items()
    )

    async def post(self, subscription_id: str, action: str) -> None:
        self.json_body()
        row = await self.runtime.bridge.ask(
            self.runtime.subscriptions,
            lambda reply: ControlSubscription(subscription_id, action, reply),
        )
        self.send(subscription_view(row))


class RedeliverHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "post",
            "/api/events/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
            "redeliverDelivery",
            "Subscriptions",
            (
                "Deliver a finished delivery's event again, as a new delivery "
                "(`pending`; 409 while the delivery is still pending or retrying)"
            ),
            ok=(201, "The new delivery", "Delivery"),
            errors=(404, 409, 503),
            params=(SUBSCRIPTION_ID, path_param("delivery_id", "A delivery id")),
            body=EMPTY,
        ),
    )

    async def post(self, subscription_id: str, delivery_id: str) -> None:
        self.json_body()
        row = await self.runtime.bridge.ask(
            self.runtime.subscriptions,
            lambda reply: Redeliver(subscription_id, delivery_id, reply),
        )
        self.send(delivery_view(row), 201)


class DeliveriesHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/events/subscriptions/{subscription_id}/deliveries",
            "listDeliveries",
            "Subscriptions",
            "A subscription's deliveries, newest first",
            ok=(200, "A page of deliveries", "DeliveryList"),
            errors=(404,),
            params=(SUBSCRIPTION_ID,),
            query=(choice("status", DELIVERY_STATUSES, "Only this status"), *PAGE),
        ),
    )

    async def get(self, subscription_id: str) -> None:
        q = self.query()
        asked = paging(q)
        store = self.runtime.store
        if await self.read(get_subscription, store, subscription_id, clock.now()) is None:
            raise not_found("subscription", subscription_id)
        page = await self.read_page(list_deliveries, store, subscription_id, q["status"], asked)
        rows = [delivery_view(r) for r in page.rows]
        self.send_page(page, "deliveries", rows, subscription_id=subscription_id)


_ID = r"([^/]+)"
default_handlers = [
    (r"/api/events/subscriptions", SubscriptionsHandler),
    (rf"/api/events/subscriptions/{_ID}", SubscriptionHandler),
    (rf"/api/events/subscriptions/{_ID}/(pause|resume)", SubscriptionActionHandler),
    (rf"/api/events/subscriptions/{_ID}/deliveries", DeliveriesHandler),
    (rf"/api/events/subscriptions/{_ID}/deliveries/{_ID}/redeliver", RedeliverHandler),
]
