"""ExecutionMask: the one place an execution's secrets are taken out of what it records.

Every Commit an execution makes (its creation, each step's parameters, results and
attempts, its variables, notifications, errors, events) passes through `protect` before
it reaches the bus, so the store, the API, both sockets and the webhooks only ever see
`***`. The real values stay in the execution actor's memory; the real values of secret
variables are also kept in `execution_secrets` (never served) so that a run can go on
after a restart, and forgotten when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from synthesis.actors.messages import Commit
from synthesis.engine.secrets import MASK, Masker, SecretScope
from synthesis.store import (
    ExecutionUpdate,
    IdempotencyKeySaved,
    InvocationUpdate,
    NewExecution,
    NewInvocation,
    NewSteps,
    RowsDeleted,
    RowsInserted,
    StepsMarked,
    StepUpdate,
)

SECRETS_TABLE = "execution_secrets"


def mask_commit(commit: Commit, masker: Masker) -> Commit:
    """Every string of every row and event in `commit`, masked by value."""
    if not masker:
        return commit
    return _Masking(masker, None).commit(commit)


def forget_secrets(execution_id: str) -> RowsDeleted:
    """The change that drops an ended execution's kept secret variables."""
    return RowsDeleted(SECRETS_TABLE, {"execution_id": execution_id})


class ExecutionMask:
    """One execution's secrets. Runs on whichever thread records for the execution (the
    supervisor at creation, then the execution actor on the aio loop), one at a time."""

    def __init__(
        self,
        execution_id: str,
        base: Masker,
        scope: SecretScope,
        variables: Mapping[str, Any],
        kept_stored: bool = False,
    ) -> None:
        self._id = execution_id
        self._base = base
        self.scope = scope
        self.masker = scope.masker(variables, base)
        self._kept: tuple[list[str], dict[str, Any]] | None = None
        self.kept_stored = kept_stored
        self._forgotten = False

    def refresh(self, variables: Mapping[str, Any]) -> None:
        """The secret variables' values changed (a `variable` step, a step's outputs)."""
        self.masker = self.scope.masker(variables, self._base)

    def protect(self, commit: Commit) -> Commit:
        if not self.masker and not self.scope.names:
            return commit
        kept: list[list[Any]] = []  # what to store after each change, in its place
        for change in commit.changes:
            if _forgets(change, self._id):  # the run ended: nothing is kept from now on
                self._forgotten = True
            variables = _variables_of(change)
            if variables is not None:
                self.refresh(variables)
            kept.append(self._keep(variables) if variables is not None else [])
        masked = _Masking(self.masker, self.scope).commit(commit)
        changes = [
            c for change, extra in zip(masked.changes, kept, strict=True) for c in (change, *extra)
        ]
        return Commit(tuple(changes), masked.events, masked.on_stored)

    def _keep(self, variables: Mapping[str, Any]) -> list[Any]:
        """Store the real values of the secret variables when they changed, until the
        run ends (a commit holds its end and its last variables in either order)."""
        if not self.scope.names or self._forgotten:
            return []
        kept = (sorted(self.scope.names), self.scope.kept(variables, self._base))
        if kept == self._kept:
            return []
        self._kept = kept
        row = {"execution_id": self._id, "names": kept[0], "variables": kept[1]}
        changes: list[Any] = [forget_secrets(self._id)] if self.kept_stored else []
        self.kept_stored = True
        return [*changes, RowsInserted(SECRETS_TABLE, (row,))]


def _forgets(change: Any, execution_id: str) -> bool:
    return change == forget_secrets(execution_id)


def _variables_of(change: Any) -> Mapping[str, Any] | None:
    if isinstance(change, NewExecution):
        return change.row.get("variables")
    if isinstance(change, ExecutionUpdate):
        return change.fields.get("variables")
    return None


class _Masking:
    def __init__(self, masker: Masker, scope: SecretScope | None) -> None:
        self._masker = masker
        self._scope = scope

    def commit(self, commit: Commit) -> Commit:
        changes = tuple(self._change(c) for c in commit.changes)
        events = tuple(replace(e, data=self._masker.mask(dict(e.data))) for e in commit.events)
        return Commit(changes, events, commit.on_stored)

    def _fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        masked = {}
        for name, value in fields.items():
            if name == "variables" and self._scope is not None:
                masked[name] = self._scope.view(value, self._masker)
            elif name == "plan" and self._scope is not None:
                masked[name] = self._plan(value)
            else:
                masked[name] = self._masker.mask(value)
        return masked

    def _plan(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The execution's copy of its plan runs again after a restart: only its default
        variables are masked (by name; their real values are kept with the others)."""
        assert self._scope is not None
        defaults = document.get("variables")
        if not isinstance(defaults, dict):
            return dict(document)
        names = self._scope.names
        return {
            **document,
            "variables": {k: MASK if k in names else v for k, v in defaults.items()},
        }

    def _change(self, change: Any) -> Any:
        match change:
            case NewExecution(row=row, tags=tags, steps=steps):
                return NewExecution(self._fields(row), tags, tuple(map(self._fields, steps)))
            case NewSteps(rows=rows):
                return NewSteps(tuple(map(self._fields, rows)))
            case ExecutionUpdate(execution_id=eid, fields=fields):
                return ExecutionUpdate(eid, self._fields(fields))
            case StepUpdate(execution_id=eid, step_id=sid, fields=fields):
                return StepUpdate(eid, sid, self._fields(fields))
            case StepsMarked(fields=fields):
                return replace(change, fields=self._fields(fields))
            case NewInvocation(row=row):
                return NewInvocation(self._fields(row))
            case InvocationUpdate(invocation_id=iid, fields=fields):
                return InvocationUpdate(iid, self._fields(fields))
            case IdempotencyKeySaved(row=row, expired_before=expired):
                response = self._fields(row["response"])
                return IdempotencyKeySaved({**row, "response": response}, expired)
        return change
