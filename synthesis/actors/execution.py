"""ExecutionActor: one run of one plan, the shell around its interpreter. The interpreter
(engine/interpreter.py) decides what happens; this actor feeds it the messages it gets and
carries out the effects it emits: starts and stops steps, sets timers, tells the
supervisor about children, and sends the records to the bus. The supervisor stops it once
it has ended.

It lives on the aio loop (a LoopActor) beside its steps: its handlers only compute and
tell, never wait (rule 3 of docs/architecture.md), so a thousand runs in flight cost no
thread each. It takes turns: one message starts at most BATCH steps; with more to do it
tells itself to `Continue`, and other actors' messages, step I/O and timers run in
between. What a turn changed goes to the bus as one Commit; while one is on its way to the
store, the next turns' changes are gathered into the next (up to GATHER turns, then it
waits), so one big plan cannot bury the bus under its commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

import pykka

from synthesis.actors import recording
from synthesis.actors.bridge import no_reply
from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.masking import ExecutionMask
from synthesis.actors.messages import (
    CancelStep,
    ChildFinished,
    ChildStarted,
    Commit,
    Continue,
    Control,
    ExecutionCrashed,
    ExecutionEnded,
    Released,
    Shutdown,
    StartChild,
    StepFinished,
)
from synthesis.actors.services import Services
from synthesis.actors.step import StepActor
from synthesis.engine import interpreter as run
from synthesis.engine.interpreter import ExecutionSeed
from synthesis.engine.secrets import Masker
from synthesis.integrations import STEP_CAPABILITIES

log = logging.getLogger(__name__)

GATHER = 8  # turns gathered into one commit while the previous one is being stored


class ExecutionActor(LoopActor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Any], seed: ExecutionSeed):
        super().__init__()
        self.loop = services.aio.loop
        self._services = services
        self._supervisor = supervisor
        self._id = seed.execution_id
        settings = services.settings
        self._machine = run.Interpreter(
            seed,
            self._carry_out,
            secrets=settings.secrets,
            disabled=services.disabled,
            max_iterations=settings.max_loop_iterations,
        )
        machine = self._machine
        self._mask = ExecutionMask(
            self._id, services.masker, machine.scope, machine.variables, kept_stored=True
        )
        self._steps: dict[str, pykka.ActorRef[Any]] = {}  # the step actors running
        self._timeouts: dict[run.Timeout, asyncio.TimerHandle] = {}
        self._outbox: list[Commit] = []  # this turn's changes, sent as one Commit
        self._in_flight = False  # a commit sent with work left is not stored yet
        self._gathered = 0  # turns since it was sent
        self._next_turn: str | None = None  # None, "told" (a Continue) or "bus" (waiting)
        self._held = False  # a commit sent ahead is not stored yet (`_send_ahead`)

    # ---- messages (aio loop thread) -------------------------------------------------

    def on_start(self) -> None:
        try:
            self._machine.advance()
            self._end_turn()
        except Exception:  # Pykka calls no on_failure for on_start: supervise it here
            log.exception("execution %s failed to start", self._id)
            self.on_failure(*sys.exc_info())
            self.stop()

    def on_receive(self, message: object) -> None:
        match message:
            case Released():
                self._held = False
            case Continue(stored=stored):
                if stored:
                    self._in_flight = False
                if self._next_turn == ("bus" if stored else "told"):
                    self._next_turn = None
            case StepFinished(step_id=full, result=result, interrupted=interrupted):
                self._steps.pop(full, None)
                done = run.StepInterrupted(full) if interrupted else run.StepDone(full, result)
                self._machine.feed(done)
            case ChildStarted(step_id=full, child_id=child_id):
                self._machine.feed(run.ChildBegan(full, child_id))
            case ChildFinished(step_id=full, child_id=child, status=status, error=error):
                self._machine.feed(run.ChildDone(full, child, status, message.variables, error))
            case run.TimerFired(timer=timer):
                if isinstance(timer, run.Timeout):
                    self._timeouts.pop(timer, None)
                self._machine.feed(message)
            case Control(action=action, reply=reply):
                self._machine.feed(run.ControlRequest(action, reply))
            case Shutdown(grace=grace):
                self._machine.feed(run.ShutdownRequested(grace))
        self._machine.advance()
        self._end_turn()

    def on_failure(self, _type: object, value: object, _tb: object) -> None:
        """Rule 6: a crashed execution is reported, never left running."""
        self._machine.stop_everything()
        self._send_outbox(force=True)
        self._supervisor.tell(ExecutionCrashed(self._id, f"internal error: {value}"))

    # ---- effects (aio loop thread, as the interpreter emits them) -------------------

    def _carry_out(self, effect: run.Effect) -> None:
        match effect:
            case run.StartStep(step_id=full, step_type=step_type):
                self._steps[full] = StepActor.start(
                    self._services,
                    self.actor_ref,
                    self._id,
                    full,
                    STEP_CAPABILITIES[step_type],
                    effect.parameters,
                    effect.variables,
                    masker=self._current_masker(),
                )
            case run.StopStep(step_id=full, interrupted=interrupted):
                if (ref := self._steps.get(full)) is not None:
                    _tell_quietly(ref, CancelStep(interrupted=interrupted))
            case run.StartChild(step_id=full, plan_id=plan_id, variables=variables):
                masker = self._current_masker()
                secret = tuple(n for n, v in variables.items() if masker.mask(v) != v)
                self._supervisor.tell(
                    StartChild(self._id, full, plan_id, variables, effect.depth, secret)
                )
            case run.ControlChild(child_id=child_id, action=action):
                self._supervisor.tell(Control(child_id, action, no_reply))
            case run.SetTimer(timer=timer, delay=delay):
                ref, fired = self.actor_ref, run.TimerFired(timer)
                handle = self.loop.call_later(delay, lambda: _tell_quietly(ref, fired))
                if isinstance(timer, run.Timeout):
                    self._timeouts[timer] = handle
            case run.CancelTimer(timer=timer):
                if (handle := self._timeouts.pop(timer, None)) is not None:
                    handle.cancel()
            case run.Answer(reply=reply, value=value):
                reply(value)
            case run.Ended(status=status, error=error):
                notice = ExecutionEnded(self._id)
                if status is not None:  # a parent sees its child's secrets masked
                    shown = self._mask.scope.view(self._machine.variables, self._mask.masker)
                    notice = ExecutionEnded(self._id, status, shown, error)
                self._end(notice)
            case run.StatusChanged(action="cancel"):  # answered before the step events
                self._send_ahead(recording.record(self._id, effect))
            case _:
                self._outbox.append(recording.record(self._id, effect))

    def _current_masker(self) -> Masker:
        """The mask for what a step or a child shows from now on: its live output goes to
        the bus directly, so it must know the secrets set earlier in this very turn."""
        if self._mask.scope.names:
            self._mask.refresh(self._machine.variables)
        return self._mask.masker

    def _end(self, notice: object) -> None:
        """Tell the supervisor once everything this actor committed is stored, so that a
        request it answers from the store after retiring us sees the final state."""
        supervisor = self._supervisor
        self._outbox.append(Commit(on_stored=lambda _stored: _tell_quietly(supervisor, notice)))

    # ---- the outbox -----------------------------------------------------------------

    def _end_turn(self) -> None:
        """After each message. With nothing left to do, send what it changed. With work
        left (the batch used up), take another turn once the loop's other callbacks have
        run; and while a commit sent with work left is on its way to the store, gather the
        turns' changes (up to GATHER turns, then wait for the store), to send as one
        Commit once it is stored: one commit per store round trip, however fast the run,
        its variables written once per commit."""
        if not self._machine.behind:
            self._send_outbox()
            return
        if not self._in_flight:
            ref = self.actor_ref
            self._outbox.append(
                Commit(on_stored=lambda _: _tell_quietly(ref, Continue(stored=True)))
            )
            self._in_flight, self._gathered = True, 0
            self._send_outbox()
        if self._next_turn is None:
            if self._gathered < GATHER:
                self._gathered += 1
                self._next_turn = "told"
                self.actor_ref.tell(Continue())
            else:
                self._next_turn = "bus"

    def _send_ahead(self, commit: Commit) -> None:
        """Send `commit` now, in a transaction of its own, and hold this actor's later
        changes until it is stored: a reply that must not wait behind them."""
        self._send_outbox()
        ref, then = self.actor_ref, commit.on_stored

        def on_stored(stored: Any) -> None:
            then(stored)
            _tell_quietly(ref, Released())

        self._held = True
        self._send(Commit(commit.changes, commit.events, on_stored))

    def _send_outbox(self, force: bool = False) -> None:
        if self._held and not force:
            return
        if self._machine.variables_unsaved:
            self._machine.variables_unsaved = False
            self._outbox.append(recording.variables_changed(self._id, self._machine.variables))
        if self._outbox:
            commit = recording.merged(self._outbox)
            self._outbox = []
            self._send(commit)

    def _send(self, commit: Commit) -> None:
        """Everything the execution records passes its mask on its way to the bus
        (actors/masking.py)."""
        self._services.bus.tell(self._mask.protect(commit))


def _tell_quietly(ref: pykka.ActorRef[Any], message: object) -> None:
    """Tell an actor that may have stopped already; a stopped step has nothing to cancel."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
