"""Each state change of an execution as the one Commit that records it: the rows to
change and the events to tell. The supervisor and the execution actor both record
through these functions, so a transition is written one way only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from synthesis.actors.bridge import Reply, no_reply
from synthesis.actors.masking import forget_secrets
from synthesis.actors.messages import Commit
from synthesis.engine import clock
from synthesis.engine import events as ev
from synthesis.engine import interpreter as run
from synthesis.engine.events import execution_event
from synthesis.engine.plan import Plan, Step
from synthesis.engine.substitution import as_text
from synthesis.engine.transitions import (
    CANCELLED,
    CRASH_ENDS,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    rule_for,
)
from synthesis.integrations.base import StepResult
from synthesis.integrations.processes import ProcessGroup
from synthesis.store import (
    ExecutionUpdate,
    InvocationUpdate,
    NewExecution,
    NewInvocation,
    NewSteps,
    RowsDeleted,
    RowsInserted,
    StepsMarked,
    StepUpdate,
)

log = logging.getLogger(__name__)


def answer(reply: Reply, value: Any) -> Any:
    """An `on_stored` callback: reply `value` once stored, or the store's exception."""

    def on_stored(stored: Any) -> None:
        reply(stored if isinstance(stored, BaseException) else value)

    return on_stored


def step_rows(
    execution_id: str, steps: tuple[Step, ...], prefix: str, first_position: int
) -> tuple[dict[str, Any], ...]:
    """Pending rows for a step list: the plan's top level, a branch or a loop iteration."""
    return tuple(
        {
            "execution_id": execution_id,
            "step_id": prefix + step.id,
            "position": first_position + offset,
            "type": step.type,
            "status": PENDING,
            "parameters": dict(step.parameters),
        }
        for offset, step in enumerate(steps)
    )


def nested_steps(
    execution_id: str, steps: tuple[Step, ...], prefix: str, first_position: int
) -> Commit:
    return Commit(changes=(NewSteps(step_rows(execution_id, steps, prefix, first_position)),))


def created(
    execution_id: str,
    plan: Plan,
    variables: Mapping[str, Any],
    metadata: Mapping[str, Any],
    created_at: str,
    plan_id: str | None = None,
    parent: tuple[str, str] | None = None,
    depth: int = 0,
    node_id: str | None = None,
) -> Commit:
    row = {
        "id": execution_id,
        "name": plan.name,
        "status": "created",
        "plan_id": plan_id,
        "plan": dict(plan.document),
        "variables": {**plan.variables, **variables},
        "meta": dict(metadata),
        "created_by": metadata.get("created_by"),
        "created_at": created_at,
        "parent_execution_id": parent[0] if parent else None,
        "parent_step_id": parent[1] if parent else None,
        "depth": depth,
        "node_id": node_id,
    }
    steps = step_rows(execution_id, plan.steps, "", 0)
    return Commit(
        changes=(NewExecution(row, tuple(metadata.get("tags") or ()), steps),),
        events=(
            execution_event(ev.EXECUTION_CREATED, execution_id, plan_id=plan_id, name=plan.name),
        ),
    )


def started(
    execution_id: str, name: str, at: str, plan_id: str | None, node_id: str | None
) -> Commit:
    """`node_id`: the node that runs it, or None when it waits for one with room."""
    fields = {"status": RUNNING, "started_at": at, "node_id": node_id}
    return Commit(
        changes=(ExecutionUpdate(execution_id, fields),),
        events=(execution_event(ev.EXECUTION_STARTED, execution_id, plan_id=plan_id, name=name),),
    )


def paused(execution_id: str, at: str, release: bool = False) -> Commit:
    """`release`: no actor holds it any more, so no node owns it."""
    fields: dict[str, Any] = {"status": PAUSED, "paused_at": at}
    if release:
        fields["node_id"] = None
    return Commit(
        changes=(ExecutionUpdate(execution_id, fields),),
        events=(execution_event(ev.EXECUTION_PAUSED, execution_id),),
    )


def resumed(execution_id: str, owner: Mapping[str, str | None] | None = None) -> Commit:
    """Resumed by its live actor, or from the store with a new `owner`: `{"node_id": ...}`
    (None: it waits for a node with room)."""
    fields: dict[str, Any] = {"status": RUNNING, "paused_at": None, **(owner or {})}
    return Commit(
        changes=(ExecutionUpdate(execution_id, fields),),
        events=(execution_event(ev.EXECUTION_RESUMED, execution_id),),
    )


def cancelled(execution_id: str, at: str) -> Commit:
    """The execution is cancelled at once; its pending steps with it (one statement,
    however many). Their events follow in `steps_cancelled`."""
    return Commit(
        changes=(
            ExecutionUpdate(execution_id, {"status": CANCELLED, "completed_at": at}),
            StepsMarked(execution_id, (PENDING,), {"status": CANCELLED, "completed_at": at}),
        )
    )


