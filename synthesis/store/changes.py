"""The store's write vocabulary: immutable values that actors send to the event bus, which
applies them, with their events, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NewExecution:
    row: Mapping[str, Any]
    tags: tuple[str, ...]
    steps: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class NewSteps:
    """Rows for nested steps (a branch, a loop iteration), replacing any of the same id
    that an interrupted earlier run left behind."""

    rows: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class PlanSaved:
    """A stored plan, new (`created=True`) or replaced whole; its tags replaced too."""

    row: Mapping[str, Any]
    tags: tuple[str, ...]
    created: bool


@dataclass(frozen=True)
class NewInvocation:
    row: Mapping[str, Any]


@dataclass(frozen=True)
class InvocationUpdate:
    invocation_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class PlanDeleted:
    plan_id: str


@dataclass(frozen=True)
class IdempotencyKeySaved:
    """A create's answer under its Idempotency-Key (store/idempotency.py); an expired row
    of the same key (saved before `expired_before`) is replaced."""

    row: Mapping[str, Any]
    expired_before: str


@dataclass(frozen=True)
class RowsInserted:
    """Generic: new rows for any table (by name) that has no change type of its own."""

    table: str
    rows: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class RowUpdated:
    """Generic: set `fields` on the rows of `table` that match every item of `where`."""

    table: str
    where: Mapping[str, Any]
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class RowsDeleted:
    table: str
    where: Mapping[str, Any]


@dataclass(frozen=True)
class Pruned:
    """Retention: delete up to `limit` events older than `older_than` or beyond the newest
    `keep_events`, and up to `limit` finished executions that ended before `older_than`
    (with their steps, tags and events)."""

    older_than: str | None
    keep_events: int | None
    limit: int = 5000


@dataclass(frozen=True)
class ExecutionUpdate:
    execution_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class StepUpdate:
    execution_id: str
    step_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class StepsMarked:
    """Every step of one execution whose status is in `from_statuses` gets `fields`. With
    `ended`, the store tells the `step_completed` event (the new status) of each step it
    marked, in the same transaction, before the commit's own events: the rows marked and
    the events told are the same, whatever else happened meanwhile."""

    execution_id: str
    from_statuses: tuple[str, ...]
    fields: Mapping[str, Any]
    ended: bool = False


# Recovery: a step that was running when its process stopped runs again.
RESET_FIELDS: Mapping[str, Any] = {
    "status": "pending",
    "started_at": None,
    "completed_at": None,
    "duration_ms": None,
    "output": None,
    "error": None,
    "exit_code": None,
}


def steps_reset(execution_id: str) -> StepsMarked:
    return StepsMarked(execution_id, ("running",), RESET_FIELDS)


Change = (
    NewExecution
    | NewSteps
    | ExecutionUpdate
    | StepUpdate
    | StepsMarked
    | PlanSaved
    | PlanDeleted
    | NewInvocation
    | InvocationUpdate
    | RowsInserted
    | RowUpdated
    | RowsDeleted
    | Pruned
)
