"""The plan interpreter: one run of one plan as a state machine, pure (no threads, no I/O).

Inputs come in through `feed` (a step ended, a timer fired, a control request, a child
started or ended, a shutdown) and `advance` (start what may start); the starting state is
an `ExecutionSeed`, fresh or recovered from the stored rows. Effects go out, in order,
through the `emit` callable it is given: start or stop a step, set or cancel a timer,
start or control a child, answer a request, and the records to commit (`Record`s). Time
comes from an injected clock, jitter from an injected random source. The ExecutionActor
(actors/execution.py) carries the effects out; the unit tests
(tests/engine/test_interpreter*.py) collect them.

A *block* is a list of steps being run: the plan's top level, the branch a condition
step took, or one iteration of a loop. Nested steps get ids that say where they came
from (`check.then.notify`, `each[2].build`) and rows of their own in the store. Every
step type ends through `_end_step`, so timeouts, retries, variables and records work the
same for all of them. The rules of the language are docs/plans.md's.

One `advance` starts at most `batch` steps (instant ones, `variable` and `notify`, end at
once and make the next ready) in at most `turn_seconds`; with more to do, `behind` stays
true and the actor takes another turn later (docs/architecture.md).
"""

from __future__ import annotations

import logging
import random
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthesis.engine import clock as clocks
from synthesis.engine.errors import ApiError
from synthesis.engine.expressions import ExpressionError, truthy
from synthesis.engine.plan import CONTROL_SCHEMAS, Plan, Step, loop_bound
from synthesis.engine.scheduler import Schedule
from synthesis.engine.schema import check_parameters, with_defaults
from synthesis.engine.secrets import SECRET_ENV_PREFIX, SecretScope, references
from synthesis.engine.substitution import UnknownVariable, is_whole_reference, lookup, substitute
from synthesis.engine.transitions import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    SKIPPED,
    TERMINAL,
    check_step_move,
    transition,
)
from synthesis.engine.variables import VariableError, apply_operation
from synthesis.integrations import STEP_CAPABILITIES, STEP_INTEGRATIONS, disabled_message
from synthesis.integrations.base import StepResult

log = logging.getLogger(__name__)

BATCH = 64  # steps started (or loop iterations opened) per advance, then a turn for others
TURN_SECONDS = 0.02  # and at most this long: slow conditions must not hold the loop either


class Clock(Protocol):
    def now(self) -> str: ...  # a stored timestamp (engine/clock.py)
    def monotonic(self) -> float: ...  # seconds, for the turn's budget


@dataclass(frozen=True)
class ExecutionSeed:
    """Everything an execution starts from: a fresh run or one read back from the store."""

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


# ---- inputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class StepDone:
    step_id: str
    result: StepResult


@dataclass(frozen=True)
class StepInterrupted:
    """Stopped by a server shutdown: pending again, to run after the restart."""

    step_id: str


@dataclass(frozen=True)
class ChildBegan:
    step_id: str
    child_id: str


