"""ExecutionActor: one run of one plan. It owns the run's state machine and variables,
starts each step as a StepActor when the schedule allows, and records every change
through the event bus. The supervisor stops it once it has ended.

It lives on the aio loop (a LoopActor) beside its steps: its handlers only compute and
tell, never wait, so a thousand runs in flight cost no thread each."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from synthesis.actors import recording
from synthesis.actors.bridge import Reply
from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.messages import (
    CancelStep,
    Commit,
    Control,
    Drained,
    ExecutionCrashed,
    ExecutionEnded,
    GraceOver,
    Shutdown,
    StepFinished,
)
from synthesis.actors.services import Services
from synthesis.actors.step import StepActor
from synthesis.engine import clock
from synthesis.engine.errors import ApiError
from synthesis.engine.plan import Plan
from synthesis.engine.scheduler import Schedule
from synthesis.engine.schema import check_parameters
from synthesis.engine.substitution import UnknownVariable, substitute
from synthesis.engine.transitions import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINAL,
    transition,
)
from synthesis.integrations import STEP_CAPABILITIES
from synthesis.integrations.base import StepResult


@dataclass(frozen=True)
class ExecutionSeed:
    """Everything an execution actor starts from: a fresh run or one read back from the store."""

    execution_id: str
    plan: Plan
    variables: Mapping[str, Any]
    status: str  # running or paused
    started_at: str
    step_statuses: Mapping[str, str]
    plan_id: str | None = None


class ExecutionActor(LoopActor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Any], seed: ExecutionSeed):
        super().__init__()
        self.loop = services.aio.loop
        self._services = services
        self._supervisor = supervisor
        self._id = seed.execution_id
        self._plan = seed.plan
        self._variables = dict(seed.variables)
        self._status = seed.status
        self._started_at = seed.started_at
        self._schedule = Schedule(seed.plan, seed.step_statuses)
        self._running: dict[str, pykka.ActorRef[Any]] = {}
        self._draining = False
        self._ended = False
        self._cancelled_at: str | None = None

    # ---- messages (aio loop thread) -------------------------------------------------

    def on_start(self) -> None:
        self._advance()

    def on_receive(self, message: object) -> None:
        match message:
            case StepFinished():
                self._step_finished(message)
            case Control(action=action, reply=reply):
                self._control(action, reply)
            case Shutdown(grace=grace):
                self._draining = True
                ref = self.actor_ref
                self.loop.call_later(grace, lambda: _tell_quietly(ref, GraceOver()))
                self._advance()
            case GraceOver():
                for step in self._running.values():
                    _tell_quietly(step, CancelStep(interrupted=True))

    def on_failure(self, _type: object, value: object, _tb: object) -> None:
        """Rule 6: a crashed execution is reported, never left running."""
        for step in self._running.values():
            _tell_quietly(step, CancelStep())
        self._supervisor.tell(ExecutionCrashed(self._id, f"internal error: {value}"))

    # ---- the state machine ----------------------------------------------------------

    def _commit(self, commit: Commit) -> None:
        self._services.bus.tell(commit)

    def _control(self, action: str, reply: Reply) -> None:
        try:
            if self._ended and self._status not in TERMINAL:
                raise ApiError("unavailable", "the server is shutting down")
            target = transition(self._status, action)
        except ApiError as exc:
            reply(exc)
            return
        now = clock.now()
        self._status = target
        if action == "pause":
            commit = recording.paused(self._id, now)
        elif action == "resume":
            commit = recording.resumed(self._id)
        else:  # cancel
            pending = self._schedule.ids_in(PENDING)
            for step_id in pending:
                self._schedule.mark(step_id, CANCELLED)
            commit = recording.cancelled(self._id, now, pending)
            self._cancelled_at = now
            for step in self._running.values():
                _tell_quietly(step, CancelStep())
        answer = recording.control_answer(self._id, action, target, now)
        self._commit(recording.with_reply(commit, reply, answer))
        self._advance()

    def _advance(self) -> None:
        if self._ended:
            return
        if self._status == RUNNING and not self._draining:
            for step_id in self._schedule.ready():
                self._start_step(step_id)
        now = clock.now()
        for step_id in self._schedule.skip_unreachable():
            self._commit(
                recording.step_finished(
                    self._id,
                    step_id,
                    StepResult("skipped", None, "not run: an earlier step failed"),
                    None,
                    now,
                    None,
                    None,
                )
            )
        if self._running:
            return
        if self._status == CANCELLED or self._schedule.finished:
            self._finish()
        elif self._draining:
            self._end(Drained(self._id))

    def _start_step(self, step_id: str) -> None:
        step = self._plan.step(step_id)
        capability = STEP_CAPABILITIES[step.type]
        now = clock.now()
        try:
            parameters = substitute(dict(step.parameters), self._variables)
        except UnknownVariable as exc:
            return self._fail_at_start(step_id, step.type, now, str(exc))
        problems = check_parameters(parameters, capability.parameters, resolved=True)
        if problems:
            detail = "; ".join(f"{p.field} {p.message}" for p in problems)
            return self._fail_at_start(step_id, step.type, now, f"invalid parameters: {detail}")
        self._schedule.mark(step_id, RUNNING)
        self._commit(recording.step_started(self._id, step_id, step.type, now, parameters))
        self._running[step_id] = StepActor.start(
            self._services,
            self.actor_ref,
            self._id,
            step_id,
            capability,
            parameters,
            dict(self._variables),
            step.timeout,
        )
        return None

    def _fail_at_start(self, step_id: str, step_type: str, now: str, reason: str) -> None:
        self._commit(recording.step_started(self._id, step_id, step_type, now, {}))
        self._record_end(step_id, StepResult(FAILED, None, reason), now, now)

    def _step_finished(self, message: StepFinished) -> None:
        self._running.pop(message.step_id, None)
        if message.interrupted:
            self._schedule.mark(message.step_id, PENDING)
            self._commit(recording.step_reset(self._id, message.step_id))
        else:
            self._record_end(
                message.step_id, message.result, message.started_at, message.completed_at
            )
        self._advance()

    def _record_end(self, step_id: str, result: StepResult, started: str, ended: str) -> None:
        changed = bool(result.variables)
        for name, value in result.variables.items():
            self._variables[f"{step_id}_{name}"] = value
        self._schedule.mark(step_id, result.status)
        self._commit(
            recording.step_finished(
                self._id,
                step_id,
                result,
                started,
                ended,
                clock.duration_ms(started, ended),
                self._variables if changed else None,
            )
        )

    def _finish(self) -> None:
        now = clock.now()
        status = CANCELLED if self._status == CANCELLED else self._schedule.outcome()
        error = None
        if status == FAILED:
            failed = self._schedule.ids_in(FAILED)
            error = f"step {failed[0]!r} failed" if failed else "failed"
        end = self._cancelled_at or now if status == CANCELLED else now
        self._status = status
        self._commit(
            recording.finished(
                self._id, status, end, clock.duration_ms(self._started_at, end), error
            )
        )
        self._end(ExecutionEnded(self._id))

    def _end(self, notice: object) -> None:
        """Tell the supervisor once everything this actor committed is stored, so that a
        request it answers from the store after retiring us sees the final state."""
        self._ended = True
        supervisor = self._supervisor
        self._commit(Commit(on_stored=lambda _stored: supervisor.tell(notice)))


def _tell_quietly(ref: pykka.ActorRef[Any], message: object) -> None:
    """Tell an actor that may have stopped already; a stopped step has nothing to cancel."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
