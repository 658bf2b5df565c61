"""Writing a group of commits as few statements as possible, in one transaction.

Inserts are collected per table and sent with executemany. Updates to the same row are
merged in order (a later value wins), then rows updated with the same set of columns
share one cached statement and one executemany. A `StepsMarked` change depends on the
rows' current status, so everything collected before it is written first.

The writer also adds up how the counted tables change (store/counts.py: executions by
status, plans; the events are counted where they are inserted), for the store to apply
last in the transaction.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlmodel import SQLModel

from synthesis.engine.events import Event, step_completed
from synthesis.store.changes import (
    Change,
    ExecutionUpdate,
    IdempotencyKeySaved,
    InvocationUpdate,
    NewExecution,
    NewInvocation,
    NewSteps,
    PlanDeleted,
    PlanSaved,
    Pruned,
    RowsDeleted,
    RowsInserted,
    RowUpdated,
    StepsMarked,
    StepUpdate,
)
from synthesis.store.cluster import PRUNE_LOCK
from synthesis.store.counts import COUNTED, Deltas, stored_statuses
from synthesis.store.idempotency import save_key
from synthesis.store.models import (
    events,
    execution_secrets,
    execution_tags,
    executions,
    invocations,
    plan_tags,
    plans,
    steps,
)

_KEYS: dict[str, tuple[str, ...]] = {
    "executions": ("id",),
    "steps": ("execution_id", "step_id"),
    "invocations": ("id",),
}
_TABLES: dict[str, Table] = {"executions": executions, "steps": steps, "invocations": invocations}


def _table(name: str) -> Table:
    """A table for the generic changes: never a counted one, whose changes have types of
    their own that keep its counts."""
    if name in COUNTED:
        raise TypeError(f"{name} rows change through their own change types")
    return SQLModel.metadata.tables[name]


@functools.cache
def _update_statement(table_name: str, fields: tuple[str, ...]) -> Any:
    table = _TABLES[table_name]
    where = and_(*(table.c[key] == bindparam(f"key_{key}") for key in _KEYS[table_name]))
    return update(table).where(where).values({f: bindparam(f"set_{f}") for f in fields})


class BatchWriter:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._inserts: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        self._updates: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        self.caused: list[Event] = []  # the events changes told (`StepsMarked.ended`)
        self.counted: Deltas = Counter()  # how the counted tables changed (store/counts.py)

    def add(self, change: Change) -> None:
        match change:
            case NewExecution(row=row, tags=tags, steps=step_rows):
                self._inserts[executions].append(dict(row))
                self.counted["executions", row["status"]] += 1
                self._inserts[execution_tags].extend(
                    {"execution_id": row["id"], "tag": tag, "created_at": row["created_at"]}
                    for tag in dict.fromkeys(tags)
                )
                self._inserts[steps].extend(dict(s) for s in step_rows)
            case NewSteps(rows=rows):
                self.flush()
                for row in rows:
                    self._conn.execute(
                        delete(steps).where(
                            and_(
                                steps.c.execution_id == row["execution_id"],
                                steps.c.step_id == row["step_id"],
                            )
                        )
                    )
                self._inserts[steps].extend(dict(r) for r in rows)
            case PlanSaved(row=row, tags=tags, created=created):
                self.flush()
                if created:
                    self._conn.execute(insert(plans), [dict(row)])
                    self.counted["plans", ""] += 1
                else:
                    fields = {k: v for k, v in row.items() if k not in ("id", "created_at")}
                    self._conn.execute(update(plans).where(plans.c.id == row["id"]).values(fields))
                    self._conn.execute(delete(plan_tags).where(plan_tags.c.plan_id == row["id"]))
                if tags:
                    self._conn.execute(
                        insert(plan_tags),
                        [
                            {"plan_id": row["id"], "tag": tag, "created_at": row["created_at"]}
                            for tag in dict.fromkeys(tags)
                        ],
                    )
            case PlanDeleted(plan_id=plan_id):
                self.flush()
                self._conn.execute(delete(plan_tags).where(plan_tags.c.plan_id == plan_id))
                gone = self._conn.execute(delete(plans).where(plans.c.id == plan_id)).rowcount
                self.counted["plans", ""] -= gone
            case NewInvocation(row=row):
                self._inserts[invocations].append(dict(row))
            case InvocationUpdate(invocation_id=iid, fields=fields):
                self._update("invocations", (iid,), fields)
            case RowsInserted(table=name, rows=rows):
                self.flush()
                self._conn.execute(insert(_table(name)), [dict(r) for r in rows])
            case RowUpdated(table=name, where=where, fields=fields):
                self.flush()
                table = _table(name)
                self._conn.execute(
                    update(table)
                    .where(*(table.c[k] == v for k, v in where.items()))
                    .values(dict(fields))
                )
            case RowsDeleted(table=name, where=where):
                self.flush()
                table = _table(name)
                self._conn.execute(
                    delete(table).where(*(table.c[k] == v for k, v in where.items()))
                )
            case Pruned():
                self.flush()
                self._prune(change)
            case IdempotencyKeySaved():
                self.flush()
                save_key(self._conn, change)
            case ExecutionUpdate(execution_id=eid, fields=fields):
                self._update("executions", (eid,), fields)
            case StepUpdate(execution_id=eid, step_id=sid, fields=fields):
                self._update("steps", (eid, sid), fields)
            case StepsMarked(execution_id=eid, from_statuses=statuses, fields=fields):
                self.flush()
                marked = self._conn.execute(
                    update(steps)
                    .where(and_(steps.c.execution_id == eid, steps.c.status.in_(statuses)))
                    .values(**fields)
                    .returning(steps.c.step_id)
                ).scalars()
                if change.ended:
                    self.caused.extend(
                        step_completed(eid, sid, fields["status"], fields.get("duration_ms"))
                        for sid in sorted(marked)
                    )
            case _:
                raise TypeError(f"unknown change {change!r}")

    def _prune(self, change: Pruned) -> None:
        """One node prunes at a time: the others skip their turn (store/cluster.py)."""
        conn, limit = self._conn, change.limit
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PRUNE_LOCK}
            ).scalar_one()
        ):
            return
        if change.older_than is not None:
            finished = list(
                conn.execute(
                    select(executions.c.id)
                    .where(
                        executions.c.status.in_(("completed", "failed", "cancelled")),
                        executions.c.completed_at < change.older_than,
                    )
                    .limit(limit)
                ).scalars()
            )
            if finished:
                for table, column in (
                    (steps, steps.c.execution_id),
                    (execution_tags, execution_tags.c.execution_id),
                    (execution_secrets, execution_secrets.c.execution_id),
                ):
                    conn.execute(delete(table).where(column.in_(finished)))
                self._delete_events(events.c.execution_id.in_(finished))
                for status in conn.execute(
                    delete(executions)
                    .where(executions.c.id.in_(finished))
                    .returning(executions.c.status)
                ).scalars():
                    self.counted["executions", status] -= 1
            old = select(events.c.seq).where(events.c.timestamp < change.older_than)
            self._delete_events(
                events.c.seq.in_(old.order_by(events.c.seq).limit(limit).scalar_subquery())
            )
        if change.keep_events is not None:
            newest = conn.execute(select(func.max(events.c.seq))).scalar_one_or_none() or 0
            beyond = select(events.c.seq).where(events.c.seq <= newest - change.keep_events)
            self._delete_events(
                events.c.seq.in_(beyond.order_by(events.c.seq).limit(limit).scalar_subquery())
            )

    def _delete_events(self, where: Any) -> None:
        deleted = self._conn.execute(delete(events).where(where).returning(events.c.type))
        for kind in deleted.scalars():
            self.counted["events", kind] -= 1

    def _update(self, table_name: str, key: tuple[str, ...], fields: Any) -> None:
        self._updates.setdefault((table_name, key), {}).update(fields)

    def flush(self) -> None:
        # Parents before children: executions, then their tags and steps.
        for table in (executions, execution_tags, steps, invocations):
            if rows := self._inserts.pop(table, None):
                self._conn.execute(insert(table), rows)
        groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
        for (table_name, key), fields in self._updates.items():
            params = {
                f"key_{name}": value for name, value in zip(_KEYS[table_name], key, strict=True)
            }
            params.update({f"set_{name}": value for name, value in fields.items()})
            groups[(table_name, tuple(sorted(fields)))].append(params)
        self._updates.clear()
        self._count_status_changes(groups)
        for (table_name, fields), rows in groups.items():
            self._conn.execute(_update_statement(table_name, fields), rows)

    def _count_status_changes(self, groups: dict[tuple[str, tuple[str, ...]], Any]) -> None:
        """Before executions' updates that set a status: each one's status as stored, so
        the counts move from it to the new one (one SELECT, only when a status changes)."""
        changing = {
            row["key_id"]: row["set_status"]
            for (table_name, fields), rows in groups.items()
            if table_name == "executions" and "status" in fields
            for row in rows
        }
        if not changing:
            return
        for execution_id, status in stored_statuses(self._conn, list(changing)):
            if status != changing[execution_id]:
                self.counted["executions", status] -= 1
                self.counted["executions", changing[execution_id]] += 1
