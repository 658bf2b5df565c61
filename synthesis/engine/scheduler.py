"""Which steps of a step list may start now, and how it ends. Pure; the actor drives it.
One Schedule serves the plan's top level, each branch and each loop iteration.

Rules (docs/plans.md, "Order and failure"):
- a step is ready when every step it depends on has completed, has failed with
  `continue_on_failure`, or was skipped because its own `condition` was false;
- a failure without `continue_on_failure` halts the run: no new step starts, running
  steps finish, and the steps that never ran become `skipped`; the execution fails;
- the run ends when no step is pending or running.

Incremental: each step keeps the number of its dependencies not yet satisfied, and each
step knows the steps that depend on it, so a change of status touches only its
dependents; the ready steps are a set (with a heap for plan order), the statuses are
counted, and a halt is a count of untolerated failures. Every question the actor asks in
its loop (`ready`, `halted`, `finished`, `unreachable`) costs O(1) or O(what it returns),
so running n steps costs O(n log n) in all, not O(n^2).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

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
        """`statuses` are a recovered run's: a step recovered `skipped` was passed over by
        its condition (a run halted by a failure keeps that failure, so it stays halted)."""
        self.steps = steps
        self._by_id = {s.id: s for s in steps}
        self._position = {s.id: i for i, s in enumerate(steps)}
        self._status = {s.id: PENDING for s in steps}
        if statuses:
            self._status.update({k: v for k, v in statuses.items() if k in self._status})
        self.status: Mapping[str, str] = MappingProxyType(self._status)
        self._tolerated = {s.id for s in steps if s.continue_on_failure}
        self._passed_over = {k for k, v in self._status.items() if v == SKIPPED}
        self._counts = Counter(self._status.values())
        self._untolerated = sum(
            1 for k, v in self._status.items() if v == FAILED and k not in self._tolerated
        )
        self._dependents: dict[str, list[str]] = {s.id: [] for s in steps}
        self._waiting: dict[str, int] = {}  # unsatisfied dependencies, per step
        for step in steps:
            for dep in step.depends_on:
                self._dependents[dep].append(step.id)
            self._waiting[step.id] = sum(1 for d in step.depends_on if not self._satisfied(d))
        self._ready: set[str] = set()
        self._heap: list[int] = []  # positions of ready steps; stale entries are dropped
        for step_id in self._status:
            self._check_ready(step_id)

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    @property
    def halted(self) -> bool:
        """True once a step failed that the plan does not tolerate."""
        return self._untolerated > 0

    def _satisfied(self, dep: str) -> bool:
        state = self._status[dep]
        return (
            state == COMPLETED
            or (state == FAILED and dep in self._tolerated)
            or (state == SKIPPED and dep in self._passed_over)
        )

    def _check_ready(self, step_id: str) -> None:
        if self._status[step_id] == PENDING and self._waiting[step_id] == 0:
            if step_id not in self._ready:
                self._ready.add(step_id)
                heapq.heappush(self._heap, self._position[step_id])
        else:
            self._ready.discard(step_id)

    def ready(self, limit: int | None = None) -> list[str]:
        """Pending steps whose dependencies are all satisfied, in plan order (the first
        `limit` of them)."""
        if self.halted or not self._ready:
            return []
        if limit is None or limit >= len(self._ready):
            return sorted(self._ready, key=self._position.__getitem__)
        found: list[int] = []
        while len(found) < limit:
            position = heapq.heappop(self._heap)
            if self.steps[position].id in self._ready and (not found or found[-1] != position):
                found.append(position)
        for position in found:  # still ready until they are marked
            heapq.heappush(self._heap, position)
        return [self.steps[p].id for p in found]

    def ids_in(self, *states: str) -> list[str]:
        """The steps in any of `states`, in plan order. O(n): not for loops."""
        if not any(self._counts[s] for s in states):
            return []
        return [step_id for step_id, state in self._status.items() if state in states]

    def count(self, *states: str) -> int:
        return sum(self._counts[s] for s in states)

    def unreachable(self) -> list[str]:
        """Pending steps that can never start, once nothing is running."""
        if not self._counts[PENDING] or self._counts[RUNNING]:
            return []
        if not self.halted and self._ready:
            return []
        return self.ids_in(PENDING)

    @property
    def finished(self) -> bool:
        return not (self._counts[PENDING] or self._counts[RUNNING])

    def outcome(self) -> str:
        """The execution's final status, once `finished`."""
        if self.halted:
            return FAILED
        if self._counts[CANCELLED]:
            return CANCELLED
        return COMPLETED

    def mark(self, step_id: str, state: str) -> None:
        old = self._status[step_id]
        if old == state:
            return
        was_satisfied = self._satisfied(step_id)
        self._counts[old] -= 1
        self._counts[state] += 1
        if step_id not in self._tolerated:
            self._untolerated += (state == FAILED) - (old == FAILED)
        self._status[step_id] = state
        self._check_ready(step_id)
        now_satisfied = self._satisfied(step_id)
        if now_satisfied != was_satisfied:
            change = -1 if now_satisfied else 1
            for dependent in self._dependents[step_id]:
                self._waiting[dependent] += change
                self._check_ready(dependent)

    def pass_over(self, step_id: str) -> None:
        """The step's condition was false: skipped, and its dependents may still run."""
        self._passed_over.add(step_id)
        self.mark(step_id, SKIPPED)

    def skip_unreachable(self) -> list[str]:
        skipped = self.unreachable()
        for step_id in skipped:
            self.mark(step_id, SKIPPED)
        return skipped
