"""ExecutionSupervisor: spawns, caps and supervises this node's execution actors.

The queue is the cluster's, not a process's (docs/cluster.md): an execution that is
running and owned by no node waits in the store until a node with room claims it,
oldest first. So a run a dead node (or a previous process) left is claimed like a new
one. Control requests for executions no actor runs (created, waiting, paused across a
restart) are answered here from the store once this node owns them; those another node
runs are sent to it as a request row and answered with its answer, or `unavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pykka

from synthesis.actors import recording
from synthesis.actors.bridge import Reply, no_reply
from synthesis.actors.execution import ExecutionActor
from synthesis.actors.masking import ExecutionMask, mask_commit
from synthesis.actors.messages import (
    CancelStep,
    ChildFinished,
    ChildStarted,
    Commit,
    Control,
    CreateExecution,
    ExecutionCrashed,
    ExecutionEnded,
    ExecutionsCompleted,
    ExecutionStored,
    Invoke,
    LookForAnswers,
    LookForRequests,
    LookForWork,
    Ping,
    Shutdown,
    StartChild,
    StepFinished,
    Tick,
)
from synthesis.actors.services import Services
from synthesis.actors.step import StepActor
from synthesis.engine import clock
from synthesis.engine.errors import ApiError, not_found
from synthesis.engine.interpreter import ExecutionSeed
from synthesis.engine.plan import MAX_CHILD_DEPTH, NO_LIMITS, Plan, validate_plan
from synthesis.engine.secrets import SecretScope
from synthesis.engine.transitions import (
    CANCELLED,
    CREATED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINAL,
    transition,
)
from synthesis.integrations import STEP_SCHEMAS, processes
from synthesis.integrations.base import StepResult
from synthesis.store import Change, ExecutionUpdate, cluster

FORWARD_SECONDS = 5.0  # an owner that does not answer a control request in this: 503
CLAIM_EVERY = 1.0  # seconds between claims when nothing woke this node

log = logging.getLogger(__name__)


def _also(
    commit: Commit, also_store: Callable[[Mapping[str, Any]], Change] | None, value: Any
) -> Commit:
    """`commit` with what the request stores beside it (an idempotency key's answer)."""
    if also_store is None:
        return commit
    return Commit((*commit.changes, also_store(value)), commit.events, commit.on_stored)


@dataclass
class _Storing:
    """An execution whose starting commit is on its way to the store."""

    seed: ExecutionSeed
    owned: bool  # this node runs it; else it waits for a node with room
    controls: list[Control] = field(default_factory=list)  # to handle once it is stored


@dataclass(frozen=True)
class _Release:
    """Give back an execution this node took but does not run."""

    execution_id: str


@dataclass(frozen=True)
class _Answer:
    """Write the answer to a control request another node forwarded here."""

    request_id: str
    from_node: str
    answer: dict[str, Any]


@dataclass
class _Forwarded:
    """A control request sent to the node that owns the execution."""

    reply: Reply
    deadline: float
    taken: bool = False  # the owner took it before the deadline: one more wait


@dataclass
class _Invocation:
    row: dict[str, Any]
    actor: pykka.ActorRef[Any]
    reply: Reply | None  # set when the caller waits for the end


class ExecutionSupervisor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services
        self._cap = services.settings.max_concurrent_executions
        self._live: dict[str, pykka.ActorRef[Any]] = {}
        self._node = services.node_id or ""
        self._forwarded: dict[str, _Forwarded] = {}  # by request id
        self._next_claim = 0.0
        self._work_waiting = True  # as far as the last claim knows
        self._accepting = True
        self._shutdown_reply: Reply | None = None
        self._parents: dict[str, tuple[str, str]] = {}  # child: (parent, its plan step)
        self._invocations: dict[str, _Invocation] = {}
        self._storing: dict[str, _Storing] = {}

    # ---- supervisor thread ----------------------------------------------------------

    def on_start(self) -> None:
        """Stop what dead servers left running here, then claim what waits for a node."""
        try:
            self._stop_orphans()
            self._claim()
        except Exception:  # the ticks claim again
            log.exception("the first claim failed; trying again shortly")

    def on_receive(self, message: object) -> None:
        """A bad message fails its own request; it never takes the supervisor down."""
        try:
            self._handle(message)
        except Exception as exc:
            log.exception("the supervisor could not handle a %s", type(message).__name__)
            reply = getattr(message, "reply", None)
            if callable(reply):
                reply(ApiError("internal_error", "internal server error"))
            if isinstance(message, StartChild) and (parent := self._live.get(message.parent_id)):
                parent.tell(
                    ChildFinished(message.step_id, None, FAILED, {}, f"internal error: {exc}")
                )

    def _handle(self, message: object) -> None:
        match message:
            case CreateExecution():
                self._create(message)
            case ExecutionStored(execution_id=eid, error=error):
                self._stored(eid, error)
            case Control(execution_id=eid, action=action, reply=reply, forwarded=forwarded):
                if eid in self._storing:  # answered once its start is stored
                    self._storing[eid].controls.append(message)
                    return
                try:
                    self._control(eid, action, reply, forwarded)
                except ApiError as exc:
                    reply(exc)
            case _Release(execution_id=eid):
                self._release(eid)
            case _Answer(request_id=rid, from_node=node, answer=answer):
                self._coordinate(cluster.answer_request, rid, node, answer)
            case ExecutionEnded(execution_id=eid, status=status, variables=variables, error=error):
                self._retire(eid)
                if status is not None:
                    self._tell_parent(eid, status, variables or {}, error)
            case StartChild():
                self._start_child(message)
            case Invoke():
                self._invoke(message)
            case StepFinished(step_id=iid, result=result):
                self._invocation_finished(iid, result)
            case ExecutionCrashed(execution_id=eid, reason=reason):
                self._crashed(eid, reason)
                self._tell_parent(eid, FAILED, {}, reason)
            case LookForWork():
                self._work_waiting = True
                self._claim()
            case LookForRequests():
                self._serve_requests()
            case LookForAnswers():
                self._take_answers()
            case Tick():
                self._tick()
            case ExecutionsCompleted(execution_ids=ids):
                self._children_ended(ids)
            case Shutdown(grace=grace, reply=reply):
                self._accepting = False
                self._shutdown_reply = reply
                for actor in self._live.values():
                    actor.tell(Shutdown(grace))
                for invocation in self._invocations.values():  # no run to resume them in
                    invocation.actor.tell(CancelStep())
                self._maybe_drained()
            case Ping(reply=reply):
                reply("pong")

    def _commit(self, commit: Commit) -> None:
        """What the supervisor records (errors, invocations) never shows a named secret."""
        self._services.bus.tell(mask_commit(commit, self._services.masker))

    def _commit_masked(self, commit: Commit) -> None:
        """A commit an ExecutionMask already protected: masking it again by value would
        change the plan it stores (a literal in a plan is kept as given)."""
        self._services.bus.tell(commit)

    def _create(self, message: CreateExecution) -> None:
        if not self._accepting and message.start:
            message.reply(ApiError("unavailable", "the server is shutting down"))
            return
        self._create_execution(
            message.execution_id,
            message.plan,
            message.variables,
            message.metadata,
            message.start,
            message.reply,
            message.plan_id,
            secret_variables=message.secret_variables,
            also_store=message.also_store,
        )

    def _create_execution(
        self,
        eid: str,
        plan: Plan,
        variables: Mapping[str, Any],
        metadata: Mapping[str, Any],
        start: bool,
        reply: Reply,
        plan_id: str | None,
        parent: tuple[str, str] | None = None,
        depth: int = 0,
        secret_variables: tuple[str, ...] = (),
        also_store: Callable[[Mapping[str, Any]], Change] | None = None,
    ) -> None:
        """Record the new execution; with `start`, it runs once that is stored (nothing
        runs that the store refused: a request with a used idempotency key, say)."""
        created_at = clock.now()
        merged = {**plan.variables, **variables}
        scope = SecretScope({*plan.secret_variables, *secret_variables})
        scope.declare((), merged)
        owner = self._node if start and self._has_room_now() else None
        commit = recording.created(
            eid, plan, variables, metadata, created_at, plan_id, parent, depth, owner
        )
        mask = ExecutionMask(eid, self._services.masker, scope, merged)
        if not start:
            value = {"status": CREATED, "created_at": created_at}
            commit = _also(commit, also_store, value)
            self._commit_masked(mask.protect(recording.with_reply(commit, reply, value)))
            return
        begin = recording.started(eid, plan.name, created_at, plan_id, owner)
        commit = Commit(commit.changes + begin.changes, commit.events + begin.events)
        seed = ExecutionSeed(
            eid,
            plan,
            merged,
            RUNNING,
            created_at,
            {},
            plan_id,
            depth,
            secret_names=frozenset(scope.names),
        )
        value = {"status": RUNNING, "created_at": created_at, "started_at": created_at}
        commit = _also(commit, also_store, value)
        self._launch_when_stored(mask.protect(commit), reply, value, seed, owner is not None)

    def _launch_when_stored(
        self, commit: Commit, reply: Reply, value: Any, seed: ExecutionSeed, owned: bool
    ) -> None:
        """Store `commit` (already masked), then launch `seed`'s actor (`owned`) or wake
        the nodes that may have room, and reply `value`; if the store refuses it, nothing
        runs and the caller gets the error (rule 8 of docs/architecture.md)."""
        self._storing[seed.execution_id] = _Storing(seed, owned)
        supervisor = self.actor_ref
        answer = recording.answer(reply, value)

        def on_stored(stored: Any) -> None:  # bus thread: launch first, then answer
            error = stored if isinstance(stored, BaseException) else None
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(ExecutionStored(seed.execution_id, error))
            answer(stored)

        self._commit_masked(Commit(commit.changes, commit.events, on_stored))

    def _stored(self, eid: str, error: BaseException | None) -> None:
        storing = self._storing.pop(eid, None)
        if storing is None:
            return
        if error is None and storing.owned:
            if self._accepting:  # else it stays running: `leave` hands it over
                self._launch(storing.seed)
        elif error is None:  # waits for a node with room, this one included
            self._work_waiting = True
            self._coordinate(cluster.wake_claimers)
            self._claim()
        else:
            log.error("execution %s was not stored, so it does not run: %s", eid, error)
            self._tell_parent(eid, FAILED, {}, "the child execution could not be stored")
        try:
            for control in storing.controls:  # each answered, or failed, on its own
                self.on_receive(control)
        finally:
            self._maybe_drained()

    def _start_child(self, message: StartChild) -> None:
        """A plan step runs a stored plan as a child execution of its own."""
        parent = self._live.get(message.parent_id)

        def refuse(reason: str) -> None:
            if parent is not None:
                parent.tell(ChildFinished(message.step_id, None, FAILED, {}, reason))

        if message.depth > MAX_CHILD_DEPTH:
            return refuse(f"child plans nest deeper than {MAX_CHILD_DEPTH} levels")
        if not self._accepting:
            return refuse("the server is shutting down")
        row = self._services.store.get_plan(message.plan_id)
        if row is None:
            return refuse(f"unknown plan {message.plan_id!r}")
        try:
            plan = validate_plan(
                row["document"], STEP_SCHEMAS, "", self._services.settings.plan_limits
            )
        except ApiError as exc:
            return refuse(f"plan {message.plan_id!r} is not valid: {exc.message}")
        child_id = str(uuid.uuid4())
        self._parents[child_id] = (message.parent_id, message.step_id)
        metadata = {**row["meta"], "parent_execution_id": message.parent_id}

        self._create_execution(
            child_id,
            plan,
            message.variables,
            metadata,
            True,
            no_reply,  # a child the store refuses is reported to its parent by `_stored`
            message.plan_id,
            (message.parent_id, message.step_id),
            message.depth,
            message.secret_variables,
        )
        if parent is not None:
            parent.tell(ChildStarted(message.step_id, child_id))
        return None

    def _invoke(self, message: Invoke) -> None:
        """A direct invocation runs as a StepActor too: one code path with plan steps."""
        if not self._accepting:
            raise ApiError("unavailable", "the server is shutting down")
        row = {
            "id": message.invocation_id,
            "integration_id": message.integration_id,
            "capability_id": message.capability.id,
            "status": RUNNING,
            "parameters": dict(message.parameters),
            "created_by": message.created_by,
            "started_at": clock.now(),
            "node_id": self._node or None,
        }
        commit = recording.invocation_started(row)
        if not message.wait:  # asynchronous: answer once it is stored as running
            view = self._services.masker.mask(recording.invocation_view(row))
            commit = recording.with_reply(commit, message.reply, view)
        self._commit(commit)
        actor = StepActor.start(
            self._services,
            self.actor_ref,
            None,
            message.invocation_id,
            message.capability,
            message.parameters,
            {},
            masker=self._services.masker,
        )
        self._invocations[message.invocation_id] = _Invocation(
            row, actor, message.reply if message.wait else None
        )

    def _invocation_finished(self, invocation_id: str, result: StepResult) -> None:
        run = self._invocations.pop(invocation_id, None)
        if run is None:
            return
        commit, row = recording.invocation_finished(run.row, result, clock.now())
        if run.reply is not None:
            masker = self._services.masker
            answer: object = masker.mask(recording.invocation_view(row))
            if result.far_side_failed:
                answer = ApiError(
                    "integration_error",
                    masker.text(f"{result.error} (invocation {invocation_id})"),
                )
            commit = recording.with_reply(commit, run.reply, answer)
        self._commit(commit)
        self._maybe_drained()

    def _tell_parent(
        self, eid: str, status: str, variables: Mapping[str, Any], error: str | None
    ) -> None:
        link = self._parents.pop(eid, None)
        if link is None:
            return
        parent = self._live.get(link[0])
        if parent is not None:
            parent.tell(ChildFinished(link[1], eid, status, variables, error))

    def _control(self, eid: str, action: str, reply: Reply, forwarded: bool = False) -> None:
        """Run by the actor that runs it here, answered from the store once this node
        owns it, or sent to the node that runs it (`forwarded`: it came from one)."""
        live = self._live.get(eid)
        if live is not None:
            live.tell(Control(eid, action, reply))
            return
        if action in ("start", "resume") and not self._accepting:
            raise ApiError("unavailable", "the server is shutting down")
        owner = self._coordinate(cluster.owner_of, eid)
        if owner is None:
            raise not_found("execution", eid)
        status, node = owner
        if node is None and status not in TERMINAL:
            taken = self._coordinate(cluster.take_execution, self._node, eid)
            if taken is None:  # claimed, taken or ended meanwhile
                status, node = self._coordinate(cluster.owner_of, eid) or (status, None)
            else:
                status, node = taken, self._node
        if node is not None and node != self._node:
            if forwarded:
                raise ApiError("unavailable", "the execution moved to another node; try again")
            self._forward(eid, action, node, reply)
            return
        try:
            target = transition(status, action)
        except ApiError:
            if node == self._node:
                self._release(eid)
            raise
        now = clock.now()
        answer = recording.control_answer(eid, action, target, now)
        if action == "cancel":
            self._cancel_idle(eid, now, reply, answer)
            return
        if action == "pause":
            paused = recording.with_reply(recording.paused(eid, now, release=True), reply, answer)
            self._commit(self._released_if_refused(paused, eid))
            return
        seed = self._seed_from_store(eid, target)
        owner_now = self._node if self._has_room_now() else None
        if action == "start":
            seed = replace(seed, started_at=now)
            commit = recording.started(eid, seed.plan.name, now, seed.plan_id, owner_now)
        else:
            commit = recording.resumed(eid, {"node_id": owner_now})
        masked = mask_commit(commit, self._services.masker)
        self._launch_when_stored(masked, reply, answer, seed, owner_now is not None)

    def _released_if_refused(self, commit: Commit, eid: str) -> Commit:
        """`commit` for an execution this node took: if the store refuses it, the
        execution is given back, not left owned by a node that does not run it."""
        supervisor = self.actor_ref

        def then(stored: bool) -> None:  # bus thread
            if not stored:
                with contextlib.suppress(pykka.ActorDeadError):
                    supervisor.tell(_Release(eid))

        return recording.after_stored(commit, then)

    def _release(self, eid: str) -> None:
        """Give back an execution this node took but does not run."""
        self._commit(Commit(changes=(ExecutionUpdate(eid, {"node_id": None}),)))

    # ---- across nodes (docs/cluster.md) ------------------------------------------------

    def _coordinate(self, statement: Callable[..., Any], *args: Any) -> Any:
        return self._services.store.coordinate(statement, *args)

    def _forward(self, eid: str, action: str, node: str, reply: Reply) -> None:
        request_id = str(uuid.uuid4())
        request = {
            "id": request_id,
            "execution_id": eid,
            "action": action,
            "node_id": node,
            "from_node": self._node,
        }
        self._coordinate(cluster.request_control, request)
        self._forwarded[request_id] = _Forwarded(reply, time.monotonic() + FORWARD_SECONDS)

    def _serve_requests(self) -> None:
        """Answer the control requests other nodes sent this one, each once."""
        requests = self._coordinate(cluster.pending_requests, self._node)
        if not requests:
            return
        self._coordinate(cluster.mark_taken, [r["id"] for r in requests])
        for request in requests:
            reply = self._answer_to(request["id"], request["from_node"])
            self.on_receive(Control(request["execution_id"], request["action"], reply, True))

    def _answer_to(self, request_id: str, from_node: str) -> Reply:
        """A reply (any thread) that has the supervisor write the answer where the asking
        node reads it (so no bus thread waits on it)."""
        supervisor = self.actor_ref

        def reply(value: Any) -> None:
            if isinstance(value, ApiError):
                answer: dict[str, Any] = value.to_json()  # {"error": {code, message}}
            elif isinstance(value, BaseException):
                answer = {"error": {"code": "internal_error", "message": "internal server error"}}
            else:
                answer = {"value": value}
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(_Answer(request_id, from_node, answer))

        return reply

    def _take_answers(self) -> None:
        if not self._forwarded:
            return
        answers = self._coordinate(cluster.take_answers, list(self._forwarded))
        for request_id, answer in answers.items():
            forwarded = self._forwarded.pop(request_id)
            if "error" in answer:
                error = answer["error"]
                forwarded.reply(ApiError(error["code"], error["message"]))
            else:
                forwarded.reply(answer["value"])

    def _tick(self) -> None:
        """The polls behind every wake-up, and the deadlines of forwarded requests."""
        now = time.monotonic()
        if now >= self._next_claim:
            self._claim()
        if self._services.store.dialect != "postgresql":
            return
        self._serve_requests()
        self._take_answers()
        late = [rid for rid, f in self._forwarded.items() if f.deadline <= now and not f.taken]
        if late:  # withdrawn, so a 503 means it was not done; taken ones get one more wait
            for request_id in self._coordinate(cluster.forget_requests, late, False):
                self._forwarded.pop(request_id).reply(
                    ApiError(
                        "unavailable",
                        "the node running this execution did not answer in time; nothing was done",
                    )
                )
            for request_id in set(late) & set(self._forwarded):
                self._forwarded[request_id].taken = True
                self._forwarded[request_id].deadline = now + FORWARD_SECONDS
        given_up = [rid for rid, f in self._forwarded.items() if f.deadline <= now and f.taken]
        if given_up:
            self._coordinate(cluster.forget_requests, given_up, True)
            for request_id in given_up:
                self._forwarded.pop(request_id).reply(
                    ApiError(
                        "unavailable",
                        "the node running this execution took the request but did not "
                        "answer in time; look at the execution before trying again",
                    )
                )

    def _children_ended(self, execution_ids: tuple[str, ...]) -> None:
        """Children that ran on another node: their parents here hear how they ended."""
        for eid in execution_ids:
            if eid not in self._parents or eid in self._live or eid in self._storing:
                continue
            row = self._services.store.get_execution(eid)
            if row is not None and row["status"] in TERMINAL:
                self._tell_parent(eid, row["status"], row["variables"], row["error"])

    def _cancel_idle(self, eid: str, now: str, reply: Reply, answer: dict[str, Any]) -> None:
        """Cancel an execution no actor is running: its steps that never ran with it."""
        store, bus = self._services.store, self._services.bus
        row = store.get_execution(eid) or {}
        then = recording.merged(
            [
                recording.steps_cancelled(eid, store.step_ids_in(eid, PENDING)),
                recording.finished(
                    eid, CANCELLED, now, clock.duration_ms(row.get("started_at"), now)
                ),
            ]
        )

        def events_then(stored: bool) -> None:  # bus thread: in a later transaction
            if stored:
                bus.tell(then)

        # this node keeps it until its end is stored (`finished` gives it back), so a
        # death in between is finished by the sweep (store/cluster.py)
        cancel = recording.with_reply(recording.cancelled(eid, now), reply, answer)
        cancel = self._released_if_refused(cancel, eid)
        self._commit(recording.after_stored(cancel, events_then))

    def _seed_from_store(self, eid: str, status: str) -> ExecutionSeed:
        row = self._services.store.get_execution(eid)
        if row is None:
            raise not_found("execution", eid)
        store = self._services.store
        statuses = {s["step_id"]: s["status"] for s in store.list_steps(eid)}
        if row["parent_execution_id"]:
            self._parents[eid] = (row["parent_execution_id"], row["parent_step_id"])
        plan = validate_plan(row["plan"], STEP_SCHEMAS, limits=NO_LIMITS)  # accepted before
        kept = store.get_execution_secrets(eid) or {"names": [], "variables": {}}
        variables = {**row["variables"], **kept["variables"]}
        scope = SecretScope({*plan.secret_variables, *kept["names"]})
        scope.declare((), variables)
        return ExecutionSeed(
            eid,
            plan,
            variables,
            status,
            row["started_at"] or clock.now(),
            {k: PENDING if v == RUNNING else v for k, v in statuses.items()},
            row["plan_id"],
            row["depth"],
            store.next_position(eid),
            frozenset(scope.names),
        )

    def _has_room_now(self) -> bool:
        """Room for new work here, and no older work waiting for room (oldest first)."""
        return self._room() > 0 and not self._work_waiting

    def _room(self) -> int:
        return self._cap - len(self._live) - len(self._storing) if self._accepting else 0

    def _launch(self, seed: ExecutionSeed) -> None:
        self._live[seed.execution_id] = ExecutionActor.start(self._services, self.actor_ref, seed)

    def _claim(self) -> None:
        """Claim the executions waiting for an owner that this node has room for: fresh
        ones, and those of dead nodes (their interrupted steps run again; after
        MAX_TAKEOVERS deaths an execution fails instead)."""
        self._next_claim = time.monotonic() + CLAIM_EVERY
        room = self._room()
        if room <= 0:
            return
        claimed, waiting = self._coordinate(cluster.claim_executions, self._node, room)
        self._work_waiting = waiting > len(claimed)
        if any(takeovers for _, takeovers in claimed):
            try:  # a step never runs here while its earlier attempt still runs
                self._stop_orphans()
            except Exception:
                log.exception("could not stop what dead nodes left running; not taking over")
                for eid, _ in claimed:
                    self._release(eid)
                return
        for eid, takeovers in claimed:
            try:
                self._take_over(eid, takeovers)
            except Exception:  # given back rather than owned by a node that does not run it
                log.exception("could not start claimed execution %s; giving it back", eid)
                self._release(eid)

    def _take_over(self, eid: str, takeovers: int) -> None:
        if takeovers >= cluster.MAX_TAKEOVERS:
            reason = f"taken over {takeovers} times after the nodes running it died; not run again"
            log.error("execution %s %s", eid, reason)
            self._fail(eid, reason)
            return
        try:
            seed = self._seed_from_store(eid, RUNNING)
        except ApiError as exc:
            self._fail(eid, exc.message)
            return
        self._launch(seed)

    def _retire(self, eid: str) -> None:
        actor = self._live.pop(eid, None)
        if actor is not None:  # not waiting for its loop: ten thousand ends in a row
            actor.stop(block=False)
        if self._work_waiting:
            self._claim()
        self._maybe_drained()

    def _maybe_drained(self) -> None:
        if (
            not self._accepting
            and not self._live
            and not self._invocations
            and not self._storing
            and self._shutdown_reply is not None
        ):
            self._shutdown_reply(None)
            self._shutdown_reply = None

    def _crashed(self, eid: str, reason: str) -> None:
        if self._live.pop(eid, None) is None:
            return  # it had ended (or crashed) already: one end only
        log.error("execution %s crashed: %s", eid, reason)
        self._fail(eid, reason)
        self._retire(eid)

    def _fail(self, eid: str, reason: str) -> None:
        """End an execution no actor runs as failed, each step it ends with its event;
        one whose cancel is stored ends cancelled, as it was answered; one that has ended
        is left alone."""
        status = self._services.store.execution_status(eid)
        if status in TERMINAL and status != CANCELLED:
            return
        self._commit(recording.failed_unrun(eid, reason, clock.now(), status == CANCELLED))

    def _stop_orphans(self) -> None:
        """Stop the step process groups a dead server or a fenced node on this host left
        running (waits up to the kill grace, and until they are gone), then forget them:
        a step never runs here while its earlier attempt still runs."""
        rows = self._services.store.process_groups(processes.host_name())
        fenced = {row["id"] for row in rows if row["fenced"]}
        groups = [processes.ProcessGroup.from_row(row) for row in rows]
        left = [
            *processes.orphans(g for g in groups if g.id not in fenced),
            *(g for g in groups if g.id in fenced),
        ]
        stopped = processes.stop_groups(left, self._services.settings.kill_grace_seconds)
        if stopped:
            log.warning("stopped %d step process groups a previous run left running", len(stopped))
        for group in left:
            self._commit(recording.process_ended(group.id))
