"""Messages between actors: immutable values, never live ORM objects (rule 5 of
docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthesis.actors.bridge import Reply, no_reply
from synthesis.engine.events import Event
from synthesis.engine.plan import Plan
from synthesis.integrations.base import Capability, StepResult
from synthesis.store import Batch, Change

# ---- to the event bus -----------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """Store these changes and events in order, then tell listeners; `on_stored` gets
    the numbered events, or the exception if the store refused them."""

    changes: tuple[Change, ...] = ()
    events: tuple[Event, ...] = ()
    on_stored: Callable[[Any], None] = no_reply

    @property
    def batch(self) -> Batch:
        return Batch(self.changes, self.events)


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class Listen:
    """Call `listener(events)` on the bus thread after each stored batch; it must not block."""

    listener: Callable[[list[Event]], None]


@dataclass(frozen=True)
class Ping:
    reply: Reply


# ---- to the execution supervisor ----------------------------------------------------


@dataclass(frozen=True)
class CreateExecution:
    """Create (and with `start`, start) an execution; the reply is `{status, created_at,
    started_at?}` once stored. `also_store(reply value)` is a change stored in the same
    commit (an idempotency key's answer)."""

    execution_id: str
    plan: Plan
    variables: Mapping[str, Any] = field(repr=False)
    metadata: Mapping[str, Any]
    start: bool
    reply: Reply
    plan_id: str | None = None
    secret_variables: tuple[str, ...] = ()  # besides the plan's own
    also_store: Callable[[Mapping[str, Any]], Change] | None = None


@dataclass(frozen=True)
class Control:
    """start, pause, resume or cancel; the reply is the stored new state or an ApiError."""

    execution_id: str
    action: str
    reply: Reply
    forwarded: bool = False  # sent by the node that was asked to the one that owns it


@dataclass(frozen=True)
class Invoke:
    """Run one capability outside any execution; the reply comes once it is stored as
    running (`wait=False`) or once it has ended (`wait=True`)."""

    invocation_id: str
    integration_id: str
    capability: Capability
    parameters: Mapping[str, Any] = field(repr=False)
    created_by: str | None
    wait: bool
    reply: Reply


@dataclass(frozen=True)
class ExecutionEnded:
    execution_id: str
    status: str | None = None  # None: drained by a shutdown, not ended
    variables: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExecutionStored:
    """The bus stored the commit that starts `execution_id` (`error` None), or refused it:
    its actor is launched only now, so nothing runs that is not stored (rule 8)."""

    execution_id: str
    error: BaseException | None = None


@dataclass(frozen=True)
class StartChild:
    """Run stored plan `plan_id` as a child execution of `parent_id`'s step `step_id`."""

    parent_id: str
    step_id: str
    plan_id: str
    variables: Mapping[str, Any] = field(repr=False)
    depth: int
    secret_variables: tuple[str, ...] = ()  # variables holding the parent's secrets


@dataclass(frozen=True)
class ExecutionCrashed:
    execution_id: str
    reason: str


@dataclass(frozen=True)
class Shutdown:
    """Start no new step; let running ones finish for `grace` seconds, then stop them and
    leave them pending in the store, to run again when the server comes back."""

    grace: float
    reply: Reply = no_reply


# ---- between an execution and its steps ---------------------------------------------


@dataclass(frozen=True)
class StepFinished:
    step_id: str
    result: StepResult
    started_at: str
    completed_at: str
    interrupted: bool = False  # stopped by a server shutdown: to run again


@dataclass(frozen=True)
class CancelStep:
    interrupted: bool = False


@dataclass(frozen=True)
class Released:
    """A commit an execution sent ahead of the others is stored; the others may follow."""


@dataclass(frozen=True)
class Continue:
    """An execution's next turn, told by itself (`stored=False`) or, once the changes of
    one of its turns are stored, by the bus (`stored=True`)."""

    stored: bool = False


@dataclass(frozen=True)
class ChildStarted:
    step_id: str
    child_id: str


@dataclass(frozen=True)
class ChildFinished:
    step_id: str
    child_id: str | None
    status: str
    variables: Mapping[str, Any]
    error: str | None = None


# ---- the cluster (docs/cluster.md), told to the supervisor by the tail and the ticker ---


@dataclass(frozen=True)
class LookForWork:
    """Executions may wait for an owner: claim what this node has room for."""


@dataclass(frozen=True)
class LookForRequests:
    """Other nodes may have sent control requests for executions this node owns."""


@dataclass(frozen=True)
class LookForAnswers:
    """Owners may have answered control requests this node forwarded."""


@dataclass(frozen=True)
class Tick:
    """Twice a second: the polls behind the wake-ups, and forwarded requests' deadlines."""


@dataclass(frozen=True)
class ExecutionsCompleted:
    """Executions ended (their `execution_completed` events were stored), perhaps on
    another node: their parents, if they run here, hear of it."""

    execution_ids: tuple[str, ...]
