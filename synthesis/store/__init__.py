"""Persistence: SQLModel tables, the engine, typed queries."""

from synthesis.store.changes import (
    Change,
    ExecutionUpdate,
    NewExecution,
    StepsMarked,
    StepUpdate,
    steps_reset,
)
from synthesis.store.database import Batch, ExecutionFilter, Store

__all__ = [
    "Batch",
    "Change",
    "ExecutionFilter",
    "ExecutionUpdate",
    "NewExecution",
    "StepUpdate",
    "StepsMarked",
    "Store",
    "steps_reset",
]
