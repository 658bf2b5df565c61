"""Webhook subscriptions: a supervisor and one actor per subscription.

SubscriptionSupervisor (a ThreadingActor: it reads the store) registers one listener on
the event bus, owns every SubscriptionActor, and on each stored batch tells each actor the
events that match it. It creates and deletes subscriptions (through the bus, like every
write), deletes them when they expire, and on start brings back every stored one.

SubscriptionActor (a LoopActor on the aio loop: its work is HTTP I/O there) delivers its
events one at a time, in `seq` order, each until it is accepted (2xx) or `max_attempts`
have failed, with exponential backoff between attempts. Every delivery is recorded in
`subscription_deliveries`, and the seq of the last event handled is the subscription's
`position`. A slow or dead callback only ever holds up its own actor.

No gap, no duplicate: an actor starts (and restarts) by replaying from the store the
events after its position, page by page, while live events from the supervisor queue up;
once a page comes back short, everything older is handled and the queue holds everything
newer, so it goes on with the queue, skipping what it has already handled (seq <=
position). The queue is bounded: past `max_queue` events it is dropped and the actor
replays from the store again, which holds everything the queue lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import urllib.parse
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pykka
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from synthesis import __version__
from synthesis.actors.bridge import Reply, no_reply
from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.messages import Commit, Listen, Ping
from synthesis.actors.services import Services
from synthesis.engine import clock
from synthesis.engine.errors import ApiError, not_found
from synthesis.engine.events import Event
from synthesis.store import RowsDeleted, RowsInserted, RowUpdated
from synthesis.store.subscription_models import (
    DELIVERED,
    DELIVERIES,
    FAILED,
    INTERRUPTED,
    RETRYING,
    SUBSCRIPTIONS,
    all_subscriptions,
    get_subscription,
)

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
_MISSING = object()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard an actor tries. A field with a `webhook_<name>` setting takes it from
    the settings (config.py); tests make them tiny."""

    max_attempts: int = 6
    backoff_seconds: float = 0.5
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 60.0
    request_timeout_seconds: float = 10.0
    max_queue: int = 1000  # live events an actor holds; past it, it replays from the store
    replay_page: int = 500

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryPolicy:
        values = {
            f.name: getattr(settings, f"webhook_{f.name}")
            for f in fields(cls)
            if getattr(settings, f"webhook_{f.name}", None) is not None
        }
        return cls(**values)

    def backoff(self, failed_attempts: int) -> float:
        """Seconds to wait after the `failed_attempts`-th failed attempt."""
        delay = self.backoff_seconds * self.backoff_multiplier ** (failed_attempts - 1)
        return min(self.max_backoff_seconds, delay)


@dataclass(frozen=True)
class Subscription:
    id: str
    callback_url: str
    types: frozenset[str]  # empty: every type
    event_filter: Mapping[str, Any]
    expiration: str | None
    position: int
    secret: str | None = field(default=None, repr=False)  # never logged

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subscription:
        return cls(
            row["id"],
            row["callback_url"],
            frozenset(row["types"] or ()),
            dict(row["event_filter"] or {}),
            row["expiration"],
            row.get("position") or 0,
            row.get("secret"),
        )

    def matches(self, event: Event) -> bool:
        """Its type is one of `types` (if any) and every filter key equals the event's
        own: `execution_id` the event's execution, any other key that key of the payload."""
        if self.types and event.type not in self.types:
            return False
        for key, wanted in self.event_filter.items():
            have = event.execution_id if key == "execution_id" else event.data.get(key, _MISSING)
            if have != wanted:
                return False
        return True

    def expired(self, now: str) -> bool:
        return self.expiration is not None and now >= self.expiration

    def store_execution_filter(self) -> str | None:
        wanted = self.event_filter.get("execution_id")
        return wanted if isinstance(wanted, str) and wanted else None


def signature(secret: str, body: bytes) -> str:
    """The X-Synthesis-Signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _host_of(url: str) -> str:
    """For logs: scheme, host and port only (a URL may carry credentials or tokens)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _later(seconds: float) -> str:
    return clock.format_time(datetime.now(UTC) + timedelta(seconds=seconds))


def _seconds_until(moment: str) -> float:
    then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (then - datetime.now(UTC)).total_seconds()


def deleted(subscription_id: str) -> tuple[Any, ...]:
    """The changes that remove a subscription and its delivery records."""
    return (
        RowsDeleted(DELIVERIES, {"subscription_id": subscription_id}),
        RowsDeleted(SUBSCRIPTIONS, {"id": subscription_id}),
    )


