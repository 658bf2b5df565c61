"""Which steps of a step list may start now, and how it ends. Pure; the actor drives it.
One Schedule serves the plan's top level, each branch and each loop iteration.

Rules (docs/plans.md, "Order and failure"):
- a step is ready when every step it depends on has completed, has failed with
  `continue_on_failure`, or was skipped because its own `condition` was false;
- a failure without `continue_on_failure` halts the run: no new step starts, running
  steps finish, and the steps that never ran become `skipped`; the execution fails;
- the run ends when no step is pending or running.
"""

from __future__ import annotations

from collections.abc import Mapping

from synthesis.engine.plan import Step
from synthesis.engine.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
)


class Schedule:
    def __init__(self, steps: tuple[Step, ...], statuses: Mapping[str, str] | None = None) -> None:
        self.steps = steps
        self.status: dict[str, str] = {s.id: PENDING for s in steps}
        if statuses:
            self.status.update({k: v for k, v in statuses.items() if k in self.status})
        self._tolerated = {s.id for s in steps if s.continue_on_failure}
        self._passed_over: set[str] = set()  # skipped by their own condition

    @property
    def halted(self) -> bool:
        """True once a step failed that the plan does not tolerate."""
        return any(
            state == FAILED and step_id not in self._tolerated
            for step_id, state in self.status.items()
        )

    def _satisfied(self, dep: str) -> bool:
        state = self.status[dep]
        return (
            state == COMPLETED
            or (state == FAILED and dep in self._tolerated)
            or (state == SKIPPED and dep in self._passed_over)
        )

    def ready(self) -> list[str]:
        """Pending steps whose dependencies are all satisfied, in plan order."""
        if self.halted:
            return []
        return [
            step.id
            for step in self.steps
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

    def pass_over(self, step_id: str) -> None:
        """The step's condition was false: skipped, and its dependents may still run."""
        self.status[step_id] = SKIPPED
        self._passed_over.add(step_id)

    def skip_unreachable(self) -> list[str]:
        skipped = self.unreachable()
        for step_id in skipped:
            self.status[step_id] = SKIPPED
        return skipped
