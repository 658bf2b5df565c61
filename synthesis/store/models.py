"""The tables. Timestamps are fixed-width ISO 8601 text (see engine/clock.py), so they sort
and compare the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, text
from sqlmodel import Field, SQLModel


class ExecutionRow(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (
        # Each list's filter, then its order (docs/architecture.md, "Lists")
        Index("ix_executions_created", "created_at", "id"),
        Index("ix_executions_status_created", "status", "created_at", "id"),
        Index("ix_executions_creator_created", "created_by", "created_at", "id"),
        Index(  # the cluster's queue: running, no owner (store/cluster.py)
            "ix_executions_unowned",
            "created_at",
            "id",
            postgresql_where=text("status = 'running' AND node_id IS NULL"),
            sqlite_where=text("status = 'running' AND node_id IS NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    name: str
    status: str = Field(max_length=16)
    plan_id: str | None = Field(default=None, max_length=36, index=True)
    plan: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    variables: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str | None = None
    created_at: str = Field(max_length=24)
    started_at: str | None = Field(default=None, max_length=24)
    paused_at: str | None = Field(default=None, max_length=24)
    completed_at: str | None = Field(default=None, max_length=24)
    error: str | None = Field(default=None, sa_column=Column(Text))
    parent_execution_id: str | None = Field(default=None, max_length=36, index=True)
    parent_step_id: str | None = None
    depth: int = 0
    node_id: str | None = Field(default=None, max_length=36, index=True)  # its owner now
    claims: int = 0  # how many times a node took it over (docs/cluster.md)


class ExecutionSecretRow(SQLModel, table=True):
    """The real values of an execution's secret variables, which `executions.variables`
    holds masked: read only to run the execution again, never served, deleted at its end."""

    __tablename__ = "execution_secrets"

    execution_id: str = Field(primary_key=True, max_length=36)
    names: list[str] = Field(sa_column=Column(JSON, nullable=False))
    variables: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ExecutionTagRow(SQLModel, table=True):
    """A tag of an execution, with the execution's `created_at`, so a list by tag walks
    one index in the list's order."""

    __tablename__ = "execution_tags"
    __table_args__ = (Index("ix_execution_tags_tag_created", "tag", "created_at", "execution_id"),)

    execution_id: str = Field(primary_key=True, max_length=36)
    tag: str = Field(primary_key=True)
    created_at: str | None = Field(default=None, max_length=24)  # None: not filled in yet


