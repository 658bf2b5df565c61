"""A plan run by the interpreter alone (engine/interpreter.py), with a fake clock and
fake timers: the effects it emits are collected, and the test plays the world (steps
end, timers fire, requests come) by feeding it inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from synthesis.engine import clock as clocks
from synthesis.engine import interpreter as run
from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from synthesis.integrations.base import StepResult

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> str:
        return clocks.format_time(EPOCH + timedelta(seconds=self.t))

    def monotonic(self) -> float:
        return self.t


def command(step_id: str, **options: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "command", "parameters": {"command": "true"}, **options}


def variable(step_id: str, name: str, value: Any, operation: str = "set") -> dict[str, Any]:
    parameters = {"name": name, "operation": operation, "value": value}
    return {"id": step_id, "type": "variable", "parameters": parameters}


class Run:
    def __init__(
        self,
        steps: list[dict[str, Any]],
        variables: dict[str, Any] | None = None,
        *,
        statuses: dict[str, str] | None = None,
        status: str = "running",
        jitter: float = 0.5,
        **options: Any,
    ) -> None:
        plan = validate_plan({"name": "t", "steps": steps}, STEP_SCHEMAS)
        self.clock = FakeClock()
        self.effects: list[run.Effect] = []
        self.timers: dict[Any, float] = {}  # timer: when it fires
        self.replies: list[Any] = []
        seed = run.ExecutionSeed(
            "e1",
            plan,
            {**plan.variables, **(variables or {})},
            status,
            self.clock.now(),
            statuses or {},
        )
        self.machine = run.Interpreter(
            seed, self._emit, clock=self.clock, jitter=lambda: jitter, **options
        )
        self.machine.advance()

    def _emit(self, effect: run.Effect) -> None:
        self.effects.append(effect)
        match effect:
            case run.SetTimer(timer=timer, delay=delay):
                self.timers[timer] = self.clock.t + delay
            case run.CancelTimer(timer=timer):
                self.timers.pop(timer, None)
            case run.Answer(reply=reply, value=value):
                reply(value)
            case run.StatusChanged(reply=reply):  # as if stored at once
                reply(effect)

    # ---- the world ------------------------------------------------------------------

    def feed(self, event: run.Input) -> None:
        self.machine.feed(event)
        self.machine.advance()

    def end(self, step_id: str, status: str = "completed", output: Any = None, **kw: Any) -> None:
        """A running step (a StartStep) ends."""
        assert step_id in self.running(), f"{step_id} is not running: {self.running()}"
        self.feed(run.StepDone(step_id, StepResult(status, output, **kw)))

    def tick(self, seconds: float) -> None:
        """Time passes; the timers due fire in order."""
        until = self.clock.t + seconds
        while due := sorted((t, repr(k), k) for k, t in self.timers.items() if t <= until):
            at, _, timer = due[0]
            del self.timers[timer]
            self.clock.t = at
            self.feed(run.TimerFired(timer))
        self.clock.t = until

    def control(self, action: str) -> list[Any]:
        replies: list[Any] = []
        self.feed(run.ControlRequest(action, replies.append))
        return replies

    # ---- what it did ----------------------------------------------------------------

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]

    def started(self) -> list[str]:
        """Every StartStep, in order (a retry starts again)."""
        return [e.step_id for e in self.of(run.StartStep)]

    def running(self) -> list[str]:
        return [k for k, a in self.machine.active.items() if a.running]

    def finished(self) -> dict[str, run.StepFinished]:
        return {e.step_id: e for e in self.of(run.StepFinished)}

    def status(self, step_id: str) -> str:
        return self.finished()[step_id].result.status

    def error(self, step_id: str) -> str | None:
        return self.finished()[step_id].result.error

    @property
    def outcome(self) -> run.Finished | None:
        done = self.of(run.Finished)
        return done[-1] if done else None
