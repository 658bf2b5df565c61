"""Which steps of a plan may start now, and how the run ends. Pure; the actor drives it.

Rules (docs/architecture.md, "Scheduling"):
- a step is ready when every step it depends on has completed, or has failed with
  `continue_on_failure`;
- a failure without `continue_on_failure` halts the run: no new step starts, running
  steps finish, and the steps that never ran become `skipped`; the execution fails;
- the run ends when no step is pending or running.
"""

from __future__ import annotations

from collections.abc import Mapping

from synthesis.engine.plan import Plan
from synthesis.engine.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
)


class Schedule:
    def __init__(self, plan: Plan, statuses: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.status: dict[str, str] = {s.id: PENDING for s in plan.steps}
        if statuses:
            self.status.update({k: v for k, v in statuses.items() if k in self.status})
        self._tolerated = {s.id for s in plan.steps if s.continue_on_failure}

    @property
    def halted(self) -> bool:
        """True once a step failed that the plan does not tolerate."""
        return any(
            state == FAILED and step_id not in self._tolerated
            for step_id, state in self.status.items()
        )

    def _satisfied(self, dep: str) -> bool:
        state = self.status[dep]
        return state == COMPLETED or (state == FAILED and dep in self._tolerated)

    def ready(self) -> list[str]:
        """Pending steps whose dependencies are all satisfied, in plan order."""
        if self.halted:
            return []
        return [
            step.id
            for step in self.plan.steps
            if self.status[step.id] == PENDING and all(self._satisfied(d) for d in step.depends_on)
        ]

    def ids_in(self, *states: str) -> list[str]:
        return [step_id for step_id, state in self.status.items() if state in states]

    def unreachable(self) -> list[str]:
        """Pending steps that can never start, once nothing is running."""
        if self.ids_in(RUNNING) or (not self.halted and self.ready()):
            return []
        return self.ids_in(PENDING)

    @property
    def finished(self) -> bool:
        return not self.ids_in(PENDING, RUNNING)

    def outcome(self) -> str:
        """The execution's final status, once `finished`."""
        if self.halted:
            return FAILED
        if self.ids_in(CANCELLED):
            return CANCELLED
        return COMPLETED

    def mark(self, step_id: str, state: str) -> None:
        self.status[step_id] = state

    def skip_unreachable(self) -> list[str]:
        skipped = self.unreachable()
        for step_id in skipped:
            self.status[step_id] = SKIPPED
        return skipped
