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
    StepsMarked,
    StepUpdate,
    steps_reset,
)
from synthesis.store.database import Batch, ExecutionFilter, PlanFilter, Store

__all__ = [
    "Batch",
    "Change",
    "ExecutionFilter",
    "ExecutionUpdate",
    "InvocationUpdate",
    "NewExecution",
    "NewInvocation",
    "NewSteps",
    "PlanDeleted",
    "PlanFilter",
    "PlanSaved",
    "StepUpdate",
    "StepsMarked",
    "Store",
    "steps_reset",
]