@dataclass(frozen=True)
class ChildDone:
    step_id: str
    child_id: str | None
    status: str
    variables: Mapping[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Timeout:
    step_id: str
    attempt: int


@dataclass(frozen=True)
class Retry:
    step_id: str


@dataclass(frozen=True)
class Grace:
    """A shutdown's grace is over: interrupt what still runs."""


@dataclass(frozen=True)
class TimerFired:
    timer: Timeout | Retry | Grace


@dataclass(frozen=True)
class ControlRequest:
    action: str  # pause, resume or cancel
    reply: Any  # opaque: handed back in the effects that answer it


@dataclass(frozen=True)
class ShutdownRequested:
    grace: float


Input = (
    StepDone
    | StepInterrupted
    | ChildBegan
    | ChildDone
    | TimerFired
    | ControlRequest
    | ShutdownRequested
)

# ---- effects ------------------------------------------------------------------------


@dataclass(frozen=True)
class StartStep:
    """Run a capability step (command, http, ...) with these parameters."""

    step_id: str
    step_type: str
    parameters: dict[str, Any]
    variables: dict[str, Any]  # a snapshot: the step reads it later, the run goes on


@dataclass(frozen=True)
class StopStep:
    step_id: str
    interrupted: bool = False  # by a shutdown: the step goes back to pending


@dataclass(frozen=True)
class StartChild:
    step_id: str
    plan_id: str
    variables: Mapping[str, Any]
    depth: int


@dataclass(frozen=True)
class ControlChild:
    child_id: str
    action: str


@dataclass(frozen=True)
class SetTimer:
    timer: Timeout | Retry | Grace
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    timer: Timeout


@dataclass(frozen=True)
class Answer:
    """Answer a control request now (a refusal)."""

    reply: Any
    value: Any


# records: what to commit, in order (actors/recording.py turns each into a Commit)


@dataclass(frozen=True)
class StepStarted:
    step_id: str
    step_type: str
    at: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class StepFinished:
    step_id: str
    result: StepResult
    started_at: str | None
    completed_at: str
    duration_ms: int | None
    attempts: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class AttemptFailed:
    """A failed attempt, recorded while the step waits to try again."""

    step_id: str
    attempts: list[dict[str, Any]]


@dataclass(frozen=True)
class StepsAdded:
    steps: tuple[Step, ...]
    prefix: str
    position: int


@dataclass(frozen=True)
class Notified:
    step_id: str
    message: str
    data: Any


@dataclass(frozen=True)
class StepReset:
    step_id: str


@dataclass(frozen=True)
class StatusChanged:
    """A control request took effect; answered once stored. A cancel is sent ahead of
    the run's other changes, so its answer does not wait behind them."""

    action: str
    status: str
    at: str
    reply: Any


@dataclass(frozen=True)
class StepsCancelled:
    step_ids: list[str]


@dataclass(frozen=True)
class Finished:
    status: str
    at: str
    duration_ms: int | None
    error: str | None
    had_secrets: bool


@dataclass(frozen=True)
class Ended:
    """Nothing more to do (`status` None: drained by a shutdown, not ended): tell the
    supervisor once everything before is stored."""

    status: str | None = None
    error: str | None = None


Record = (
    StepStarted
    | StepFinished
    | AttemptFailed
    | StepsAdded
    | Notified
    | StepReset
    | StatusChanged
    | StepsCancelled
    | Finished
)
Effect = (
    StartStep
    | StopStep
    | StartChild
    | ControlChild
    | SetTimer
    | CancelTimer
    | Answer
    | Ended
    | Record
)

# ---- state --------------------------------------------------------------------------


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
    running: bool = False  # a StartStep not yet answered by a StepDone
    child_id: str | None = None
    branch: str | None = None
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


class SystemClock:
    now = staticmethod(clocks.now)
    monotonic = staticmethod(time.monotonic)


class Interpreter:
    def __init__(
        self,
        seed: ExecutionSeed,
        emit: Callable[[Effect], None],
        *,
        secrets: Mapping[str, str] | None = None,
        disabled: frozenset[str] | set[str] = frozenset(),
        max_iterations: int = 10_000,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
        batch: int = BATCH,
        turn_seconds: float = TURN_SECONDS,
    ) -> None:
        self.id = seed.execution_id
        self.emit = emit
        self.variables: dict[str, Any] = dict(seed.variables)
        self.scope = SecretScope(set(seed.secret_names))
        self.status = seed.status
        self._plan = seed.plan
        self._depth = seed.depth
        self._started_at = seed.started_at
        self._secrets = secrets or {}
        self._disabled = disabled
        self._max_iterations = max_iterations
        self._clock: Clock = clock or SystemClock()
        self._jitter = jitter
        self._batch, self._turn_seconds = batch, turn_seconds
        self._top = Block(
            "", seed.plan.steps, Schedule(seed.plan.steps, seed.step_statuses), self.variables
        )
        self._blocks: dict[Block, None] = {self._top: None}  # an ordered set
        self.active: dict[str, Active] = {}
        self._loops: dict[str, LoopRun] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._position = len(seed.plan.steps) if seed.next_position is None else seed.next_position
        self._variables_changed = False  # by the step being recorded
        self.variables_unsaved = False  # since the last commit: the shell stores them
        self.draining = False
        self.ended = False
        self._cancelled_at: str | None = None
        # what changed since the last pass, so a pass touches only that
        self._dirty_blocks: dict[Block, None] = {self._top: None}
        self._dirty_loops: dict[str, None] = {}
        self._budget = self._batch  # steps this turn may still start
        self._turn_ends = 0.0  # and until when (clock.monotonic())

    @property
    def behind(self) -> bool:
        """Work left that the last `advance` had no budget for."""
        return bool(self._dirty_blocks or self._dirty_loops) and not self.ended

    # ---- inputs ---------------------------------------------------------------------

    def feed(self, event: Input) -> None:
        """One input; `advance` afterwards to start what it made ready."""
        match event:
            case StepDone(step_id=full, result=result):
                if (entry := self.active.get(full)) is not None:
                    entry.running = False
                self._end_step(full, result)
            case StepInterrupted(step_id=full):
                if self.status == CANCELLED:  # a cancel stopped it first: it ends cancelled
                    self._end_step(full, StepResult(CANCELLED, None, "cancelled"))
                else:
                    self._reset(full)
            case ChildBegan(step_id=full, child_id=child_id):
                if (entry := self.active.get(full)) is not None:
                    entry.child_id = child_id
            case ChildDone():
                self._child_finished(event)
            case TimerFired(timer=Timeout(step_id=full, attempt=attempt)):
                self._timed_out(full, attempt)
            case TimerFired(timer=Retry(step_id=full)):
                self._retry(full)
            case TimerFired(timer=Grace()):
                for full, entry in self.active.items():
                    if entry.running:
                        self.emit(StopStep(full, interrupted=True))
            case ControlRequest(action=action, reply=reply):
                self._control(action, reply)
            case ShutdownRequested(grace=grace):
                self.draining = True
                self.emit(SetTimer(Grace(), grace))

    def _control(self, action: str, reply: Any) -> None:
        try:
            if self.ended and self.status not in TERMINAL:
                raise ApiError("unavailable", "the server is shutting down")
            target = transition(self.status, action)
        except ApiError as exc:
            self.emit(Answer(reply, exc))
            return
        now = self._clock.now()
        self.status = target
        self.emit(StatusChanged(action, target, now, reply))
        if action == "cancel":  # its step events after the cancel is stored and answered
            self._cancelled_at = now
            pending = [
                block.prefix + step_id
                for block in self._blocks
                for step_id in _mark_all(block.schedule, PENDING, CANCELLED)
            ]
            self.emit(StepsCancelled(pending))
        for entry in list(self.active.values()):
            if entry.child_id is not None:
                self.emit(ControlChild(entry.child_id, action))
        self._dirty_blocks.update(dict.fromkeys(self._blocks))  # all may have work now
        self._dirty_loops.update(dict.fromkeys(self._loops))
        if action == "cancel":
            self.stop_everything()
        elif action == "resume":
            for full, entry in list(self.active.items()):
                if entry.retry_due:
                    entry.retry_due = False
                    self._begin_attempt(full, entry)

    def stop_everything(self) -> None:
        """Cancel: stop every running step; what has no step running to wait for ends now."""
        for full, entry in list(self.active.items()):
            if entry.running:
                self.emit(StopStep(full))
            elif entry.step.type not in ("condition", "loop"):
                self._end_step(full, StepResult(CANCELLED, None, "cancelled"))

    # ---- advancing ------------------------------------------------------------------

    def advance(self) -> None:
        """Start what may start and end what has ended in the blocks and loops that
        changed, until nothing changes or this turn's batch is used up."""
        if self.ended:
            return
        self._budget = self._batch
        self._turn_ends = self._clock.monotonic() + self._turn_seconds
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
        if self._top.schedule.finished and not self.active:
            self._finish()
        elif self.draining and not any(e.running for e in self.active.values()):
            self._end(Ended())

    def _spend(self) -> bool:
        """May this turn start one more step? At most `batch` of them, in `turn_seconds`."""
        if self._budget > 0 and self._clock.monotonic() > self._turn_ends:
            self._budget = 0
        if self._budget <= 0:
            return False
        self._budget -= 1
        return True

    def _advance_block(self, block: Block) -> None:
        if block not in self._blocks:
            return  # finished, or dropped with a control step that timed out
        schedule = block.schedule
        if self.status == RUNNING and not self.draining:
            while ready := schedule.ready(1):
                if not self._spend():
                    self._dirty_blocks[block] = None
                    return
                self._start(block, schedule.step(ready[0]))
        now = self._clock.now()
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
                now = self._clock.now()
                if go is None:
                    _move(block.schedule, step.id, RUNNING)
                    self.active[full] = Active(block, step, now, attempt_started_at=now)
                    self._started(full, step, {})
                    self._end_step(full, StepResult(FAILED, None, reason))
                else:
                    block.schedule.pass_over(step.id)
                    self._record(
                        block, step.id, StepResult(SKIPPED, None, "condition was false"), None, now
                    )
                return
        _move(block.schedule, step.id, RUNNING)
        entry = Active(block, step, self._clock.now())
        self.active[full] = entry
        self._begin_attempt(full, entry)

    def _begin_attempt(self, full: str, entry: Active) -> None:
        step, block = entry.step, entry.block
        entry.attempt_started_at = self._clock.now()
        entry.timed_out = False
        if step.timeout is not None:
            self.emit(SetTimer(Timeout(full, entry.attempt), step.timeout))
        variables = self._variables_for(block)
        try:
            parameters = _resolve(step, variables, self._secrets)
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
                    variables = parameters.get("variables") or {}
                    self.emit(StartChild(full, parameters["plan_id"], variables, self._depth + 1))
                case _:
                    self._run_capability(full, entry, parameters, variables)
        except (UnknownVariable, ExpressionError, VariableError) as exc:
            self._end_step(full, StepResult(FAILED, None, str(exc)))
        except Exception as exc:  # a bug fails its step; it never hangs the run
            log.exception("step %s of execution %s failed to start", full, self.id)
            self._end_step(full, StepResult(FAILED, None, f"internal error: {exc}"))

    def _started(self, full: str, step: Step, parameters: Mapping[str, Any]) -> None:
        entry = self.active[full]
        if entry.attempt == 1:
            self.emit(StepStarted(full, step.type, entry.started_at, parameters))

    def _run_capability(
        self, full: str, entry: Active, parameters: dict[str, Any], variables: Mapping[str, Any]
    ) -> None:
        integration = STEP_INTEGRATIONS.get(entry.step.type)
        if integration in self._disabled:
            message = disabled_message(entry.step.type, integration)
            self._end_step(full, StepResult(FAILED, None, message))
            return
        if "env" in STEP_CAPABILITIES[entry.step.type].parameters:
            parameters = _with_secret_env(entry.step, parameters, self._secrets)
        entry.running = True
        self.emit(StartStep(full, entry.step.type, parameters, dict(variables)))

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
        entry = self.active.get(full)
        if entry is None:  # cancelled or timed out
            del self._loops[full]
            return
        while (
            self.status == RUNNING
            and not self.draining
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
        if self.status == CANCELLED:
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
        self.scope.declare((), [params["name"]])
        value = apply_operation(
            self.variables, params["operation"], params["name"], params.get("value")
        )
        self._variables_changed = True
        self._end_step(full, StepResult(COMPLETED, value, variables={"output": value}))

    def _run_notify(self, full: str, params: dict[str, Any]) -> None:
        self.emit(Notified(full, params["message"], params.get("data")))
        self._end_step(
            full, StepResult(COMPLETED, params["message"], variables={"output": params["message"]})
        )

    def _child_finished(self, message: ChildDone) -> None:
        entry = self.active.get(message.step_id)
        if entry is None or (entry.child_id or message.child_id) != message.child_id:
            return  # a child of an earlier attempt, or of a run before a restart
        status = message.status
        error = message.error
        if status == CANCELLED and self.status != CANCELLED:
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
        self.emit(StepsAdded(steps, prefix, self._position))
        self._position += len(steps)
        block = Block(prefix, steps, Schedule(steps), scope, parent, owner, index)
        self._blocks[block] = None
        self._dirty_blocks[block] = None

    def _block_finished(self, block: Block) -> None:
        assert block.owner is not None
        entry = self.active.get(block.owner)
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
        entry = self.active.get(full)
        if entry is None or entry.attempt != attempt:
            return
        entry.timed_out = True
        if entry.running:
            self.emit(StopStep(full))
            return
        if entry.child_id is not None:
            self.emit(ControlChild(entry.child_id, "cancel"))
        self._discard_under(full)
        self._end_step(full, StepResult(FAILED, None, "timed out"))

    def _discard_under(self, full: str) -> None:
        """A control step that timed out: drop what it started, stopping what runs."""
        nested = (f"{full}.", f"{full}[")
        now = self._clock.now()
        for block in [b for b in self._blocks if b.prefix.startswith(nested)]:
            del self._blocks[block]
            self._dirty_blocks.pop(block, None)
            for step_id in _mark_all(block.schedule, PENDING, CANCELLED):
                self._record(block, step_id, StepResult(CANCELLED, None, "cancelled"), None, now)
        for key, entry in list(self.active.items()):
            if key.startswith(nested):
                if entry.running:
                    self.emit(StopStep(key))
                else:
                    self._end_step(key, StepResult(CANCELLED, None, "cancelled"))
        for key in [k for k in self._loops if k.startswith(nested)]:
            del self._loops[key]

    def _retry(self, full: str) -> None:
        entry = self.active.get(full)
        if entry is None:
            return
        if self.status == RUNNING and not self.draining:
            self._begin_attempt(full, entry)
        else:
            entry.retry_due = True

    def _reset(self, full: str) -> None:
        entry = self.active.pop(full, None)
        if entry is None:
            return
        _move(entry.block.schedule, entry.step.id, PENDING)
        self._dirty_blocks[entry.block] = None
        self.emit(StepReset(full))

    def _end_step(self, full: str, result: StepResult) -> None:
        """The one way any step ends: retry it, or record how it ended."""
        entry = self.active.get(full)
        if entry is None:
            return
        step = entry.step
        if step.timeout is not None:
            self.emit(CancelTimer(Timeout(full, entry.attempt)))
        if entry.timed_out and result.status != COMPLETED:
            result = StepResult(
                FAILED,
                result.output,
                f"timed out after {step.timeout:g} seconds",
                result.exit_code,
                result.variables,
            )
        now = self._clock.now()
        entry.running = False
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
                and self.status in (RUNNING, PAUSED)
            ):
                delay = step.retry.delay(entry.attempt, self._jitter())
                entry.attempt += 1
                self.emit(AttemptFailed(full, list(entry.attempts)))
                self.emit(SetTimer(Retry(full), delay))
                return
        del self.active[full]
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
        _move(block.schedule, step_id, result.status)
        self._dirty_blocks[block] = None
        self._results[full] = {
            "status": result.status,
            "output": result.output,
            "error": result.error,
            "exit_code": result.exit_code,
        }
        if (block is self._top and outputs) or self._variables_changed:
            self.variables_unsaved = True  # stored with this turn's commit
        self._variables_changed = False
        duration = clocks.duration_ms(started, ended) if started else None
        self.emit(StepFinished(full, result, started, ended, duration, attempts))

    def _variables_for(self, block: Block) -> Mapping[str, Any]:
        """What `${name}` and expressions see: each enclosing block's scope, innermost
        first, then the execution's variables. A live view, not a copy: read it now."""
        scopes = []
        while block.parent is not None:
            scopes.append(block.scope)
            block = block.parent
        return ChainMap(*scopes, self.variables) if scopes else self.variables

    def _steps_for(self, block: Block) -> Mapping[str, Any]:
        """`steps.<id>` in expressions: the steps of this block and the blocks around it,
        each looked up when the expression reads it."""
        return StepsView(block, self._results)

    def _finish(self) -> None:
        now = self._clock.now()
        status = CANCELLED if self.status == CANCELLED else self._top.schedule.outcome()
        error = None
        if status == FAILED:
            failed = self._top.schedule.ids_in(FAILED)
            error = f"step {failed[0]!r} failed" if failed else "failed"
        end = (self._cancelled_at or now) if status == CANCELLED else now
        self.status = status
        duration = clocks.duration_ms(self._started_at, end)
        self.emit(Finished(status, end, duration, error, bool(self.scope.names)))
        self._end(Ended(status, error))

    def _end(self, ended: Ended) -> None:
        self.ended = True
        self.emit(ended)


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


def _move(schedule: Schedule, step_id: str, status: str) -> None:
    """Every change of a step's status the interpreter makes passes the table of allowed
    moves (engine/transitions.py STEP_MOVES)."""
    check_step_move(step_id, schedule.status[step_id], status)
    schedule.mark(step_id, status)


def _mark_all(schedule: Schedule, current: str, new: str) -> list[str]:
    ids = schedule.ids_in(current)
    for step_id in ids:
        schedule.mark(step_id, new)
    return ids
