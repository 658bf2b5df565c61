"""Execution and step states, and the one table of what may follow what."""

from __future__ import annotations

from synthesis.engine.errors import ApiError

CREATED, RUNNING, PAUSED = "created", "running", "paused"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
EXECUTION_STATUSES = (CREATED, RUNNING, PAUSED, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

PENDING, SKIPPED = "pending", "skipped"
STEP_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED)
STEP_TERMINAL = frozenset({COMPLETED, FAILED, SKIPPED, CANCELLED})

# action: (statuses it is allowed from, status it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({CREATED}), RUNNING),
    "pause": (frozenset({RUNNING}), PAUSED),
    "resume": (frozenset({PAUSED}), RUNNING),
    "cancel": (frozenset({CREATED, RUNNING, PAUSED}), CANCELLED),
}


def transition(status: str, action: str) -> str:
    """Return the status `action` leads to from `status`, or raise invalid_state."""
    allowed, target = ACTIONS[action]
    if status not in allowed:
        raise ApiError(
            "invalid_state",
            f"cannot {action} an execution that is {status}",
        )
    return target