# ---- messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    """Store a new subscription (`row` without `position`) and start delivering to it;
    the reply is the stored row."""

    row: Mapping[str, Any] = field(repr=False)  # holds the secret: never logged
    reply: Reply


@dataclass(frozen=True)
class Unsubscribe:
    """Stop and delete one subscription; the reply is True, or a not_found ApiError."""

    subscription_id: str
    reply: Reply = no_reply


@dataclass(frozen=True)
class EventsStored:
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Deliver:
    events: tuple[Event, ...]


@dataclass(frozen=True)
class SubscriptionExpired:
    subscription_id: str


@dataclass(frozen=True)
class SubscriptionCrashed:
    subscription_id: str


@dataclass(frozen=True)
class _Forget:
    """Its row never got stored: stop the actor, write nothing."""

    subscription_id: str


# ---- the supervisor ---------------------------------------------------------------------


@dataclass
class _Entry:
    subscription: Subscription
    actor: pykka.ActorRef[Any]


class SubscriptionSupervisor(pykka.ThreadingActor):
    use_daemon_thread = True
    stop_timeout = 10.0

    def __init__(self, services: Services, policy: DeliveryPolicy | None = None) -> None:
        super().__init__()
        self._services = services
        self._policy = policy or DeliveryPolicy.from_settings(services.settings)
        self._live: dict[str, _Entry] = {}

    # ---- supervisor thread ----------------------------------------------------------

    def on_start(self) -> None:
        """Listen first, then start the actors: each one's replay begins after the
        listener is in place, so every event is either replayed or heard live."""
        self._services.bus.ask(Listen(self._heard), timeout=self.stop_timeout)
        now = clock.now()
        self._commit(
            Commit(
                changes=(
                    RowUpdated(
                        DELIVERIES,
                        {"status": RETRYING},
                        {
                            "status": INTERRUPTED,
                            "error": "interrupted by a server stop; delivered again after it",
                            "completed_at": now,
                            "next_attempt_at": None,
                        },
                    ),
                )
            )
        )
        for row in all_subscriptions(self._services.store):
            subscription = Subscription.from_row(row)
            if subscription.expired(now):
                self._commit(Commit(changes=deleted(subscription.id)))
            else:
                self._spawn(subscription)
        log.info("%d webhook subscriptions delivering", len(self._live))

    def on_stop(self) -> None:
        stopping = [entry.actor.stop(block=False) for entry in self._live.values()]
        self._live.clear()
        for future in stopping:
            with contextlib.suppress(Exception):
                future.get(timeout=self.stop_timeout)

    def on_receive(self, message: object) -> None:
        """A bad message fails its own request; it never takes the supervisor down."""
        try:
            self._handle(message)
        except Exception:
            log.exception("the subscription supervisor could not handle %r", message)
            reply = getattr(message, "reply", None)
            if callable(reply):
                reply(ApiError("internal_error", "internal server error"))

    def _handle(self, message: object) -> None:
        match message:
            case EventsStored(events=events):
                for entry in self._live.values():
                    matching = tuple(e for e in events if entry.subscription.matches(e))
                    if matching:
                        entry.actor.tell(Deliver(matching))
            case Subscribe(row=row, reply=reply):
                self._subscribe(row, reply)
            case Unsubscribe(subscription_id=sid, reply=reply):
                self._unsubscribe(sid, reply)
            case SubscriptionExpired(subscription_id=sid):
                if self._stop_actor(sid):
                    log.info("subscription %s expired", sid)
                    self._commit(Commit(changes=deleted(sid)))
            case SubscriptionCrashed(subscription_id=sid):
                self._restart(sid)
            case _Forget(subscription_id=sid):
                self._stop_actor(sid)
            case Ping(reply=reply):
                reply("pong")

    def _heard(self, events: list[Event]) -> None:
        """Bus thread: hand the batch over; never block the bus."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(EventsStored(tuple(events)))

    def _commit(self, commit: Commit) -> None:
        self._services.bus.tell(commit)

    def _spawn(self, subscription: Subscription) -> None:
        actor = SubscriptionActor.start(self._services, self.actor_ref, subscription, self._policy)
        self._live[subscription.id] = _Entry(subscription, actor)

    def _stop_actor(self, subscription_id: str) -> bool:
        """Stop its actor and wait until it has: it records nothing after this."""
        entry = self._live.pop(subscription_id, None)
        if entry is None:
            return False
        with contextlib.suppress(Exception):
            entry.actor.stop(timeout=self.stop_timeout)
        return True

    def _subscribe(self, row: Mapping[str, Any], reply: Reply) -> None:
        """A new subscription hears the events stored after this moment."""
        stored = {**row, "position": self._services.store.last_event_seq()}
        sid = stored["id"]

        def on_stored(result: Any) -> None:  # bus thread
            if isinstance(result, BaseException):
                with contextlib.suppress(pykka.ActorDeadError):
                    self.actor_ref.tell(_Forget(sid))
                reply(result)
            else:
                reply(stored)

        self._commit(Commit(changes=(RowsInserted(SUBSCRIPTIONS, (stored,)),), on_stored=on_stored))
        self._spawn(Subscription.from_row(stored))

    def _unsubscribe(self, sid: str, reply: Reply) -> None:
        now = clock.now()
        entry = self._live.get(sid)
        known = (
            not entry.subscription.expired(now)
            if entry is not None
            else get_subscription(self._services.store, sid, now) is not None
        )
        if self._stop_actor(sid) and not known:  # expired before its timer fired
            self._commit(Commit(changes=deleted(sid)))
        if not known:
            reply(not_found("subscription", sid))
            return

        def on_stored(result: Any) -> None:
            reply(result if isinstance(result, BaseException) else True)

        self._commit(Commit(changes=deleted(sid), on_stored=on_stored))

    def _restart(self, sid: str) -> None:
        """An actor died of a bug: start it again from its stored position."""
        self._stop_actor(sid)
        row = get_subscription(self._services.store, sid, clock.now())
        if row is not None:
            log.warning("subscription %s: restarting its actor from its stored position", sid)
            self._spawn(Subscription.from_row(row))


