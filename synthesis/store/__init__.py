"""Persistence: SQLModel tables, the engine, typed queries."""

from synthesis.store.changes import (
    Change,
    ExecutionUpdate,
    InvocationUpdate,
    NewExecution,
    NewInvocation,
    NewSteps,
    PlanDeleted,
    PlanSaved,
    Pruned,
    RowsDeleted,
    RowsInserted,
    RowUpdated,
    StepsMarked,
    StepUpdate,
    steps_reset,
)
from synthesis.store.database import Batch, EventFilter, ExecutionFilter, PlanFilter, Store

__all__ = [
    "Batch",
    "Change",
    "EventFilter",
    "ExecutionFilter",
    "ExecutionUpdate",
    "InvocationUpdate",
    "NewExecution",
    "NewInvocation",
    "NewSteps",
    "PlanDeleted",
    "PlanFilter",
    "PlanSaved",
    "Pruned",
    "RowUpdated",
    "RowsDeleted",
    "RowsInserted",
    "StepUpdate",
    "StepsMarked",
    "Store",
    "steps_reset",
]
