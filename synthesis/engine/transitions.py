"""Execution and step states, and the one table of what may follow what.

The statuses are `StrEnum`s: each member is its string ("completed"), so they compare,
hash, store and serialize as the plain strings the API and the store use.

`RULES` is the table of the control requests (after Prefect's orchestration rules): each
rule says which statuses it is allowed from, the status it leads to and the time its answer
gives. The interpreter (engine/interpreter.py) and the supervisor both ask it through
`rule_for`, so a request is allowed or refused one way only. `STEP_MOVES` is the same for
a step's status, checked by the interpreter at every change it makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from synthesis.engine.errors import ApiError


class ExecutionStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


CREATED, PAUSED = ExecutionStatus.CREATED, ExecutionStatus.PAUSED
RUNNING, COMPLETED = ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED
FAILED, CANCELLED = ExecutionStatus.FAILED, ExecutionStatus.CANCELLED
EXECUTION_STATUSES = tuple(ExecutionStatus)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

PENDING, SKIPPED = StepStatus.PENDING, StepStatus.SKIPPED
STEP_STATUSES = tuple(StepStatus)
STEP_TERMINAL = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)


@dataclass(frozen=True)
class Rule:
    """One control request: allowed from `allowed`, it leads to `target`; its answer says
    when in the field `answer_time` (actors/recording.control_answer)."""

    action: str
    allowed: frozenset[ExecutionStatus]
    target: ExecutionStatus
    answer_time: str

    def check(self, status: str) -> ExecutionStatus:
        """The status this request leads to from `status`, or raise invalid_state."""
        if status not in self.allowed:
            raise ApiError("invalid_state", f"cannot {self.action} an execution that is {status}")
        return self.target


RULES: dict[str, Rule] = {
    rule.action: rule
    for rule in (
        Rule("start", frozenset({CREATED}), RUNNING, "started_at"),
        Rule("pause", frozenset({RUNNING}), PAUSED, "paused_at"),
        Rule("resume", frozenset({PAUSED}), RUNNING, "resumed_at"),
        Rule("cancel", frozenset({CREATED, RUNNING, PAUSED}), CANCELLED, "cancelled_at"),
    )
}

# action: (statuses it is allowed from, status it leads to); the table above, as pairs
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    action: (frozenset(rule.allowed), rule.target) for action, rule in RULES.items()
}


def rule_for(action: str) -> Rule:
    return RULES[action]


def transition(status: str, action: str) -> ExecutionStatus:
    """Return the status `action` leads to from `status`, or raise invalid_state."""
    return RULES[action].check(status)


# A step's moves: from each status, the statuses it may take next. Pending steps start,
# or end unrun (skipped, cancelled); running steps end, or go back to pending when a
# server shutdown interrupts them; ended steps stay ended.
STEP_MOVES: dict[str, frozenset[str]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.PENDING,
            StepStatus.COMPLETED,
            StepStatus.FAILED,
            StepStatus.CANCELLED,
        }
    ),
    **{ended: frozenset() for ended in STEP_TERMINAL},
}


class StepMoveError(RuntimeError):
    """The interpreter asked for a step move the table does not allow: a bug."""


def check_step_move(step_id: str, old: str, new: str) -> None:
    if old != new and new not in STEP_MOVES[old]:
        raise StepMoveError(f"step {step_id!r} cannot go from {old} to {new}")


# The crash path: what happens to the steps of a run no actor runs any more. Ended (its
# actor crashed, it was taken over too often): running steps fail, pending ones are
# skipped. Interrupted (a shutdown, a dead node): running steps go back to pending, to
# run again. Each a move the table above allows.
CRASH_ENDS: dict[str, str] = {
    StepStatus.RUNNING: StepStatus.FAILED,
    StepStatus.PENDING: StepStatus.SKIPPED,
}
INTERRUPTED = (StepStatus.RUNNING, StepStatus.PENDING)
for _old, _new in (*CRASH_ENDS.items(), INTERRUPTED):
    check_step_move("(crash)", _old, _new)