# ---- one subscription -----------------------------------------------------------------


class SubscriptionActor(LoopActor):
    def __init__(
        self,
        services: Services,
        supervisor: pykka.ActorRef[Any],
        subscription: Subscription,
        policy: DeliveryPolicy,
    ) -> None:
        super().__init__()
        self.loop = services.aio.loop
        self._services = services
        self._supervisor = supervisor
        self._sub = subscription
        self._policy = policy
        self._position = subscription.position  # the seq of the last event handled
        self._queue: deque[Event] = deque()  # live events, in seq order
        self._caught_up = False  # replayed to the end: the queue holds every newer match
        self._drops = 0  # how often the queue was dropped for being full
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._client: AsyncHTTPClient | None = None

    # ---- aio loop thread ------------------------------------------------------------

    def on_start(self) -> None:
        self._wake = asyncio.Event()
        self._task = self.loop.create_task(self._run())
        if self._sub.expiration is not None:
            delay = max(0.0, _seconds_until(self._sub.expiration))
            self._timer = self.loop.call_later(delay, self._expire)

    def on_receive(self, message: object) -> None:
        if isinstance(message, Deliver):
            self._offer(message.events)

    def on_stop(self) -> None:
        self._halt()

    def on_failure(self, *_exc_info: object) -> None:
        self._halt()
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(SubscriptionCrashed(self._sub.id))

    def _halt(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def _expire(self) -> None:
        if self._stopping:
            return
        self._halt()
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(SubscriptionExpired(self._sub.id))

    def _offer(self, events: tuple[Event, ...]) -> None:
        for event in events:
            if event.seq is None or event.seq <= self._position:
                continue
            if self._queue and event.seq <= self._queue[-1].seq:  # type: ignore[operator]
                continue
            if len(self._queue) >= self._policy.max_queue:
                log.info(
                    "subscription %s: over %d events waiting; replaying from the store",
                    self._sub.id,
                    self._policy.max_queue,
                )
                self._queue.clear()
                self._drops += 1
                self._caught_up = False
            self._queue.append(event)
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        self._client = AsyncHTTPClient(force_instance=True, max_clients=1)
        try:
            while not self._stopping:
                try:
                    if self._caught_up:
                        await self._next_queued()
                    else:
                        await self._replay()
                except Exception:  # a bug or the store gone: start over from the store
                    log.exception("subscription %s: delivery loop failed", self._sub.id)
                    self._caught_up = False
                    await asyncio.sleep(max(self._policy.backoff_seconds, 0.05))
        finally:
            self._client.close()

    async def _replay(self) -> None:
        """One page from the store after the position; caught up when it comes back short
        and no live event was dropped since the read began."""
        drops = self._drops
        page = await self.loop.run_in_executor(None, self._read_page, self._position)
        for event in page:
            if self._stopping:
                return
            if event.seq is not None and event.seq <= self._position:
                continue
            if self._sub.matches(event):
                await self._deliver(event)
            self._position = max(self._position, event.seq or 0)
        if len(page) < self._policy.replay_page and drops == self._drops:
            self._caught_up = True

    def _read_page(self, after: int) -> list[Event]:
        """The aio loop's executor: a blocking store read."""
        return self._services.store.events_after(
            after,
            types=self._sub.types or None,
            execution_id=self._sub.store_execution_filter(),
            limit=self._policy.replay_page,
        )

    async def _next_queued(self) -> None:
        while self._queue and (self._queue[0].seq or 0) <= self._position:
            self._queue.popleft()
        if not self._queue:
            assert self._wake is not None
            self._wake.clear()
            await self._wake.wait()
            return
        await self._deliver(self._queue.popleft())

    async def _deliver(self, event: Event) -> None:
        """POST one event until it is accepted or every attempt failed; record it either
        way and move the position past it."""
        body = orjson.dumps(event.record())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Synthesis-Webhooks/{__version__}",
            "X-Synthesis-Event": event.type,
            "X-Synthesis-Delivery": event.event_id,
        }
        if self._sub.secret:
            headers["X-Synthesis-Signature"] = signature(self._sub.secret, body)
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "subscription_id": self._sub.id,
            "event_id": event.event_id,
            "event_type": event.type,
            "seq": event.seq,
            "created_at": clock.now(),
        }
        inserted = False
        attempts = 0
        while True:
            if self._sub.expired(clock.now()):
                self._expire()
                return
            attempts += 1
            status_code, error = await self._post(body, headers)
            if self._stopping:
                return
            done = error is None or attempts >= self._policy.max_attempts
            outcome = {
                "status": (DELIVERED if error is None else FAILED) if done else RETRYING,
                "attempts": attempts,
                "status_code": status_code,
                "error": error,
                "completed_at": clock.now() if done else None,
                "next_attempt_at": None,
            }
            if done:
                break
            delay = self._policy.backoff(attempts)
            outcome["next_attempt_at"] = _later(delay)
            self._record(row, outcome, inserted)
            inserted = True
            log.info(
                "subscription %s: event %s not delivered to %s (attempt %d: %s); retry in %.2fs",
                self._sub.id,
                event.event_id,
                _host_of(self._sub.callback_url),
                attempts,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
        if error is not None:
            log.warning(
                "subscription %s: event %s not delivered to %s after %d attempts: %s",
                self._sub.id,
                event.event_id,
                _host_of(self._sub.callback_url),
                attempts,
                error,
            )
        self._record(row, outcome, inserted, position=event.seq)
        self._position = max(self._position, event.seq or 0)

    def _record(
        self,
        row: dict[str, Any],
        outcome: dict[str, Any],
        inserted: bool,
        position: int | None = None,
    ) -> None:
        if self._stopping:
            return
        change: Any = (
            RowUpdated(DELIVERIES, {"id": row["id"]}, outcome)
            if inserted
            else RowsInserted(DELIVERIES, ({**row, **outcome},))
        )
        changes = [change]
        if position is not None:
            changes.append(RowUpdated(SUBSCRIPTIONS, {"id": self._sub.id}, {"position": position}))
        self._services.bus.tell(Commit(changes=tuple(changes)))

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """One attempt: (status code, None) when accepted, else (code or None, why)."""
        timeout = self._policy.request_timeout_seconds
        assert self._client is not None
        try:
            response = await self._client.fetch(
                HTTPRequest(
                    self._sub.callback_url,
                    "POST",
                    headers,
                    body,
                    connect_timeout=timeout,
                    request_timeout=timeout,
                    follow_redirects=False,
                ),
                raise_error=False,
            )
        except HTTPClientError as exc:  # timeouts and the like
            return None, exc.message[:MAX_ERROR_CHARS]
        except OSError as exc:
            return None, (exc.strerror or str(exc))[:MAX_ERROR_CHARS]
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if 200 <= response.code < 300:
            return response.code, None
        return response.code, f"HTTP {response.code} {response.reason}"[:MAX_ERROR_CHARS]