def failed_unrun(execution_id: str, reason: str, at: str, cancelled: bool = False) -> Commit:
    """An execution no actor runs any more (its actor crashed, it was taken over too
    often, it cannot be rebuilt) ends failed: its running steps fail and its pending ones
    are skipped, each with its `step_completed` event (told by the store for exactly the
    rows it marks), then the execution's end."""
    if cancelled:  # its cancel is stored and answered: it ends cancelled
        ends = {
            RUNNING: {"status": CANCELLED, "completed_at": at},
            PENDING: {"status": CANCELLED, "completed_at": at},
        }
    else:
        ends = {
            RUNNING: {"status": CRASH_ENDS[RUNNING], "error": reason, "completed_at": at},
            PENDING: {"status": CRASH_ENDS[PENDING]},
        }
    marks = tuple(StepsMarked(execution_id, (old,), new, ended=True) for old, new in ends.items())
    status, error = (CANCELLED, None) if cancelled else (FAILED, reason)
    return merged([Commit(changes=marks), finished(execution_id, status, at, None, error)])


def steps_cancelled(execution_id: str, pending_steps: list[str]) -> Commit:
    """The `step_completed` events of the steps a cancel ended before they ran. They may
    be many: sent after the cancel is stored and answered, so it does not wait for them."""
    return Commit(
        events=tuple(
            execution_event(
                ev.STEP_COMPLETED, execution_id, step_id=s, status=CANCELLED, duration_ms=None
            )
            for s in pending_steps
        ),
    )


def finished(
    execution_id: str,
    status: str,
    at: str,
    duration_ms: int | None,
    error: str | None = None,
    had_secrets: bool = True,
) -> Commit:
    """The terminal event. For a cancelled run the row already says so. The secret
    variables kept to run it again are forgotten."""
    fields: dict[str, Any] = {"status": status, "completed_at": at, "error": error}
    if status == CANCELLED:
        fields = {"error": error}
    fields["node_id"] = None  # ended: no node runs it
    forget = (forget_secrets(execution_id),) if had_secrets else ()
    return Commit(
        changes=(ExecutionUpdate(execution_id, fields), *forget),
        events=(
            execution_event(
                ev.EXECUTION_COMPLETED, execution_id, status=status, duration_ms=duration_ms
            ),
        ),
    )


def step_started(
    execution_id: str, step_id: str, step_type: str, at: str, parameters: Mapping[str, Any]
) -> Commit:
    return Commit(
        changes=(
            StepUpdate(
                execution_id,
                step_id,
                {"status": RUNNING, "started_at": at, "parameters": dict(parameters)},
            ),
        ),
        events=(
            execution_event(ev.STEP_STARTED, execution_id, step_id=step_id, step_type=step_type),
        ),
    )


def step_finished(
    execution_id: str,
    step_id: str,
    result: StepResult,
    started_at: str | None,
    completed_at: str,
    duration_ms: int | None,
    attempts: list[dict[str, Any]] | None = None,
) -> Commit:
    """A step's end. The variables it set are stored with it, in the same transaction
    (`variables_changed`, once per turn of the execution actor)."""
    return Commit(
        changes=(
            StepUpdate(
                execution_id,
                step_id,
                {
                    "status": result.status,
                    "output": None if result.output is None else as_text(result.output),
                    "error": result.error,
                    "exit_code": result.exit_code,
                    "started_at": started_at,
                    "completed_at": completed_at,
                    "duration_ms": duration_ms,
                    "attempts": attempts,
                },
            ),
        ),
        events=(
            execution_event(
                ev.STEP_COMPLETED,
                execution_id,
                step_id=step_id,
                status=result.status,
                duration_ms=duration_ms,
            ),
        ),
    )


def variables_changed(execution_id: str, variables: Mapping[str, Any]) -> Commit:
    """The execution's whole variable set, as it stands now (a copy)."""
    return Commit(changes=(ExecutionUpdate(execution_id, {"variables": dict(variables)}),))


def merged(commits: list[Commit]) -> Commit:
    """Several commits as one: their changes and events in order, in one transaction,
    then each one's `on_stored`, in order."""
    if len(commits) == 1:
        return commits[0]
    callbacks = [c.on_stored for c in commits if c.on_stored is not no_reply]

    def on_stored(stored: Any) -> None:
        for callback in callbacks:
            try:
                callback(stored)
            except Exception:  # one failing callback must not silence the others
                log.exception("an on_stored callback failed")

    return Commit(
        tuple(change for c in commits for change in c.changes),
        tuple(event for c in commits for event in c.events),
        on_stored,
    )


def step_attempts(execution_id: str, step_id: str, attempts: list[dict[str, Any]]) -> Commit:
    """A failed attempt, recorded while the step waits to try again."""
    return Commit(changes=(StepUpdate(execution_id, step_id, {"attempts": list(attempts)}),))


def notification(execution_id: str, step_id: str, message: str, data: Any) -> Commit:
    return Commit(
        events=(
            execution_event(
                ev.NOTIFICATION, execution_id, step_id=step_id, message=message, data=data
            ),
        )
    )


