"""Event values: what happened, as the API and both sockets show it."""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from synthesis.engine import clock

EXECUTION_CREATED = "execution_created"
EXECUTION_STARTED = "execution_started"
EXECUTION_PAUSED = "execution_paused"
EXECUTION_RESUMED = "execution_resumed"
EXECUTION_COMPLETED = "execution_completed"
STEP_STARTED = "step_started"
STEP_OUTPUT = "step_output"
STEP_COMPLETED = "step_completed"
PLAN_CREATED = "plan_created"
PLAN_UPDATED = "plan_updated"
PLAN_DELETED = "plan_deleted"
INVOCATION_COMPLETED = "invocation_completed"
NOTIFICATION = "notification"

EVENT_TYPES = (
    EXECUTION_CREATED,
    EXECUTION_STARTED,
    EXECUTION_PAUSED,
    EXECUTION_RESUMED,
    EXECUTION_COMPLETED,
    STEP_STARTED,
    STEP_OUTPUT,
    STEP_COMPLETED,
    PLAN_CREATED,
    PLAN_UPDATED,
    PLAN_DELETED,
    INVOCATION_COMPLETED,
    NOTIFICATION,
)


_random = threading.local()  # each thread's unused random bytes


def new_event_id() -> str:
    """A random (version 4) UUID, as uuid.uuid4() makes, from random bytes drawn 4 KiB at
    a time: each os.urandom call gives up the GIL, and while the bus thread writes, getting
    it back cost more than the call (a third of a plan's time with 20,000 events)."""
    pool: bytes = getattr(_random, "pool", b"")
    at: int = getattr(_random, "at", 0)
    if at >= len(pool):
        pool, at = os.urandom(4096), 0
        _random.pool = pool
    _random.at = at + 16
    return str(uuid.UUID(bytes=pool[at : at + 16], version=4))


@dataclass(frozen=True)
class Event:
    type: str
    data: Mapping[str, Any]
    execution_id: str | None = None
    event_id: str = field(default_factory=new_event_id)
    timestamp: str = field(default_factory=clock.now)
    seq: int | None = None  # its place in the store's total order, once stored

    @functools.cached_property
    def record_json(self) -> bytes:
        """`record()` encoded once, however many sockets send it."""
        return orjson.dumps(self.record())

    @functools.cached_property
    def message_json(self) -> bytes:
        return orjson.dumps(self.message())

    def record(self) -> dict[str, Any]:
        """The Events API and /ws/events shape."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "timestamp": self.timestamp,
            "execution_id": self.execution_id,
            "payload": dict(self.data),
        }

    def message(self) -> dict[str, Any]:
        """The /ws/executions/{id} shape."""
        return {"type": self.type, "timestamp": self.timestamp, "data": dict(self.data)}


def execution_event(kind: str, execution_id: str, **data: Any) -> Event:
    return Event(kind, {"execution_id": execution_id, **data}, execution_id)


def step_completed(execution_id: str, step_id: str, status: str, duration_ms: int | None) -> Event:
    return execution_event(
        STEP_COMPLETED, execution_id, step_id=step_id, status=status, duration_ms=duration_ms
    )


def invocation_completed(row: Mapping[str, Any], status: str, duration_ms: int | None) -> Event:
    """`row`: the invocation's (id, integration_id, capability_id)."""
    return Event(
        INVOCATION_COMPLETED,
        {
            "invocation_id": row["id"],
            "integration_id": row["integration_id"],
            "capability_id": row["capability_id"],
            "status": status,
            "duration_ms": duration_ms,
        },
    )