class StepRow(SQLModel, table=True):
    __tablename__ = "steps"

    execution_id: str = Field(primary_key=True, max_length=36)
    step_id: str = Field(primary_key=True, max_length=128)
    position: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(max_length=32)
    status: str = Field(max_length=16)
    parameters: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    exit_code: int | None = None
    started_at: str | None = Field(default=None, max_length=24)
    completed_at: str | None = Field(default=None, max_length=24)
    duration_ms: int | None = None
    attempts: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class PlanRow(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (
        Index("ix_plans_created", "created_at", "id"),
        Index("ix_plans_creator_created", "created_by", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    name: str
    description: str | None = Field(default=None, sa_column=Column(Text))
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str | None = None
    created_at: str = Field(max_length=24)
    updated_at: str | None = Field(default=None, max_length=24)


class PlanTagRow(SQLModel, table=True):
    """A tag of a plan, with the plan's `created_at` (see ExecutionTagRow)."""

    __tablename__ = "plan_tags"
    __table_args__ = (Index("ix_plan_tags_tag_created", "tag", "created_at", "plan_id"),)

    plan_id: str = Field(primary_key=True, max_length=36)
    tag: str = Field(primary_key=True)
    created_at: str | None = Field(default=None, max_length=24)


class InvocationRow(SQLModel, table=True):
    __tablename__ = "invocations"

    id: str = Field(primary_key=True, max_length=36)
    integration_id: str = Field(max_length=64)
    capability_id: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True)
    parameters: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    output: Any = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_by: str | None = None
    started_at: str = Field(max_length=24)
    completed_at: str | None = Field(default=None, max_length=24)
    duration_ms: int | None = None
    node_id: str | None = Field(default=None, max_length=36)  # the node running it


class StepProcessRow(SQLModel, table=True):
    """A running step's (or invocation's) process group, kept while it runs, so a server
    that died cannot leave it running unseen (integrations/processes.py)."""

    __tablename__ = "step_processes"

    id: str = Field(primary_key=True, max_length=36)
    execution_id: str | None = Field(default=None, max_length=36)  # None: an invocation
    step_id: str = Field(max_length=128)  # or the invocation's id
    host: str = Field(max_length=255, index=True)
    boot_id: str = Field(max_length=64)
    pgid: int = Field(sa_column=Column(BigInteger, nullable=False))
    start_time: str = Field(max_length=32)
    owner_pid: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner_start: str = Field(max_length=32)
    started_at: str = Field(max_length=24)
    node_id: str | None = Field(default=None, max_length=36)  # the node that started it


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_execution_seq", "execution_id", "seq"),
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_timestamp_seq", "timestamp", "seq"),  # lists with dates
        Index("ix_events_type_timestamp", "type", "timestamp", "seq"),  # and a type
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_id: str = Field(max_length=36, unique=True)
    type: str = Field(max_length=32)
    timestamp: str = Field(max_length=24)
    execution_id: str | None = Field(default=None, max_length=36)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class NodeRow(SQLModel, table=True):
    """One running server (a node of the cluster on PostgreSQL; the one node on SQLite).
    A node id is new at every start. `heartbeat_at` is written with the database's clock
    only; `fenced` is set in the statement that declares the node dead, after which none
    of its transactions commits (docs/cluster.md)."""

    __tablename__ = "nodes"

    id: str = Field(primary_key=True, max_length=36)
    host: str = Field(max_length=255)
    port: int = 0
    pid: int = Field(sa_column=Column(BigInteger, nullable=False))
    started_at: str = Field(max_length=24)
    heartbeat_at: str = Field(max_length=24)
    fenced: bool = Field(default=False, index=True)
    fenced_at: str | None = Field(default=None, max_length=24)


class ControlRequestRow(SQLModel, table=True):
    """start, pause, resume or cancel sent to the node that owns an execution by the node
    that was asked; the owner writes the answer (docs/cluster.md)."""

    __tablename__ = "control_requests"

    id: str = Field(primary_key=True, max_length=36)
    execution_id: str = Field(max_length=36)
    action: str = Field(max_length=16)
    node_id: str = Field(max_length=36, index=True)  # the owner asked
    from_node: str = Field(max_length=36)
    created_at: str = Field(max_length=24)
    answered: bool = False  # the owner has taken it
    answer: Any = Field(default=None, sa_column=Column(JSON))


executions = ExecutionRow.__table__
execution_tags = ExecutionTagRow.__table__
execution_secrets = ExecutionSecretRow.__table__
steps = StepRow.__table__
events = EventRow.__table__
plans = PlanRow.__table__
invocations = InvocationRow.__table__
step_processes = StepProcessRow.__table__
plan_tags = PlanTagRow.__table__
nodes = NodeRow.__table__
control_requests = ControlRequestRow.__table__

# Indexes earlier versions made that these tables no longer declare: dropped at start.
RETIRED_INDEXES = (
    "ix_executions_status",  # now ix_executions_status_created
    "ix_executions_created_by",  # now ix_executions_creator_created
    "ix_execution_tags_tag",
    "ix_plans_created_by",
    "ix_plan_tags_tag",
    "ix_events_type",  # now ix_events_type_seq
    "ix_events_timestamp",  # now ix_events_timestamp_seq
    "ix_subscription_deliveries_seq",  # now ix_subscription_deliveries_order
    "ix_subscription_deliveries_status",  # now ix_subscription_deliveries_status_order
)

# Tables defined in modules of their own join SQLModel.metadata here.
from synthesis.store import counts, idempotency, subscription_models  # noqa: E402, F401
