"""Plan validation: a raw JSON document in, a checked `Plan` out, or every problem at once.

Validation happens when a plan is accepted, so a plan that is accepted can run: step ids,
types, parameters, dependencies and cycles are all checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.errors import ApiError, FieldError, validation_error
from synthesis.engine.schema import Schema, check_parameters

STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PLAN_FIELDS = {"name", "description", "steps", "variables", "metadata"}
STEP_FIELDS = {"id", "type", "parameters", "depends_on", "timeout", "continue_on_failure"}


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    parameters: Mapping[str, Any]
    depends_on: tuple[str, ...]
    timeout: float | None = None
    continue_on_failure: bool = False


@dataclass(frozen=True)
class Plan:
    name: str
    description: str | None
    steps: tuple[Step, ...]
    variables: Mapping[str, Any]
    metadata: Mapping[str, Any]
    document: Mapping[str, Any]  # the plan as given, echoed back by the API

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def check_metadata(metadata: Any, field: str) -> list[FieldError]:
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        return [FieldError(field, "must be an object")]
    errors = []
    tags = metadata.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
    ):
        errors.append(FieldError(f"{field}.tags", "must be a list of non-empty strings"))
    created_by = metadata.get("created_by")
    if created_by is not None and not isinstance(created_by, str):
        errors.append(FieldError(f"{field}.created_by", "must be a string"))
    return errors


def _check_step(
    raw: Any, where: str, step_types: Mapping[str, Schema]
) -> tuple[list[FieldError], str | None]:
    if not isinstance(raw, dict):
        return [FieldError(where, "must be an object")], None
    errors = [
        FieldError(f"{where}.{k}", f"unknown field {k!r}") for k in raw if k not in STEP_FIELDS
    ]
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.match(step_id):
        errors.append(FieldError(f"{where}.id", "is required: 1-128 letters, digits, '_' or '-'"))
        step_id = None
    step_type = raw.get("type")
    if step_type not in step_types:
        known = ", ".join(sorted(step_types))
        errors.append(
            FieldError(f"{where}.type", f"unknown step type {step_type!r}; one of: {known}")
        )
    else:
        errors.extend(
            check_parameters(
                raw.get("parameters", {}), step_types[step_type], f"{where}.parameters"
            )
        )
    depends_on = raw.get("depends_on")
    if depends_on is not None and (
        not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on)
    ):
        errors.append(FieldError(f"{where}.depends_on", "must be a list of step ids"))
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        errors.append(FieldError(f"{where}.timeout", "must be a positive number of seconds"))
    if not isinstance(raw.get("continue_on_failure", False), bool):
        errors.append(FieldError(f"{where}.continue_on_failure", "must be a boolean"))
    return errors, step_id


def _resolve_dependencies(raw_steps: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """A step without `depends_on` depends on the step listed before it."""
    resolved: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for raw in raw_steps:
        given = raw.get("depends_on")
        if given is None:
            resolved[raw["id"]] = (previous,) if previous else ()
        else:
            resolved[raw["id"]] = tuple(dict.fromkeys(given))
        previous = raw["id"]
    return resolved


def find_cycle(dependencies: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """Return one cycle as a list of step ids, or None if the graph is a DAG."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in dependencies.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in dependencies:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def validate_plan(doc: Any, step_types: Mapping[str, Schema], field: str = "plan") -> Plan:
    """Check a plan document; raise one validation_error listing every problem."""
    if not isinstance(doc, dict):
        raise validation_error([FieldError(field, "must be an object")])
    errors = [
        FieldError(f"{field}.{k}", f"unknown field {k!r}") for k in doc if k not in PLAN_FIELDS
    ]
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError(f"{field}.name", "is required and must be a non-empty string"))
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        errors.append(FieldError(f"{field}.description", "must be a string"))
    variables = doc.get("variables", {})
    if not isinstance(variables, dict):
        errors.append(FieldError(f"{field}.variables", "must be an object"))
    errors.extend(check_metadata(doc.get("metadata"), f"{field}.metadata"))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.append(FieldError(f"{field}.steps", "At least one step is required"))
        raise validation_error(errors)

    ids: set[str] = set()
    for index, raw in enumerate(raw_steps):
        where = f"{field}.steps[{index}]"
        step_errors, step_id = _check_step(raw, where, step_types)
        errors.extend(step_errors)
        if step_id in ids:
            errors.append(FieldError(f"{where}.id", f"duplicate step id {step_id!r}"))
        elif step_id:
            ids.add(step_id)
    if errors:
        raise validation_error(errors)

    dependencies = _resolve_dependencies(raw_steps)
    for index, raw in enumerate(raw_steps):
        for dep in dependencies[raw["id"]]:
            if dep not in ids:
                errors.append(
                    FieldError(f"{field}.steps[{index}].depends_on", f"unknown step id {dep!r}")
                )
            elif dep == raw["id"]:
                errors.append(
                    FieldError(
                        f"{field}.steps[{index}].depends_on", "a step cannot depend on itself"
                    )
                )
    if not errors and (cycle := find_cycle(dependencies)):
        errors.append(FieldError(f"{field}.steps", "dependency cycle: " + " -> ".join(cycle)))
    if errors:
        raise validation_error(errors)

    steps = tuple(
        Step(
            id=raw["id"],
            type=raw["type"],
            parameters=raw.get("parameters", {}),
            depends_on=dependencies[raw["id"]],
            timeout=raw.get("timeout"),
            continue_on_failure=raw.get("continue_on_failure", False),
        )
        for raw in raw_steps
    )
    return Plan(
        name=name,
        description=description,
        steps=steps,
        variables=variables,
        metadata=doc.get("metadata") or {},
        document=doc,
    )


def require_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation_error([FieldError(field, "must be an object")])
    return value


__all__ = ["ApiError", "Plan", "Step", "check_metadata", "find_cycle", "validate_plan"]
