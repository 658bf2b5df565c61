"""Tables and reads for webhook subscriptions and their deliveries.

Writes go through the event bus like every other write, as the generic `RowsInserted`,
`RowUpdated` and `RowsDeleted` changes on the tables named here. Reads are plain
functions over a Store's engine (web read pool, the subscription supervisor's thread,
the aio loop's executor); they never run on an event loop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON as SA_JSON
from sqlalchemy import BigInteger, Column, Index, Integer, Text, and_, or_, select
from sqlmodel import Field, SQLModel

from synthesis.store import counts
from synthesis.store.paging import Page, Paging, cursor_key, read_page

if TYPE_CHECKING:
    from synthesis.store.database import Store

SUBSCRIPTIONS = "subscriptions"
DELIVERIES = "subscription_deliveries"

# Delivery statuses: `pending` for a redelivery asked for and not tried yet, `retrying`
# while attempts go on (a server stop leaves it so, and the next start goes on with it),
# then `delivered`, `failed` (given up at once: refused by --deny-private-targets, or its
# event pruned by retention first) or `dead` (its retry window ended).
PENDING = "pending"
RETRYING = "retrying"
DELIVERED = "delivered"
FAILED = "failed"
DEAD = "dead"
DELIVERY_STATUSES = (PENDING, RETRYING, DELIVERED, FAILED, DEAD)
OPEN_DELIVERY_STATUSES = (PENDING, RETRYING)

# Subscription statuses: `paused` (by request, or after too many events in a row were not
# delivered) delivers nothing until it is resumed; then it goes on from its position.
ACTIVE = "active"
PAUSED = "paused"
SUBSCRIPTION_STATUSES = (ACTIVE, PAUSED)


class SubscriptionRow(SQLModel, table=True):
    __tablename__ = SUBSCRIPTIONS
    __table_args__ = (Index("ix_subscriptions_created", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    types: list[str] = Field(sa_column=Column(SA_JSON, nullable=False))  # empty: every type
    event_filter: dict[str, Any] = Field(sa_column=Column(SA_JSON, nullable=False))
    callback_url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str | None = Field(default=None, sa_column=Column(Text))  # needed for the HMAC
    created_at: str = Field(max_length=24)
    expiration: str | None = Field(default=None, max_length=24, index=True)
    # The seq of the last event handled (delivered or given up on): a restarted server
    # delivers what comes after it.
    position: int = Field(
        default=0, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)
    )
    created_by: str | None = None
    status: str = Field(default=ACTIVE, max_length=16)
    paused_at: str | None = Field(default=None, max_length=24)
    paused_reason: str | None = Field(default=None, sa_column=Column(Text))
    failures: int = 0  # events in a row not delivered (dead or failed)
    node_id: str | None = Field(default=None, max_length=36)  # the node delivering it (lease)


class DeliveryRow(SQLModel, table=True):
    __tablename__ = DELIVERIES
    __table_args__ = (
        # the list's order, alone and after a status (store/paging.py)
        Index("ix_subscription_deliveries_order", "subscription_id", "seq", "created_at", "id"),
        Index(
            "ix_subscription_deliveries_status_order",
            "subscription_id",
            "status",
            "seq",
            "created_at",
            "id",
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    subscription_id: str = Field(max_length=36)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=32)
    seq: int = Field(sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 0
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: str = Field(max_length=24)  # the first attempt: its retry window starts
    completed_at: str | None = Field(default=None, max_length=24)
    next_attempt_at: str | None = Field(default=None, max_length=24)
    redelivery_of: str | None = Field(default=None, max_length=36)  # a delivery's id


subscriptions = SubscriptionRow.__table__
deliveries = DeliveryRow.__table__


def _live(now: str) -> Any:
    return or_(subscriptions.c.expiration.is_(None), subscriptions.c.expiration > now)


def list_subscriptions(store: Store, now: str) -> list[dict[str, Any]]:
    """Every subscription not expired at `now`, newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(subscriptions)
            .where(_live(now))
            .order_by(subscriptions.c.created_at.desc(), subscriptions.c.id.desc())
        )
        return [dict(r._mapping) for r in rows]


def all_subscriptions(store: Store) -> list[dict[str, Any]]:
    """Every stored subscription, expired ones too, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(subscriptions).order_by(subscriptions.c.created_at))
        return [dict(r._mapping) for r in rows]


def get_subscription(store: Store, subscription_id: str, now: str) -> dict[str, Any] | None:
    """The subscription, unless it does not exist or has expired at `now`."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(subscriptions).where(and_(subscriptions.c.id == subscription_id, _live(now)))
        ).first()
        return dict(row._mapping) if row else None


def list_deliveries(store: Store, subscription_id: str, status: str | None, paging: Paging) -> Page:
    """One subscription's deliveries, newest event first (redeliveries of an event newest
    first among its deliveries), with the total that matches, counted up to a bound."""
    conditions = [deliveries.c.subscription_id == subscription_id]
    if status:
        conditions.append(deliveries.c.status == status)
    key = (deliveries.c.seq, deliveries.c.created_at, deliveries.c.id)
    keyed = select(*key).where(
        deliveries.c.id == paging.cursor, deliveries.c.subscription_id == subscription_id
    )
    with store.reader.connect() as conn:
        cursor = cursor_key(conn, paging, keyed, "delivery of this subscription")
        page = read_page(
            conn,
            select(deliveries).where(*conditions),
            key,
            paging,
            cursor,
            lambda r: r.id,
            lambda: counts.bounded(conn, select(deliveries.c.id).where(*conditions)),
        )
    return replace(page, rows=[dict(r._mapping) for r in page.rows])


def get_delivery(store: Store, subscription_id: str, delivery_id: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(deliveries).where(
                and_(
                    deliveries.c.id == delivery_id,
                    deliveries.c.subscription_id == subscription_id,
                )
            )
        ).first()
        return dict(row._mapping) if row else None


def open_deliveries(store: Store, subscription_id: str) -> list[dict[str, Any]]:
    """One subscription's deliveries still to be tried (pending or retrying), oldest first:
    what its actor goes on with when it starts."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries)
            .where(
                and_(
                    deliveries.c.status.in_(OPEN_DELIVERY_STATUSES),
                    deliveries.c.subscription_id == subscription_id,
                )
            )
            .order_by(deliveries.c.created_at, deliveries.c.id)
        )
        return [dict(r._mapping) for r in rows]