def step_reset(execution_id: str, step_id: str) -> Commit:
    """A step stopped by a server shutdown goes back to pending, to run again."""
    return Commit(
        changes=(
            StepUpdate(
                execution_id,
                step_id,
                {"status": PENDING, "started_at": None, "completed_at": None},
            ),
        ),
    )


def process_started(
    execution_id: str | None, step_id: str, group: ProcessGroup, node_id: str | None
) -> Commit:
    """A step's (or, without an execution, an invocation's) process group, on record
    while it runs."""
    row = {**group.row(), "execution_id": execution_id, "step_id": step_id, "node_id": node_id}
    row["started_at"] = clock.now()
    return Commit(changes=(RowsInserted("step_processes", (row,)),))


def waiting(execution_id: str | None, step_id: str, why: str | None) -> Commit:
    """A running step (or, without an execution, an invocation) waits for room to start
    its process: its `error` says why, until None clears it (integrations/room.py)."""
    if execution_id is None:
        return Commit(changes=(InvocationUpdate(step_id, {"error": why}),))
    return Commit(changes=(StepUpdate(execution_id, step_id, {"error": why}),))


def process_ended(group_id: str) -> Commit:
    return Commit(changes=(RowsDeleted("step_processes", {"id": group_id}),))


def invocation_view(row: Mapping[str, Any], with_parameters: bool = True) -> dict[str, Any]:
    view = {
        "invocation_id": row["id"],
        "integration_id": row["integration_id"],
        "capability_id": row["capability_id"],
        "status": row["status"],
        "started_at": row["started_at"],
        "completed_at": row.get("completed_at"),
        "duration_ms": row.get("duration_ms"),
    }
    if with_parameters:
        view["parameters"] = row["parameters"]
    view.update(output=row.get("output"), error=row.get("error"))
    return view


def invocation_started(row: Mapping[str, Any]) -> Commit:
    return Commit(changes=(NewInvocation(row),))


def invocation_finished(
    row: Mapping[str, Any], result: StepResult, completed_at: str
) -> tuple[Commit, dict[str, Any]]:
    """The commit that ends an invocation, and the invocation as it now stands."""
    fields = {
        "status": result.status,
        "output": result.output,
        "error": result.error,
        "completed_at": completed_at,
        "duration_ms": clock.duration_ms(row["started_at"], completed_at),
    }
    event = ev.invocation_completed(row, result.status, fields["duration_ms"])
    return (
        Commit(changes=(InvocationUpdate(row["id"], fields),), events=(event,)),
        {**row, **fields},
    )


def control_answer(execution_id: str, action: str, status: str, at: str) -> dict[str, Any]:
    """The API's answer to start, pause, resume or cancel."""
    return {"execution_id": execution_id, "status": status, rule_for(action).answer_time: at}


def after_stored(commit: Commit, then: Callable[[bool], None]) -> Commit:
    """`commit`, calling `then(stored)` (bus thread) once the store took it (True) or
    refused it (False), before its own `on_stored` (so what `then` tells an actor is in
    its inbox before whoever waits on the reply can send it anything)."""
    own = commit.on_stored

    def on_stored(stored: Any) -> None:
        then(not isinstance(stored, BaseException))
        own(stored)

    return Commit(commit.changes, commit.events, on_stored)


def with_reply(commit: Commit, reply: Reply = no_reply, value: Any = None) -> Commit:
    return Commit(commit.changes, commit.events, answer(reply, value))


def _status_changed(execution_id: str, r: run.StatusChanged) -> Commit:
    answer = control_answer(execution_id, r.action, r.status, r.at)
    if r.action == "pause":
        commit = paused(execution_id, r.at)
    elif r.action == "resume":
        commit = resumed(execution_id)
    else:
        commit = cancelled(execution_id, r.at)
    return with_reply(commit, r.reply, answer)


_RECORDS: dict[type, Callable[[str, Any], Commit]] = {
    run.StepStarted: lambda eid, r: step_started(eid, r.step_id, r.step_type, r.at, r.parameters),
    run.StepFinished: lambda eid, r: step_finished(
        eid, r.step_id, r.result, r.started_at, r.completed_at, r.duration_ms, r.attempts
    ),
    run.AttemptFailed: lambda eid, r: step_attempts(eid, r.step_id, r.attempts),
    run.StepsAdded: lambda eid, r: nested_steps(eid, r.steps, r.prefix, r.position),
    run.Notified: lambda eid, r: notification(eid, r.step_id, r.message, r.data),
    run.StepReset: lambda eid, r: step_reset(eid, r.step_id),
    run.StepsCancelled: lambda eid, r: steps_cancelled(eid, r.step_ids),
    run.Finished: lambda eid, r: finished(
        eid, r.status, r.at, r.duration_ms, r.error, r.had_secrets
    ),
    run.StatusChanged: _status_changed,
}


def record(execution_id: str, r: run.Record) -> Commit:
    """The Commit that stores one of the interpreter's records (engine/interpreter.py)."""
    return _RECORDS[type(r)](execution_id, r)
