"""Webhook subscriptions: a supervisor and one actor per subscription.

SubscriptionSupervisor (a ThreadingActor: it reads the store) registers one listener on
the event bus, owns every SubscriptionActor, and on each stored batch tells each actor the
events that match it. It creates, deletes, pauses and resumes subscriptions and asks for
redeliveries (through the bus, like every write), deletes them when they expire, and on
start brings back every stored one that is not paused.

SubscriptionActor (a LoopActor on the aio loop: its work is HTTP I/O there) delivers its
events one at a time, in `seq` order. Each event is tried until it is accepted (2xx), its
retry window is over (`dead`) or the address policy refuses the callback (`failed`), with
capped exponential backoff and jitter between attempts (engine/delivery.py); then the
actor moves on to the next event. Every delivery is recorded in `subscription_deliveries`
(created at its first attempt, updated after each one, so its attempts and the start of
its window survive a restart), and the seq of the last event handled is the
subscription's `position`, moved in the same commit. An actor has one commit on its way to
the bus at a time; what it records meanwhile goes in its next one. Its POSTs go through
its own keep-alive connection (integrations/webhook_client.py). After
`pause_after_failures` events in a row not delivered the actor pauses its subscription
and stops. A slow or dead callback only ever holds up its own actor. Redeliveries asked
for through the API are rows of their own (`pending`), delivered between two events of
the stream.

No gap, no duplicate: an actor starts (and restarts) by taking up its open deliveries,
then takes its events from an EventCursor (engine/cursor.py) that starts at its
position: the cursor hands out the events it replays from the store, page by page, then
the live events the supervisor offers it, which it holds meanwhile. The live queue is
the cursor's, bounded by `max_queue` events: past it, it is dropped and the actor
replays from the store again, which holds everything the queue lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import random
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pykka

from synthesis import __version__
from synthesis.actors.bridge import Reply, no_reply
from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.messages import Commit, LookForWork, Ping, Tick
from synthesis.actors.services import Services
from synthesis.engine import clock
from synthesis.engine.cursor import EventCursor
from synthesis.engine.delivery import DeliveryPolicy
from synthesis.engine.errors import ApiError, not_found
from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import Event
from synthesis.integrations.http import TargetRefused
from synthesis.integrations.webhook_client import WebhookClient
from synthesis.store import RowsDeleted, RowsInserted, RowUpdated, cluster
from synthesis.store.subscription_models import (
    ACTIVE,
    DEAD,
    DELIVERED,
    DELIVERIES,
    FAILED,
    OPEN_DELIVERY_STATUSES,
    PAUSED,
    PENDING,
    RETRYING,
    SUBSCRIPTIONS,
    all_subscriptions,
    get_delivery,
    get_subscription,
    open_deliveries,
)

REFRESH_SECONDS = 2.0  # leases and stored changes looked at without a wake-up
SETTLE_SECONDS = 5.0  # the most a change of this node's own may take to be stored

__all__ = ["DeliveryPolicy", "Subscription", "SubscriptionActor", "SubscriptionSupervisor"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Subscription:
    id: str
    callback_url: str
    types: frozenset[str]  # empty: every type
    event_filter: Mapping[str, Any]
    expiration: str | None
    position: int
    secret: str | None = field(default=None, repr=False)  # never logged
    failures: int = 0  # events in a row not delivered

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
            row.get("failures") or 0,
        )

    @functools.cached_property
    def selector(self) -> EventSelector:
        """The events it wants: its `types` (none: all) and every key of its filter."""
        return EventSelector.for_subscription(self.types, self.event_filter)

    def expired(self, now: str) -> bool:
        return self.expiration is not None and now >= self.expiration


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


def _paused(reason: str) -> dict[str, Any]:
    return {"status": PAUSED, "paused_at": clock.now(), "paused_reason": reason}


RESUMED = {"status": ACTIVE, "paused_at": None, "paused_reason": None, "failures": 0}


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
class ControlSubscription:
    """`pause`: stop delivering until it is resumed; `resume`: deliver again, from its
    position. The reply is its row, or an ApiError (not_found, invalid_state)."""

    subscription_id: str
    action: str  # pause or resume
    reply: Reply = no_reply


@dataclass(frozen=True)
class Redeliver:
    """Deliver again the event of a finished delivery, in a delivery row of its own; the
    reply is that row (`pending`)."""

    subscription_id: str
    delivery_id: str
    reply: Reply = no_reply


class EventsStored:
    """A stored batch, for the live subscriptions. Emptied once handled: Pykka's thread
    loop keeps its last message until the next one comes, and a batch of big events
    must not stay alive while nothing else happens."""

    def __init__(self, events: tuple[Event, ...]) -> None:
        self.events = events

    def take(self) -> tuple[Event, ...]:
        events, self.events = self.events, ()
        return events


@dataclass(frozen=True)
class Deliver:
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Redelivery:
    """To an actor: a stored `pending` delivery row to deliver."""

    row: Mapping[str, Any]


@dataclass(frozen=True)
class SubscriptionExpired:
    subscription_id: str


@dataclass(frozen=True)
class SubscriptionCrashed:
    subscription_id: str


@dataclass(frozen=True)
class SubscriptionPaused:
    """An actor paused its own subscription (stored) and stopped delivering."""

    subscription_id: str
    actor_urn: str


@dataclass(frozen=True)
class _Settled:
    """A change to the subscription is stored."""

    subscription_id: str


@dataclass(frozen=True)
class _Restart:
    """What a crashed actor handed the bus is stored: start it again."""

    subscription_id: str


@dataclass(frozen=True)
class _Forget:
    """Its row never got stored: stop the actor, write nothing."""

    subscription_id: str


@dataclass(frozen=True)
class _Resumed:
    """Its resume is stored: start its actor from the stored position."""

    subscription_id: str
    reply: Reply


@dataclass(frozen=True)
class _Redelivering:
    """A redelivery row is stored: hand it to the live actor, if any."""

    subscription_id: str
    row: Mapping[str, Any]


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
        self._paused: set[str] = set()  # subscriptions with no actor until resumed
        self._node = services.node_id or ""
        self._leased: set[str] = set()  # the subscriptions this node delivers
        self._next_refresh = 0.0
        self._settling: dict[str, float] = {}  # sid: until when its row may be stale

    # ---- supervisor thread ----------------------------------------------------------

    def on_start(self) -> None:
        """Listen first, then start the actors: each one's replay begins after the
        listener is in place, so every event is either replayed or heard live."""
        self._services.listen(self._heard)
        self._refresh()
        log.info(
            "%d webhook subscriptions delivering, %d paused", len(self._live), len(self._paused)
        )

    def _refresh(self) -> None:
        """Lease a fair share of the subscriptions no node delivers (a dead node's go on
        from their stored position), then match the actors to what this node holds as
        stored: another node may have paused, resumed or deleted one of them."""
        store = self._services.store
        self._next_refresh = time.monotonic() + REFRESH_SECONDS
        store.coordinate(cluster.lease_subscriptions, self._node)
        now = clock.now()
        held = [row for row in all_subscriptions(store) if row.get("node_id") == self._node]
        self._leased = {row["id"] for row in held}
        for sid in [sid for sid in self._live if sid not in self._leased]:
            self._stop_actor(sid)
        self._paused &= self._leased
        now_monotonic = time.monotonic()
        for row in held:
            subscription = Subscription.from_row(row)
            if self._settling.get(subscription.id, 0.0) > now_monotonic:
                continue  # this node's own change to it is not stored yet
            self._settling.pop(subscription.id, None)
            if subscription.expired(now):
                self._stop_actor(subscription.id)
                self._commit(Commit(changes=deleted(subscription.id)))
            elif row.get("status") == PAUSED:
                self._stop_actor(subscription.id)
                self._paused.add(subscription.id)
            elif subscription.id not in self._live:
                self._paused.discard(subscription.id)
                self._spawn(subscription)

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
        except ApiError as exc:  # a refused request: its answer
            reply = getattr(message, "reply", None)
            if callable(reply):
                reply(exc)
        except Exception:
            log.exception("the subscription supervisor could not handle %r", message)
            reply = getattr(message, "reply", None)
            if callable(reply):
                reply(ApiError("internal_error", "internal server error"))

    def _handle(self, message: object) -> None:
        match message:
            case EventsStored():
                events = message.take()
                for entry in self._live.values():
                    selector = entry.subscription.selector
                    matching = tuple(e for e in events if selector.matches(e))
                    if matching:
                        entry.actor.tell(Deliver(matching))
            case Subscribe(row=row, reply=reply):
                self._subscribe(row, reply)
            case Unsubscribe(subscription_id=sid, reply=reply):
                self._unsubscribe(sid, reply)
            case ControlSubscription(subscription_id=sid, action="pause", reply=reply):
                self._pause(sid, reply)
            case ControlSubscription(subscription_id=sid, action="resume", reply=reply):
                self._resume(sid, reply)
            case _Resumed(subscription_id=sid, reply=reply):
                self._resumed(sid, reply)
            case Redeliver(subscription_id=sid, delivery_id=did, reply=reply):
                self._redeliver(sid, did, reply)
            case _Redelivering(subscription_id=sid, row=row):
                if (entry := self._live.get(sid)) is not None:
                    entry.actor.tell(Redelivery(row))
            case SubscriptionPaused(subscription_id=sid, actor_urn=urn):
                entry = self._live.get(sid)
                if entry is not None and entry.actor.actor_urn == urn:
                    self._settle(sid)  # its actor stored the pause; perhaps not yet
                    self._stop_actor(sid)
                    self._paused.add(sid)
            case SubscriptionExpired(subscription_id=sid):
                self._settle(sid)
                if self._stop_actor(sid):
                    log.info("subscription %s expired", sid)
                    self._commit(Commit(changes=deleted(sid)))
            case SubscriptionCrashed(subscription_id=sid):
                self._crashed(sid)
            case _Restart(subscription_id=sid):
                self._restart(sid)
            case _Forget(subscription_id=sid):
                self._stop_actor(sid)
            case _Settled(subscription_id=sid):
                self._settled(sid)
            case LookForWork():  # woken: something changed
                self._refresh()
                self._hand_redeliveries()
            case Tick():
                if time.monotonic() >= self._next_refresh:
                    self._refresh()
            case Ping(reply=reply):
                reply("pong")

    def _heard(self, events: list[Event]) -> None:
        """Bus thread: hand the batch over; never block the bus."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(EventsStored(tuple(events)))

    def _tell_self(self, message: object) -> None:
        """From any thread (the bus's callbacks)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _commit(self, commit: Commit) -> None:
        self._services.bus.tell(commit)

    def _spawn(self, subscription: Subscription) -> None:
        if subscription.id not in self._leased:
            return  # another node delivers it
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

    def _stored_row(self, sid: str) -> dict[str, Any]:
        """The subscription's row, unless it is unknown or expired (then not_found)."""
        row = get_subscription(self._services.store, sid, clock.now())
        if row is None:
            raise not_found("subscription", sid)
        return row

    def _subscribe(self, row: Mapping[str, Any], reply: Reply) -> None:
        """A new subscription hears the events stored after this moment."""
        stored = {
            **row,
            "position": self._services.store.last_event_seq(),
            **RESUMED,
            "node_id": self._node,
        }
        sid = stored["id"]
        self._leased.add(sid)

        def on_stored(result: Any) -> None:  # bus thread
            if isinstance(result, BaseException):
                self._tell_self(_Forget(sid))
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
        self._paused.discard(sid)
        self._settle(sid)
        if self._stop_actor(sid) and not known:  # expired before its timer fired
            self._commit(Commit(changes=deleted(sid)))
        if not known:
            reply(not_found("subscription", sid))
            return

        def on_stored(result: Any) -> None:
            if not isinstance(result, BaseException):
                self._wake_lessee(sid)
            reply(result if isinstance(result, BaseException) else True)

        self._commit(Commit(changes=deleted(sid), on_stored=on_stored))

    def _update(self, sid: str, fields: Mapping[str, Any], on_stored: Any) -> None:
        self._commit(
            Commit(
                changes=(RowUpdated(SUBSCRIPTIONS, {"id": sid}, dict(fields)),),
                on_stored=on_stored,
            )
        )

    def _hand_redeliveries(self) -> None:
        """Redeliveries asked on another node wait in the store: hand them to the actors
        (each takes a delivery once)."""
        for sid, entry in self._live.items():
            for row in open_deliveries(self._services.store, sid):
                if row["redelivery_of"] is not None:
                    entry.actor.tell(Redelivery(row))

    def _is_paused(self, sid: str, row: Mapping[str, Any]) -> bool:
        """This node's view of one it delivers, else the stored one."""
        return sid in self._paused if sid in self._leased else row.get("status") == PAUSED

    def _wake_lessee(self, sid: str) -> None:
        """Any thread: a change to `sid` is stored: if another node delivers it, that node
        looks at the stored row again at once (written on this supervisor's thread)."""
        self._tell_self(_Settled(sid))

    def _settled(self, sid: str) -> None:
        self._settling.pop(sid, None)
        if sid not in self._leased:
            self._services.store.coordinate(cluster.wake_lessees)

    def _settle(self, sid: str) -> None:
        """A change this node makes to `sid` is on its way to the store: until it is
        stored (or a while), `_refresh` must not act on the row as it was before."""
        self._settling[sid] = time.monotonic() + SETTLE_SECONDS

    def _pause(self, sid: str, reply: Reply) -> None:
        row = self._stored_row(sid)
        if self._is_paused(sid, row):
            raise ApiError("invalid_state", f"subscription {sid!r} is already paused")
        self._settle(sid)
        self._stop_actor(sid)
        self._paused.add(sid)
        update = _paused("paused by request")
        log.info("subscription %s paused by request", sid)

        def on_stored(result: Any) -> None:  # bus thread
            if not isinstance(result, BaseException):
                self._wake_lessee(sid)
            reply(result if isinstance(result, BaseException) else {**row, **update})

        self._update(sid, update, on_stored)

    def _resume(self, sid: str, reply: Reply) -> None:
        """Stored first; its actor starts once the resume is stored, so it reads the
        position every earlier commit left."""
        if not self._is_paused(sid, self._stored_row(sid)):
            raise ApiError("invalid_state", f"subscription {sid!r} is not paused")
        self._settle(sid)

        def on_stored(result: Any) -> None:  # bus thread
            if isinstance(result, BaseException):
                reply(result)
            else:
                self._tell_self(_Resumed(sid, reply))

        self._update(sid, RESUMED, on_stored)

    def _resumed(self, sid: str, reply: Reply) -> None:
        self._paused.discard(sid)
        row = self._stored_row(sid)
        self._wake_lessee(sid)
        if sid not in self._live:
            log.info("subscription %s resumed from position %s", sid, row["position"])
            self._spawn(Subscription.from_row(row))
        reply(row)

    def _redeliver(self, sid: str, delivery_id: str, reply: Reply) -> None:
        store = self._services.store
        self._stored_row(sid)
        earlier = get_delivery(store, sid, delivery_id)
        if earlier is None:
            raise not_found("delivery", delivery_id)
        if earlier["status"] in OPEN_DELIVERY_STATUSES:
            raise ApiError(
                "invalid_state",
                f"delivery {delivery_id!r} is {earlier['status']}: it is being delivered",
            )
        if store.get_event(earlier["event_id"]) is None:
            raise ApiError(
                "invalid_state",
                f"event {earlier['event_id']!r} is no longer stored (retention pruned it)",
            )
        row = {
            **{k: earlier[k] for k in ("subscription_id", "event_id", "event_type", "seq")},
            "id": str(uuid.uuid4()),
            "status": PENDING,
            "attempts": 0,
            "status_code": None,
            "error": None,
            "created_at": clock.now(),
            "completed_at": None,
            "next_attempt_at": None,
            "redelivery_of": delivery_id,
        }

        def on_stored(result: Any) -> None:  # bus thread
            if not isinstance(result, BaseException):
                self._tell_self(_Redelivering(sid, row))
                self._wake_lessee(sid)
            reply(result if isinstance(result, BaseException) else row)

        self._commit(Commit(changes=(RowsInserted(DELIVERIES, (row,)),), on_stored=on_stored))

    def _crashed(self, sid: str) -> None:
        """An actor died of a bug. As it died it handed the bus what it had recorded
        (rows, its position); the new one reads the store, so it starts once a commit
        told after those is stored (the bus stores in order), and `_refresh` leaves the
        subscription alone meanwhile."""
        self._settle(sid)
        self._stop_actor(sid)
        self._commit(Commit(on_stored=lambda _result: self._tell_self(_Restart(sid))))

    def _restart(self, sid: str) -> None:
        """Start a crashed actor again from its stored position."""
        self._settling.pop(sid, None)
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
        self._failures = subscription.failures  # events in a row not delivered
        self._cursor = self._cursor_at(self._position)
        self._loaded = False  # open deliveries taken up from the store
        self._resuming: dict[int, dict[str, Any]] = {}  # by seq: stream rows left retrying
        self._redeliveries: deque[dict[str, Any]] = deque()
        self._redelivery_ids: set[str] = set()
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._client = WebhookClient(
            subscription.callback_url,
            {
                "Content-Type": "application/json",
                "User-Agent": f"Synthesis-Webhooks/{__version__}",
            },
            services.settings.deny_private_targets,
        )
        # delivery records not handed to the bus yet (by delivery id: inserted already?
        # and its fields), and the subscription's update; at most one commit in flight
        self._unstored: dict[str, tuple[bool, dict[str, Any]]] = {}
        self._unstored_update: dict[str, Any] = {}
        self._storing = False

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
        elif isinstance(message, Redelivery):
            self._add_redelivery(dict(message.row))

    def on_stop(self) -> None:
        self._halt()

    def on_failure(self, *_exc_info: object) -> None:
        self._halt()
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(SubscriptionCrashed(self._sub.id))

    def _halt(self) -> None:
        """Stop delivering; what was delivered and not handed to the bus yet goes now."""
        if not self._stopping:
            self._store_records(now=True)
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

    def _cursor_at(self, position: int) -> EventCursor:
        """Its events after `position`: replayed, then live."""
        return EventCursor(
            position,
            self._sub.selector,
            page_size=self._policy.replay_page,
            hold_limit=self._policy.max_queue,
        )

    def _offer(self, events: tuple[Event, ...]) -> None:
        if self._cursor.offer(events):
            log.info(
                "subscription %s: over %d events waiting; replaying from the store",
                self._sub.id,
                self._policy.max_queue,
            )
        if self._wake is not None:
            self._wake.set()

    def _add_redelivery(self, row: dict[str, Any]) -> None:
        if row["id"] in self._redelivery_ids:
            return
        self._redelivery_ids.add(row["id"])
        self._redeliveries.append(row)
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    if not self._loaded:
                        await self._load()
                    elif self._redeliveries:
                        await self._redeliver(self._redeliveries[0])
                        self._redeliveries.popleft()
                    else:
                        await self._advance()
                except Exception:  # a bug or the store gone: start over from the store
                    log.exception("subscription %s: delivery loop failed", self._sub.id)
                    self._cursor = self._cursor_at(self._position)
                    await asyncio.sleep(max(self._policy.backoff_seconds, 0.05))
        finally:
            self._client.close()

    async def _load(self) -> None:
        """Take up the deliveries a stop left open: the stream's next event goes on where
        it was (its attempts and its window), redeliveries wait their turn."""
        rows = await self.loop.run_in_executor(
            None, open_deliveries, self._services.store, self._sub.id
        )
        for row in rows:
            if row["redelivery_of"] is not None:
                self._add_redelivery(row)
            elif row["seq"] > self._position:
                self._resuming[row["seq"]] = row
        self._loaded = True

    async def _advance(self) -> None:
        """The stream's next step: deliver the cursor's next event, or read a page from
        the store, or wait for live events."""
        event = self._cursor.take()
        if event is not None:
            await self._deliver_next(event)
        elif not self._cursor.caught_up:
            cursor = self._cursor
            read = functools.partial(  # a blocking store read, on the loop's executor
                self._services.store.events_after,
                cursor.position,
                cursor.selector,
                limit=cursor.page_size,
            )
            cursor.page(await self.loop.run_in_executor(None, read))
        else:
            assert self._wake is not None
            self._wake.clear()
            await self._wake.wait()

    async def _deliver_next(self, event: Event) -> None:
        """The stream's next event: the position moves past it once it is handled."""
        seq = event.seq or 0
        for gone in sorted(s for s in self._resuming if s < seq):  # pruned before delivery
            row = self._resuming.pop(gone)
            self._record(
                row,
                {"status": FAILED, "error": "the event was pruned before it was delivered"},
                inserted=True,
                completed=True,
            )
        await self._deliver(event, self._resuming.get(seq), advance=True)  # _finish pops it

    async def _redeliver(self, row: dict[str, Any]) -> None:
        event = await self.loop.run_in_executor(
            None, self._services.store.get_event, row["event_id"]
        )
        if self._stopping:
            return
        if event is None:
            error = "the event is no longer stored (retention pruned it)"
            self._record(row, {"status": FAILED, "error": error}, inserted=True, completed=True)
            return
        await self._deliver(event, row, advance=False)

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        """The body and the headers of its own (the client adds Content-Type, User-Agent,
        Host and Content-Length)."""
        body = event.record_json
        headers = {
            "X-Synthesis-Event": event.type,
            "X-Synthesis-Delivery": event.event_id,
        }
        if self._sub.secret:
            headers["X-Synthesis-Signature"] = signature(self._sub.secret, body)
        return body, headers

    async def _deliver(self, event: Event, row: dict[str, Any] | None, advance: bool) -> None:
        """POST one event until it is accepted, refused or its window is over, recording
        each attempt; `row` is its delivery row when one is stored already (a restart cut
        its attempts short, or a redelivery), and its window started at its `created_at`."""
        body, headers = self._request(event)
        inserted = row is not None
        if row is None:
            row = {
                "id": str(uuid.uuid4()),
                "subscription_id": self._sub.id,
                "event_id": event.event_id,
                "event_type": event.type,
                "seq": event.seq,
                "created_at": clock.now(),
                "redelivery_of": None,
            }
        attempts = row.get("attempts") or 0
        next_at = row.get("next_attempt_at")
        wait = max(0.0, _seconds_until(next_at)) if next_at else 0.0
        while True:
            if wait > 0:
                await asyncio.sleep(wait)
                if self._stopping:
                    return
            if self._sub.expiration is not None and self._sub.expired(clock.now()):
                self._expire()
                return
            attempts += 1
            status_code, error, final = await self._post(body, headers)
            if self._stopping:
                return
            status = DELIVERED if error is None else FAILED
            if error is not None and not final:
                started = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
                elapsed = (datetime.now(UTC) - started).total_seconds()
                delay = self._policy.next_delay(attempts, elapsed, random.random())
                status = DEAD if delay is None else RETRYING
            outcome = {"status": status, "attempts": attempts, "status_code": status_code}
            outcome["error"] = error
            if status != RETRYING:
                break
            assert delay is not None
            outcome["next_attempt_at"] = _later(delay)
            self._record(row, outcome, inserted)
            inserted = True
            # if the loop fails and starts over, it goes on with this row as it stands
            row.update(outcome)
            if advance:
                self._resuming[event.seq or 0] = row
            log.info(
                "subscription %s: event %s not delivered to %s (attempt %d: %s); retry in %.2fs",
                self._sub.id,
                event.event_id,
                _host_of(self._sub.callback_url),
                attempts,
                error,
                delay,
            )
            wait = delay
        self._finish(event, row, outcome, inserted, advance)

    def _finish(
        self,
        event: Event,
        row: dict[str, Any],
        outcome: dict[str, Any],
        inserted: bool,
        advance: bool,
    ) -> None:
        """Record how the event ended, in one commit with the subscription's position (for
        the stream's events) and its failures in a row; pause it after too many."""
        delivered = outcome["status"] == DELIVERED
        failures = 0 if delivered else self._failures + 1
        update: dict[str, Any] = {"failures": failures}
        if advance:
            update["position"] = event.seq
        pause = self._policy.pauses_after(failures)
        if pause:
            update.update(
                _paused(
                    f"paused after {failures} events in a row were not delivered; "
                    f"the last one: {outcome['error']}"
                )
            )
        if not delivered:
            log.warning(
                "subscription %s: event %s not delivered to %s (%s after %d attempts): %s",
                self._sub.id,
                event.event_id,
                _host_of(self._sub.callback_url),
                outcome["status"],
                outcome["attempts"],
                outcome["error"],
            )
        self._record(row, outcome, inserted, completed=True, subscription=update)
        self._failures = failures
        if advance:
            self._resuming.pop(event.seq or 0, None)
            self._position = max(self._position, event.seq or 0)
        if pause:
            log.warning("subscription %s: %s", self._sub.id, update["paused_reason"])
            self._halt()
            with contextlib.suppress(pykka.ActorDeadError):
                self._supervisor.tell(SubscriptionPaused(self._sub.id, self.actor_urn))

    def _record(
        self,
        row: dict[str, Any],
        outcome: dict[str, Any],
        inserted: bool,
        completed: bool = False,
        subscription: dict[str, Any] | None = None,
    ) -> None:
        """One delivery row's new state (and the subscription's), through the bus: in
        the next commit of this actor's, which carries everything recorded meanwhile."""
        if self._stopping:
            return
        outcome = {"next_attempt_at": None, **outcome}
        outcome["completed_at"] = clock.now() if completed else None
        waiting = self._unstored.get(row["id"])
        if waiting is not None:
            waiting[1].update(outcome)
        else:
            self._unstored[row["id"]] = (inserted, outcome if inserted else {**row, **outcome})
        if subscription:
            self._unstored_update.update(subscription)
        self._store_records()

    def _store_records(self, now: bool = False) -> None:
        """Hand what was recorded to the bus in one commit, unless one is on its way
        (`now`: all the same). A stored commit sends the next, so under load each
        commit carries many deliveries and the position once; at rest each delivery is
        stored at once. A crash loses only records of events that were delivered, which
        the position (moved in the same commit) makes redelivered: at least once."""
        if (self._storing and not now) or not (self._unstored or self._unstored_update):
            return
        inserts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        changes: list[Any] = []
        for delivery_id, (inserted, fields) in self._unstored.items():
            if inserted:
                changes.append(RowUpdated(DELIVERIES, {"id": delivery_id}, fields))
            else:
                inserts.setdefault(tuple(fields), []).append(fields)
        changes[:0] = [RowsInserted(DELIVERIES, tuple(rows)) for rows in inserts.values()]
        if self._unstored_update:
            update = RowUpdated(SUBSCRIPTIONS, {"id": self._sub.id}, self._unstored_update)
            changes.append(update)
        self._unstored, self._unstored_update = {}, {}
        self._storing = True
        with contextlib.suppress(pykka.ActorDeadError):  # the server is going down: the
            # position did not move past these events, so they are delivered again
            self._services.bus.tell(Commit(changes=tuple(changes), on_stored=self._stored))

    def _stored(self, _result: Any) -> None:
        """Bus thread: this actor's commit is stored (or refused: the bus logged it)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is down
            self.loop.call_soon_threadsafe(self._store_next)

    def _store_next(self) -> None:
        self._storing = False
        if not self._stopping:
            self._store_records()

    async def _post(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None, bool]:
        """One attempt: (status code, None, _) when accepted, else (code or None, why,
        whether it is final: the address policy refused the callback)."""
        timeout = self._policy.request_timeout_seconds
        try:
            answer = await self._client.post(headers, body, timeout)
        except TargetRefused as exc:
            return None, str(exc)[:MAX_ERROR_CHARS], True
        except TimeoutError:
            return None, f"timed out after {timeout:g} s (the webhook timeout)", False
        except OSError as exc:
            return None, (exc.strerror or str(exc))[:MAX_ERROR_CHARS], False
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], False
        if 200 <= answer.code < 300:
            return answer.code, None, False
        return answer.code, f"HTTP {answer.code} {answer.reason}"[:MAX_ERROR_CHARS], False
