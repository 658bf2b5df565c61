"""ExecutionActor: one run of one plan. It owns the run's state machine and variables,
starts each step when its block's schedule allows, and records every change through the
event bus. The supervisor stops it once it has ended.

A *block* is a list of steps being run: the plan's top level, the branch a condition
step took, or one iteration of a loop. Nested steps get ids that say where they came
from (`check.then.notify`, `each[2].build`) and rows of their own in the store. Every
step type ends through `_end_step`, so timeouts, retries, variables and records work the
same for all of them.

It lives on the aio loop (a LoopActor) beside its steps: its handlers only compute and
tell, never wait, so a thousand runs in flight cost no thread each. It shares that loop,
so it takes turns: one message starts at most BATCH steps (instant ones, `variable` and
`notify`, end at once and make the next ready); with more to do it tells itself to
`Continue`, and other actors' messages, step I/O and timers run in between. What a turn
changed goes to the bus as one Commit; while one is on its way to the store, the next
turns' changes are gathered into the next (up to GATHER turns, then it waits), so one big
plan sends one commit per round trip and cannot bury the bus (and every other request
waiting on it) under its commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import ChainMap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka

from synthesis.actors import recording
from synthesis.actors.bridge import Reply, no_reply
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
    GraceOver,
    Released,
    RetryStep,
    Shutdown,
    StartChild,
    StepFinished,
    StepTimedOut,
)
from synthesis.actors.services import Services
from synthesis.actors.step import StepActor
from synthesis.engine import clock
from synthesis.engine.errors import ApiError
from synthesis.engine.expressions import ExpressionError, truthy
from synthesis.engine.plan import CONTROL_SCHEMAS, Plan, Step, loop_bound
from synthesis.engine.scheduler import Schedule
from synthesis.engine.schema import check_parameters, with_defaults
from synthesis.engine.secrets import SECRET_ENV_PREFIX, Masker, SecretScope, references
from synthesis.engine.substitution import UnknownVariable, is_whole_reference, lookup, substitute
from synthesis.engine.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    TERMINAL,
    transition,
)
from synthesis.engine.variables import VariableError, apply_operation
from synthesis.integrations import STEP_CAPABILITIES, STEP_INTEGRATIONS, disabled_message
from synthesis.integrations.base import StepResult

log = logging.getLogger(__name__)

BATCH = 64  # steps started (or loop iterations opened) per message, then a turn for others
TURN_SECONDS = 0.02  # and at most this long: slow conditions must not hold the loop either
GATHER = 8  # turns gathered into one commit while the previous one is being stored


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
    depth: int = 0
    next_position: int | None = None  # where nested step rows go; None: after the plan's
    secret_names: frozenset[str] = frozenset()  # its secret variables (engine/secrets.py)


@dataclass(eq=False)
class Block:
    prefix: str
    steps: tuple[Step, ...]
    schedule: Schedule
    scope: dict[str, Any]  # item/index and this block's step outputs; the top level's
    parent: Block | None = None  # are the execution's variables
    owner: str | None = None  # the control step running this block
    index: int | None = None  # its iteration, in a loop


@dataclass(eq=False)
class Active:
    """A step between its start and its end, whatever its type."""

    block: Block
    step: Step
    started_at: str
    attempt: int = 1
    attempt_started_at: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    actor: pykka.ActorRef[Any] | None = None
    child_id: str | None = None
    branch: str | None = None
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False
    retry_due: bool = False  # a retry came due while the run was paused


@dataclass(eq=False)
class LoopRun:
    items: list[Any] | None  # None for a while loop
    limit: int
    width: int  # iterations at once
    next_index: int = 0
    running: int = 0
    results: dict[int, Any] = field(default_factory=dict)
    failure: str | None = None


class ExecutionActor(LoopActor):
    def __init__(self, services: Services, supervisor: pykka.ActorRef[Any], seed: ExecutionSeed):
        super().__init__()
        self.loop = services.aio.loop
        self._services = services
        self._supervisor = supervisor
        self._id = seed.execution_id
        self._plan = seed.plan
        self._depth = seed.depth
        self._variables = dict(seed.variables)
        self._mask = ExecutionMask(
            self._id,
            services.masker,
            SecretScope(set(seed.secret_names)),
            self._variables,
            kept_stored=True,
        )
        self._status = seed.status
        self._started_at = seed.started_at
        self._top = Block(
            "", seed.plan.steps, Schedule(seed.plan.steps, seed.step_statuses), self._variables
        )
        self._blocks: dict[Block, None] = {self._top: None}  # an ordered set
        self._active: dict[str, Active] = {}
        self._loops: dict[str, LoopRun] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._position = len(seed.plan.steps) if seed.next_position is None else seed.next_position
        self._max_iterations = services.settings.max_loop_iterations
        self._variables_changed = False  # by the step being recorded
        self._variables_unsaved = False  # since the last turn's commit
        self._draining = False
        self._ended = False
        self._cancelled_at: str | None = None
        # what changed since the last pass, so a pass touches only that
        self._dirty_blocks: dict[Block, None] = {self._top: None}
        self._dirty_loops: dict[str, None] = {}
        self._budget = BATCH  # steps this turn may still start
        self._turn_ends = 0.0  # and until when (time.monotonic())
        self._outbox: list[Commit] = []  # this turn's changes, sent as one Commit
        self._in_flight = False  # a commit sent with work left is not stored yet
        self._gathered = 0  # turns since it was sent
        self._next_turn: str | None = None  # None, "told" (a Continue) or "bus" (waiting)
        self._held = False  # a commit sent ahead is not stored yet (`_send_ahead`)

    # ---- messages (aio loop thread) -------------------------------------------------

    def on_start(self) -> None:
        try:
            self._advance()
            self._end_turn()
        except Exception:  # Pykka calls no on_failure for on_start: supervise it here
            log.exception("execution %s failed to start", self._id)
            self.on_failure(*sys.exc_info())
            self.stop()

    def on_receive(self, message: object) -> None:
        self._handle(message)
        self._advance()
        self._end_turn()

    def _handle(self, message: object) -> None:
        match message:
            case Released():
                self._held = False
            case Continue(stored=stored):
                if stored:
                    self._in_flight = False
                if self._next_turn == ("bus" if stored else "told"):
                    self._next_turn = None
            case StepFinished(step_id=full, result=result, interrupted=interrupted):
                if interrupted:
                    self._reset(full)
                else:
                    self._end_step(full, result)
            case ChildStarted(step_id=full, child_id=child_id):
                if (entry := self._active.get(full)) is not None:
                    entry.child_id = child_id
            case ChildFinished():
                self._child_finished(message)
            case StepTimedOut(step_id=full, attempt=attempt):
                self._timed_out(full, attempt)
            case RetryStep(step_id=full):
                self._retry(full)
            case Control(action=action, reply=reply):
                self._control(action, reply)
            case Shutdown(grace=grace):
                self._draining = True
                ref = self.actor_ref
                self.loop.call_later(grace, lambda: _tell_quietly(ref, GraceOver()))
            case GraceOver():
                for entry in self._active.values():
                    if entry.actor is not None:
                        _tell_quietly(entry.actor, CancelStep(interrupted=True))

    def on_failure(self, _type: object, value: object, _tb: object) -> None:
        """Rule 6: a crashed execution is reported, never left running."""
        self._stop_everything()
        self._send_outbox(force=True)
        self._supervisor.tell(ExecutionCrashed(self._id, f"internal error: {value}"))

    def _end_turn(self) -> None:
        """After each message. With nothing left to do, send what it changed. With work
        left (the batch used up), take another turn once the loop's other callbacks have
        run; and while a commit sent with work left is on its way to the store, gather the
        turns' changes (up to GATHER turns, then wait for the store), to send as one
        Commit once it is stored: one commit per store round trip, however fast the run,
        its variables written once per commit."""
        behind = bool(self._dirty_blocks or self._dirty_loops) and not self._ended
        if not behind:
            self._send_outbox()
            return
        if not self._in_flight:
            ref = self.actor_ref
            self._commit(Commit(on_stored=lambda _: _tell_quietly(ref, Continue(stored=True))))
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
        if self._variables_unsaved:
            self._variables_unsaved = False
            self._outbox.append(recording.variables_changed(self._id, self._variables))
        if self._outbox:
            commit = recording.merged(self._outbox)
            self._outbox = []
            self._send(commit)

    def _send(self, commit: Commit) -> None:
        """Everything the execution records passes its mask on its way to the bus
        (actors/masking.py)."""
        self._services.bus.tell(self._mask.protect(commit))

    # ---- control requests -----------------------------------------------------------

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
        answer = recording.control_answer(self._id, action, target, now)
        if action == "pause":
            self._commit(recording.with_reply(recording.paused(self._id, now), reply, answer))
        elif action == "resume":
            self._commit(recording.with_reply(recording.resumed(self._id), reply, answer))
        else:  # cancel: answered once the state is stored, before the (many) step events
            self._cancelled_at = now
            pending = [
                block.prefix + step_id
                for block in self._blocks
                for step_id in _mark_all(block.schedule, PENDING, CANCELLED)
            ]
            self._send_ahead(
                recording.with_reply(recording.cancelled(self._id, now), reply, answer)
            )
            self._commit(recording.steps_cancelled(self._id, pending))
        for entry in list(self._active.values()):
            if entry.child_id is not None:
                self._supervisor.tell(Control(entry.child_id, action, no_reply))
        self._dirty_everything()
        if action == "cancel":
            self._stop_everything()
        elif action == "resume":
            for full, entry in list(self._active.items()):
                if entry.retry_due:
                    entry.retry_due = False
                    self._begin_attempt(full, entry)

    def _stop_everything(self) -> None:
        """Cancel: stop every running step; what has no actor to wait for ends now."""
        for full, entry in list(self._active.items()):
            if entry.actor is not None:
                _tell_quietly(entry.actor, CancelStep())
            elif entry.step.type not in ("condition", "loop"):
                self._end_step(full, StepResult(CANCELLED, None, "cancelled"))

    # ---- the state machine ----------------------------------------------------------

    def _commit(self, commit: Commit) -> None:
        """Queue a change; the turn's changes go to the bus together (`_end_turn`)."""
        self._outbox.append(commit)

    def _dirty_everything(self) -> None:
        """The run's status changed: every block and loop may have something to do."""
        self._dirty_blocks.update(dict.fromkeys(self._blocks))
        self._dirty_loops.update(dict.fromkeys(self._loops))

    def _advance(self) -> None:
        """Start what may start and end what has ended in the blocks and loops that
        changed, until nothing changes or this turn's batch is used up."""
        if self._ended:
            return
        self._budget = BATCH
        self._turn_ends = time.monotonic() + TURN_SECONDS
        while self._budget > 0 and (self._dirty_blocks or self._dirty_loops):
            if self._dirty_blocks:
                block = next(iter(self._dirty_blocks))
                del self._dirty_blocks[block]
                self._advance_block(block)
            else:
                full = next(iter(self._dirty_loops))
                del self._dirty_loops[full]
                if (loop := self._loops.get(full)) is not None:
                    self._advance_loop(full, loop)
        if self._dirty_blocks or self._dirty_loops:
            return  # more next turn
        if self._top.schedule.finished and not self._active:
            self._finish()
        elif self._draining and not any(e.actor for e in self._active.values()):
            self._end(ExecutionEnded(self._id))

    def _spend(self) -> bool:
        """May this turn start one more step? At most BATCH of them, in TURN_SECONDS."""
        if self._budget > 0 and time.monotonic() > self._turn_ends:
            self._budget = 0
        if self._budget <= 0:
            return False
        self._budget -= 1
        return True

    def _advance_block(self, block: Block) -> None:
        if block not in self._blocks:
            return  # finished, or dropped with a control step that timed out
        schedule = block.schedule
        if self._status == RUNNING and not self._draining:
            while ready := schedule.ready(1):
                if not self._spend():
                    self._dirty_blocks[block] = None
                    return
                self._start(block, schedule.step(ready[0]))
        now = clock.now()
        for step_id in schedule.skip_unreachable():
            self._record(
                block,
                step_id,
                StepResult(SKIPPED, None, "not run: an earlier step failed"),
                None,
                now,
            )
        if block.owner is not None and schedule.finished:
            del self._blocks[block]
            self._dirty_blocks.pop(block, None)
            self._block_finished(block)

    def _start(self, block: Block, step: Step) -> None:
        full = block.prefix + step.id
        if step.condition is not None:
            try:
                go = truthy(step.condition, self._variables_for(block), self._steps_for(block))
            except ExpressionError as exc:
                go, reason = None, f"condition: {exc}"
            if not go:
                now = clock.now()
                if go is None:
                    block.schedule.mark(step.id, RUNNING)
                    self._active[full] = Active(block, step, now, attempt_started_at=now)
                    self._started(full, step, {})
                    self._end_step(full, StepResult(FAILED, None, reason))
                else:
                    block.schedule.pass_over(step.id)
                    self._record(
                        block, step.id, StepResult(SKIPPED, None, "condition was false"), None, now
                    )
                return
        block.schedule.mark(step.id, RUNNING)
        now = clock.now()
        entry = Active(block, step, now)
        self._active[full] = entry
        self._begin_attempt(full, entry)

    def _begin_attempt(self, full: str, entry: Active) -> None:
        step, block = entry.step, entry.block
        entry.attempt_started_at = clock.now()
        entry.timed_out = False
        if step.timeout is not None:
            ref, attempt = self.actor_ref, entry.attempt
            entry.timer = self.loop.call_later(
                step.timeout, lambda: _tell_quietly(ref, StepTimedOut(full, attempt))
            )
        variables = self._variables_for(block)
        try:
            parameters = _resolve(step, variables, self._services.settings.secrets)
            self._started(full, step, parameters)
            match step.type:
                case "condition":
                    self._run_condition(full, entry, variables)
                case "loop":
                    self._run_loop(full, entry, parameters, variables)
                case "variable":
                    self._run_variable(full, parameters)
                case "notify":
                    self._run_notify(full, parameters)
                case "plan":
                    self._run_child(full, parameters)
                case _:
                    self._run_capability(full, entry, parameters, variables)
        except (UnknownVariable, ExpressionError, VariableError) as exc:
            self._end_step(full, StepResult(FAILED, None, str(exc)))
        except Exception as exc:  # a bug fails its step; it never hangs the run
            log.exception("step %s of execution %s failed to start", full, self._id)
            self._end_step(full, StepResult(FAILED, None, f"internal error: {exc}"))

    def _started(self, full: str, step: Step, parameters: Mapping[str, Any]) -> None:
        entry = self._active[full]
        if entry.attempt == 1:
            self._commit(
                recording.step_started(self._id, full, step.type, entry.started_at, parameters)
            )

    def _run_capability(
        self, full: str, entry: Active, parameters: dict[str, Any], variables: Mapping[str, Any]
    ) -> None:
        integration = STEP_INTEGRATIONS.get(entry.step.type)
        if integration in self._services.disabled:
            message = disabled_message(entry.step.type, integration)
            self._end_step(full, StepResult(FAILED, None, message))
            return
        if "env" in STEP_CAPABILITIES[entry.step.type].parameters:
            parameters = _with_secret_env(entry.step, parameters, self._services.settings.secrets)
        entry.actor = StepActor.start(
            self._services,
            self.actor_ref,
            self._id,
            full,
            STEP_CAPABILITIES[entry.step.type],
            parameters,
            dict(variables),  # a snapshot: the step reads it later, the run goes on
            masker=self._current_masker(),
        )

    def _current_masker(self) -> Masker:
        """The mask for what a step or a child shows from now on: its live output goes to
        the bus directly, so it must know the secrets set earlier in this very turn."""
        if self._mask.scope.names:
            self._mask.refresh(self._variables)
        return self._mask.masker

    def _run_condition(self, full: str, entry: Active, variables: Mapping[str, Any]) -> None:
        assert entry.step.expression is not None
        taken = truthy(entry.step.expression, variables, self._steps_for(entry.block))
        entry.branch = "then" if taken else "else"
        steps = entry.step.branches.get(entry.branch, ())
        if not steps:
            self._end_step(
                full,
                StepResult(COMPLETED, None, variables={"output": None, "branch": entry.branch}),
            )
            return
        self._open_block(f"{full}.{entry.branch}.", steps, {}, entry.block, full)

    def _run_loop(
        self, full: str, entry: Active, parameters: dict[str, Any], variables: Mapping[str, Any]
    ) -> None:
        params = with_defaults(parameters, CONTROL_SCHEMAS["loop"])
        limit = loop_bound(parameters.get("max_iterations"), self._max_iterations)
        if limit > self._max_iterations:  # given as ${...}: checked now that it is known
            raise VariableError(
                f"max_iterations {limit} is over the server's max_loop_iterations "
                f"({self._max_iterations})"
            )
        items: list[Any] | None = None
        if "for" in params:
            items = params["for"]
            if not is_whole_reference(entry.step.parameters["for"]) and isinstance(items, str):
                items = lookup(items, variables)  # the name of a list variable
            if not isinstance(items, list):
                raise VariableError(f"loop over {parameters['for']!r}: it is not a list")
            if len(items) > limit:
                raise VariableError(f"{len(items)} items is over max_iterations ({limit})")
        elif "count" in params:
            if params["count"] > limit:
                raise VariableError(f"count {params['count']} is over max_iterations ({limit})")
            items = list(range(params["count"]))
        width = (params.get("max_concurrency") or limit) if params["parallel"] else 1
        self._loops[full] = LoopRun(items, limit, width)
        self._dirty_loops[full] = None

    def _advance_loop(self, full: str, loop: LoopRun) -> None:
        entry = self._active.get(full)
        if entry is None:  # cancelled or timed out
            del self._loops[full]
            return
        while (
            self._status == RUNNING
            and not self._draining
            and loop.failure is None
            and loop.running < loop.width
            and self._more(entry, loop)
        ):
            if not self._spend():
                self._dirty_loops[full] = None
                return
            index = loop.next_index
            loop.next_index += 1
            loop.running += 1
            item = loop.items[index] if loop.items is not None else None
            self._open_block(
                f"{full}[{index}].",
                entry.step.branches["steps"],
                {"item": item, "index": index},
                entry.block,
                full,
                index,
            )
        if loop.running:
            return
        if self._status == CANCELLED:
            self._end_step(full, StepResult(CANCELLED, None, "cancelled"))
        elif loop.failure is not None or not self._more(entry, loop):
            results = [loop.results[i] for i in sorted(loop.results)]
            if loop.failure is not None:
                self._end_step(full, StepResult(FAILED, results, loop.failure))
            else:
                self._end_step(full, StepResult(COMPLETED, results, variables={"output": results}))
        else:
            return
        del self._loops[full]

    def _more(self, entry: Active, loop: LoopRun) -> bool:
        """Is there another iteration to run? Enforces max_iterations on while loops."""
        if loop.failure is not None:
            return False
        if loop.items is not None:
            return loop.next_index < len(loop.items)
        assert entry.step.expression is not None
        variables = ChainMap({"index": loop.next_index}, self._variables_for(entry.block))
        try:
            go = truthy(entry.step.expression, variables, self._steps_for(entry.block))
        except ExpressionError as exc:
            loop.failure = f"while: {exc}"
            return False
        if go and loop.next_index >= loop.limit:
            loop.failure = f"still true after max_iterations ({loop.limit})"
            return False
        return go

    def _run_variable(self, full: str, params: dict[str, Any]) -> None:
        self._mask.scope.declare((), [params["name"]])
        value = apply_operation(
            self._variables, params["operation"], params["name"], params.get("value")
        )
        self._variables_changed = True
        self._end_step(full, StepResult(COMPLETED, value, variables={"output": value}))

    def _run_notify(self, full: str, params: dict[str, Any]) -> None:
        self._commit(recording.notification(self._id, full, params["message"], params.get("data")))
        self._end_step(
            full, StepResult(COMPLETED, params["message"], variables={"output": params["message"]})
        )

    def _run_child(self, full: str, params: dict[str, Any]) -> None:
        variables = params.get("variables") or {}
        masker = self._current_masker()
        secret = tuple(name for name, value in variables.items() if masker.mask(value) != value)
        self._supervisor.tell(
            StartChild(self._id, full, params["plan_id"], variables, self._depth + 1, secret)
        )

    def _child_finished(self, message: ChildFinished) -> None:
        entry = self._active.get(message.step_id)
        if entry is None or (entry.child_id or message.child_id) != message.child_id:
            return  # a child of an earlier attempt, or of a run before a restart
        status = message.status
        error = message.error
        if status == CANCELLED and self._status != CANCELLED:
            status, error = FAILED, error or "the child execution was cancelled"
        outputs = dict(message.variables)
        self._end_step(
            message.step_id,
            StepResult(
                status,
                outputs,
                error,
                variables={"output": outputs, "execution_id": message.child_id},
            ),
        )

    def _open_block(
        self,
        prefix: str,
        steps: tuple[Step, ...],
        scope: dict[str, Any],
        parent: Block,
        owner: str,
        index: int | None = None,
    ) -> None:
        self._commit(recording.nested_steps(self._id, steps, prefix, self._position))
        self._position += len(steps)
        block = Block(prefix, steps, Schedule(steps), scope, parent, owner, index)
        self._blocks[block] = None
        self._dirty_blocks[block] = None

    def _block_finished(self, block: Block) -> None:
        assert block.owner is not None
        entry = self._active.get(block.owner)
        if entry is None:
            return
        outcome = block.schedule.outcome()
        last = block.scope.get(f"{block.steps[-1].id}_output")
        if entry.step.type == "loop":
            loop = self._loops[block.owner]
            loop.running -= 1
            self._dirty_loops[block.owner] = None
            if outcome == COMPLETED:
                loop.results[block.index or 0] = last
            elif loop.failure is None:
                loop.failure = f"iteration {block.index} {outcome}"
            return
        if outcome == COMPLETED:
            result = StepResult(COMPLETED, last, variables={"output": last, "branch": entry.branch})
        else:
            result = StepResult(
                outcome,
                last,
                f"branch {entry.branch!r} {outcome}",
                variables={"branch": entry.branch},
            )
        self._end_step(block.owner, result)

    def _timed_out(self, full: str, attempt: int) -> None:
        entry = self._active.get(full)
        if entry is None or entry.attempt != attempt:
            return
        entry.timed_out = True
        if entry.actor is not None:
            _tell_quietly(entry.actor, CancelStep())
            return
        if entry.child_id is not None:
            self._supervisor.tell(Control(entry.child_id, "cancel", no_reply))
        self._discard_under(full)
        self._end_step(full, StepResult(FAILED, None, "timed out"))

    def _discard_under(self, full: str) -> None:
        """A control step that timed out: drop what it started, stopping what runs."""
        nested = (f"{full}.", f"{full}[")
        now = clock.now()
        for block in [b for b in self._blocks if b.prefix.startswith(nested)]:
            del self._blocks[block]
            self._dirty_blocks.pop(block, None)
            for step_id in _mark_all(block.schedule, PENDING, CANCELLED):
                self._record(block, step_id, StepResult(CANCELLED, None, "cancelled"), None, now)
        for key, entry in list(self._active.items()):
            if key.startswith(nested):
                if entry.actor is not None:
                    _tell_quietly(entry.actor, CancelStep())
                else:
                    self._end_step(key, StepResult(CANCELLED, None, "cancelled"))
        for key in [k for k in self._loops if k.startswith(nested)]:
            del self._loops[key]

    def _retry(self, full: str) -> None:
        entry = self._active.get(full)
        if entry is None:
            return
        if self._status == RUNNING and not self._draining:
            self._begin_attempt(full, entry)
        else:
            entry.retry_due = True

    def _reset(self, full: str) -> None:
        """A step stopped by a server shutdown: pending again, to run after the restart."""
        entry = self._active.pop(full, None)
        if entry is None:
            return
        entry.block.schedule.mark(entry.step.id, PENDING)
        self._dirty_blocks[entry.block] = None
        self._commit(recording.step_reset(self._id, full))

    def _end_step(self, full: str, result: StepResult) -> None:
        """The one way any step ends: retry it, or record how it ended."""
        entry = self._active.get(full)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        step = entry.step
        if entry.timed_out and result.status != COMPLETED:
            result = StepResult(
                FAILED,
                result.output,
                f"timed out after {step.timeout:g} seconds",
                result.exit_code,
                result.variables,
            )
        now = clock.now()
        entry.actor = None
        if step.retry is not None:
            entry.attempts.append(
                {
                    "attempt": entry.attempt,
                    "status": result.status,
                    "error": result.error,
                    "exit_code": result.exit_code,
                    "started_at": entry.attempt_started_at,
                    "completed_at": now,
                }
            )
            if (
                result.status == FAILED
                and entry.attempt < step.retry.max_attempts
                and self._status in (RUNNING, "paused")
            ):
                delay = step.retry.delay(entry.attempt, random.random())
                entry.attempt += 1
                self._commit(recording.step_attempts(self._id, full, entry.attempts))
                ref = self.actor_ref
                self.loop.call_later(delay, lambda: _tell_quietly(ref, RetryStep(full)))
                return
        del self._active[full]
        if full in self._loops:
            self._dirty_loops[full] = None
        self._record(
            entry.block,
            step.id,
            result,
            entry.started_at,
            now,
            entry.attempts if step.retry is not None else None,
        )

    def _record(
        self,
        block: Block,
        step_id: str,
        result: StepResult,
        started: str | None,
        ended: str,
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        full = block.prefix + step_id
        outputs = dict(result.variables)
        if result.status in (COMPLETED, FAILED):  # every step that ran has an output
            outputs.setdefault("output", result.output)
        for name, value in outputs.items():
            block.scope[f"{step_id}_{name}"] = value
        block.schedule.mark(step_id, result.status)
        self._dirty_blocks[block] = None
        self._results[full] = {
            "status": result.status,
            "output": result.output,
            "error": result.error,
            "exit_code": result.exit_code,
        }
        if (block is self._top and outputs) or self._variables_changed:
            self._variables_unsaved = True  # stored with this turn's commit
        self._variables_changed = False
        duration = clock.duration_ms(started, ended) if started else None
        self._commit(
            recording.step_finished(self._id, full, result, started, ended, duration, attempts)
        )

    def _variables_for(self, block: Block) -> Mapping[str, Any]:
        """What `${name}` and expressions see: each enclosing block's scope, innermost
        first, then the execution's variables. A live view, not a copy: read it now."""
        scopes = []
        while block.parent is not None:
            scopes.append(block.scope)
            block = block.parent
        return ChainMap(*scopes, self._variables) if scopes else self._variables

    def _steps_for(self, block: Block) -> Mapping[str, Any]:
        """`steps.<id>` in expressions: the steps of this block and the blocks around it,
        each looked up when the expression reads it."""
        return StepsView(block, self._results)

    def _finish(self) -> None:
        now = clock.now()
        status = CANCELLED if self._status == CANCELLED else self._top.schedule.outcome()
        error = None
        if status == FAILED:
            failed = self._top.schedule.ids_in(FAILED)
            error = f"step {failed[0]!r} failed" if failed else "failed"
        end = (self._cancelled_at or now) if status == CANCELLED else now
        self._status = status
        duration = clock.duration_ms(self._started_at, end)
        had_secrets = bool(self._mask.scope.names)
        self._commit(recording.finished(self._id, status, end, duration, error, had_secrets))
        # a parent sees the variables as they are stored: its child's secrets masked
        shown = self._mask.scope.view(self._variables, self._mask.masker)
        self._end(ExecutionEnded(self._id, status, shown, error))

    def _end(self, notice: object) -> None:
        """Tell the supervisor once everything this actor committed is stored, so that a
        request it answers from the store after retiring us sees the final state."""
        self._ended = True
        supervisor = self._supervisor
        self._commit(Commit(on_stored=lambda _stored: _tell_quietly(supervisor, notice)))


# Parameters that are not substituted when a step starts: nested step lists (each nested
# step is substituted when it starts) and expressions (evaluated by the safe evaluator).
_NOT_SUBSTITUTED = ("then", "else", "steps", "if", "while")


class InvalidParameters(VariableError):
    pass


def _resolve(
    step: Step, variables: Mapping[str, Any], secrets: Mapping[str, str]
) -> dict[str, Any]:
    """A step's parameters with variables and `${secret.NAME}`s substituted, checked again
    against its schema now that `${...}` values have their real types."""
    capability = STEP_CAPABILITIES.get(step.type)
    schema = capability.parameters if capability else CONTROL_SCHEMAS[step.type]
    kept = {k: v for k, v in step.parameters.items() if k not in _NOT_SUBSTITUTED}
    parameters = substitute(kept, variables, secrets)
    problems = check_parameters(
        parameters,
        {k: v for k, v in schema.items() if k not in _NOT_SUBSTITUTED},
        resolved=True,
    )
    if problems:
        detail = "; ".join(f"{p.field} {p.message}" for p in problems)
        raise InvalidParameters(f"invalid parameters: {detail}")
    return {**parameters, **{k: v for k, v in step.parameters.items() if k in _NOT_SUBSTITUTED}}


def _with_secret_env(
    step: Step, parameters: dict[str, Any], secrets: Mapping[str, str]
) -> dict[str, Any]:
    """A command or script gets each secret it names as `SYNTHESIS_SECRET_<NAME>` in its
    environment too, so a script need not put it on a command line. Its recorded
    parameters stay as written."""
    named = references({k: v for k, v in step.parameters.items() if k not in _NOT_SUBSTITUTED})
    if not named:
        return parameters
    env = {f"{SECRET_ENV_PREFIX}{name}": secrets[name] for name in sorted(named)}
    return {**parameters, "env": {**env, **(parameters.get("env") or {})}}


class StepsView(dict):  # type: ignore[type-arg]
    """`steps` for one block: `steps.<id>` is the innermost enclosing block's step of that
    id. Nothing is built until read, so a condition costs what it reads, not the plan's
    size. A dict (empty underneath) so the evaluator's helpers treat it as one."""

    def __init__(self, block: Block, results: Mapping[str, dict[str, Any]]) -> None:
        super().__init__()
        self._block = block
        self._results = results

    def _find(self, step_id: Any) -> dict[str, Any] | None:
        block: Block | None = self._block
        while block is not None:
            if step_id in block.schedule.status:
                return {
                    "status": block.schedule.status[step_id],
                    "output": None,
                    "error": None,
                    "exit_code": None,
                    **self._results.get(block.prefix + step_id, {}),
                }
            block = block.parent
        return None

    def __getitem__(self, step_id: Any) -> dict[str, Any]:
        found = self._find(step_id)
        if found is None:
            raise KeyError(step_id)
        return found

    def __contains__(self, step_id: object) -> bool:
        return self._find(step_id) is not None

    def get(self, step_id: Any, default: Any = None) -> Any:
        found = self._find(step_id)
        return default if found is None else found

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        block: Block | None = self._block
        while block is not None:
            seen.update(dict.fromkeys(block.schedule.status))
            block = block.parent
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self)

    def values(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [self[k] for k in self]

    def items(self) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[override]
        return [(k, self[k]) for k in self]

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _mark_all(schedule: Schedule, current: str, new: str) -> list[str]:
    ids = schedule.ids_in(current)
    for step_id in ids:
        schedule.mark(step_id, new)
    return ids


def _tell_quietly(ref: pykka.ActorRef[Any], message: object) -> None:
    """Tell an actor that may have stopped already; a stopped step has nothing to cancel."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
