"""The store's side of /metrics: counts by status, recent durations and duration histograms.

Executions by status are the kept counts (store/counts.py), one row each; steps by status
are counted (a GROUP BY over the steps' rows: no counts are kept for them).

Functions taking a Store (not methods), so the queries live next to their one user. Every
query is an aggregate or a LIMITed top-N and runs the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Float, and_, case, cast, extract, func, literal, select

from synthesis.engine import clock
from synthesis.engine.transitions import COMPLETED, FAILED
from synthesis.store import counts
from synthesis.store.database import Store
from synthesis.store.models import executions, steps

# Durations count for runs that went to their end; cancelled work stopped early by a person.
TIMED_STATUSES = (COMPLETED, FAILED)


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts: `buckets[i]` is how many durations are <= `bounds_ms[i]`."""

    bounds_ms: tuple[float, ...]
    buckets: tuple[int, ...]
    count: int
    sum_ms: float


@dataclass(frozen=True)
class Snapshot:
    execution_counts: dict[str, int]
    step_counts: dict[str, int]
    recent_execution_ms: list[int]  # newest first
    recent_step_ms: list[int]  # newest first
    execution_histogram: Histogram
    step_histogram: Histogram


def snapshot(store: Store, recent: int, bounds_ms: Sequence[float]) -> Snapshot:
    """Everything /metrics needs from the store, on one connection (a read-pool call)."""
    bounds = tuple(float(b) for b in bounds_ms)
    timed_executions = and_(
        executions.c.status.in_(TIMED_STATUSES),
        executions.c.started_at.is_not(None),
        executions.c.completed_at.is_not(None),
    )
    timed_steps = and_(steps.c.status.in_(TIMED_STATUSES), steps.c.duration_ms.is_not(None))
    with store.engine.connect() as conn:
        execution_counts = counts.by_key(conn, "executions")  # kept as they change
        step_counts = _counts(conn, steps.c.status)
        rows = conn.execute(
            select(executions.c.started_at, executions.c.completed_at)
            .where(timed_executions)
            .order_by(executions.c.completed_at.desc(), executions.c.id.desc())
            .limit(recent)
        )
        recent_executions = [
            max(0, clock.duration_ms(r.started_at, r.completed_at) or 0) for r in rows
        ]
        recent_steps = [
            max(0, d)
            for d in conn.execute(
                select(steps.c.duration_ms)
                .where(timed_steps)
                .order_by(steps.c.completed_at.desc())
                .limit(recent)
            ).scalars()
        ]
        execution_histogram = _histogram(
            conn, _execution_ms(store.dialect).label("d"), executions, timed_executions, bounds
        )
        step_histogram = _histogram(
            conn, cast(steps.c.duration_ms, Float).label("d"), steps, timed_steps, bounds
        )
    return Snapshot(
        execution_counts,
        step_counts,
        recent_executions,
        recent_steps,
        execution_histogram,
        step_histogram,
    )


def _counts(conn: Any, status: Any) -> dict[str, int]:
    rows = conn.execute(select(status, func.count()).group_by(status))
    return {row[0]: int(row[1]) for row in rows}


def _execution_ms(dialect: str) -> Any:
    """An execution's run time in whole milliseconds, from its fixed-width ISO text timestamps."""
    start, end = executions.c.started_at, executions.c.completed_at
    if dialect == "sqlite":
        return func.round((func.julianday(end) - func.julianday(start)) * 86_400_000.0)
    as_time = DateTime(timezone=True)
    seconds = cast(extract("epoch", cast(end, as_time) - cast(start, as_time)), Float)
    return func.round(seconds * 1000.0)


def _histogram(
    conn: Any, duration: Any, table: Any, where: Any, bounds: tuple[float, ...]
) -> Histogram:
    """Every timed row ever (not a window), so the buckets only ever grow."""
    inner = select(duration).select_from(table).where(where).subquery()
    d = inner.c.d
    columns = [func.count(), func.coalesce(func.sum(d), literal(0.0))]
    columns += [func.coalesce(func.sum(case((d <= bound, 1), else_=0)), 0) for bound in bounds]
    row = conn.execute(select(*columns).select_from(inner)).one()
    return Histogram(
        bounds_ms=bounds,
        buckets=tuple(int(v) for v in row[2:]),
        count=int(row[0]),
        sum_ms=max(0.0, float(row[1])),
    )
