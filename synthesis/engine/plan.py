"""Plan validation: a raw JSON document in, a checked `Plan` out, or every problem at once.

Validation happens when a plan is accepted, so a plan that is accepted can run: step ids,
types, parameters, expressions, loop bounds, dependencies and cycles, at every depth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthesis.engine.errors import ApiError, FieldError, validation_error
from synthesis.engine.expressions import Expression, ExpressionError, parse
from synthesis.engine.schema import (
    MAX_BACKOFF_MULTIPLIER,
    MAX_SECONDS,
    Param,
    Schema,
    check_parameters,
    out_of_range,
)
from synthesis.engine.substitution import is_whole_reference

STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PLAN_FIELDS = {"name", "description", "steps", "variables", "secret_variables", "metadata"}
STEP_FIELDS = {
    "id",
    "type",
    "parameters",
    "depends_on",
    "timeout",
    "retry",
    "condition",
    "continue_on_failure",
}
RETRY_FIELDS = {"max_attempts", "backoff_seconds", "backoff_multiplier", "jitter"}
MAX_DEPTH = 8
MAX_ITERATIONS = 10_000  # default of the setting max_loop_iterations
MAX_PLAN_STEPS = 10_000  # default of the setting max_plan_steps
DEFAULT_LOOP_BOUND = 100  # a loop's max_iterations when it gives none
MAX_CHILD_DEPTH = 5  # plan steps running plans running plans ...
VARIABLE_OPERATIONS = ("set", "delete", "increment", "append", "merge")

CONTROL_SCHEMAS: dict[str, Schema] = {
    "condition": {
        "if": Param("string", "Expression choosing the branch", required=True),
        "then": Param("array", "Steps run when the expression is true"),
        "else": Param("array", "Steps run when the expression is false"),
    },
    "loop": {
        "for": Param("any", "A list, or the name of a variable holding one"),
        "count": Param("integer", "Run the body this many times", minimum=0),
        "while": Param("string", "Expression checked before each iteration"),
        "steps": Param("array", "The body", required=True),
        "max_iterations": Param(
            "integer",
            "Upper bound, always enforced; at most the server's max_loop_iterations",
            default=DEFAULT_LOOP_BOUND,
            minimum=1,
        ),
        "parallel": Param("boolean", "Run iterations concurrently", default=False),
        "max_concurrency": Param("integer", "Iterations at once when parallel", minimum=1),
    },
    "variable": {
        "operation": Param("string", "set, delete, increment, append or merge", required=True),
        "name": Param("string", "The variable", required=True),
        "value": Param("any", "The value (set, append, merge) or step (increment)"),
    },
    "notify": {
        "message": Param("string", "The notification's message", required=True),
        "data": Param("any", "Any JSON data to send with it"),
    },
    "plan": {
        "plan_id": Param("string", "The stored plan to run as a child execution", required=True),
        "variables": Param("object", "Variables for the child execution"),
    },
}


@dataclass(frozen=True)
class Limits:
    """What one plan may ask for: its steps, nested ones included (`max_plan_steps`), and
    a loop's `max_iterations` (`max_loop_iterations`). None: no cap (a run accepted
    earlier, read back from the store)."""

    max_steps: int | None = MAX_PLAN_STEPS
    max_loop_iterations: int | None = MAX_ITERATIONS


DEFAULT_LIMITS = Limits()
NO_LIMITS = Limits(None, None)


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 1
    backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.0  # a fraction: each delay moves by up to +/- this much

    def delay(self, failed_attempt: int, random: float) -> float:
        """Seconds before the next attempt, at most MAX_SECONDS; `random` is uniform in
        [0, 1)."""
        base = self.backoff_seconds * self.backoff_multiplier ** (failed_attempt - 1)
        return min(MAX_SECONDS, max(0.0, base * (1 + self.jitter * (2 * random - 1))))


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    parameters: Mapping[str, Any]
    depends_on: tuple[str, ...]
    timeout: float | None = None
    continue_on_failure: bool = False
    condition: Expression | None = None
    retry: Retry | None = None
    expression: Expression | None = None  # a condition step's `if`, a loop's `while`
    branches: Mapping[str, tuple[Step, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    name: str
    description: str | None
    steps: tuple[Step, ...]
    variables: Mapping[str, Any]
    metadata: Mapping[str, Any]
    document: Mapping[str, Any]  # the plan as given, echoed back by the API
    secret_variables: tuple[str, ...] = ()  # masked wherever they would show

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    """Every step at every depth."""
    for step in steps:
        yield step
        for branch in step.branches.values():
            yield from walk(branch)


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


def check_names(value: Any, field: str) -> list[FieldError]:
    """A list of variable names (`secret_variables`)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        return [FieldError(field, "must be a list of variable names")]
    return []


def require_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation_error([FieldError(field, "must be an object")])
    return value


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


class _Checker:
    """Walks a plan document once, collecting every problem with its field path."""

    def __init__(self, step_types: Mapping[str, Schema], limits: Limits) -> None:
        self.schemas = {**step_types, **CONTROL_SCHEMAS}
        self.limits = limits
        self.errors: list[FieldError] = []
        self.ids: set[str] = set()

    def error(self, where: str, message: str) -> None:
        self.errors.append(FieldError(where, message))

    def expression(self, source: Any, where: str) -> Expression | None:
        try:
            return parse(source)
        except ExpressionError as exc:
            self.error(where, f"invalid expression: {exc}")
            return None

    def steps(self, raw_steps: Any, where: str, depth: int) -> tuple[Step, ...]:
        if depth > MAX_DEPTH:
            self.error(where, f"steps nest deeper than {MAX_DEPTH} levels")
            return ()
        if not isinstance(raw_steps, list) or (depth == 0 and not raw_steps):
            self.error(where, "At least one step is required" if depth == 0 else "must be a list")
            return ()
        before = len(self.errors)
        parsed = [self.step(raw, f"{where}[{i}]", depth) for i, raw in enumerate(raw_steps)]
        if len(self.errors) > before or any(p is None for p in parsed):
            return ()
        steps = [p for p in parsed if p is not None]
        dependencies = _resolve_dependencies(raw_steps)
        local = {s.id for s in steps}
        for index, step in enumerate(steps):
            for dep in dependencies[step.id]:
                if dep == step.id:
                    self.error(f"{where}[{index}].depends_on", "a step cannot depend on itself")
                elif dep not in local:
                    self.error(f"{where}[{index}].depends_on", f"unknown step id {dep!r}")
        if len(self.errors) == before and (cycle := find_cycle(dependencies)):
            self.error(where, "dependency cycle: " + " -> ".join(cycle))
        return tuple(Step(**{**s.__dict__, "depends_on": dependencies[s.id]}) for s in steps)

    def step(self, raw: Any, where: str, depth: int) -> Step | None:
        if not isinstance(raw, dict):
            self.error(where, "must be an object")
            return None
        before = len(self.errors)
        for key in raw:
            if key not in STEP_FIELDS:
                self.error(f"{where}.{key}", f"unknown field {key!r}")
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
            self.error(f"{where}.id", "is required: 1-128 letters, digits, '_' or '-'")
        elif step_id in self.ids:
            self.error(f"{where}.id", f"duplicate step id {step_id!r}")
        else:
            self.ids.add(step_id)
        step_type = raw.get("type")
        params = raw.get("parameters", {})
        if not isinstance(step_type, str) or step_type not in self.schemas:
            known = ", ".join(sorted(self.schemas))
            self.error(f"{where}.type", f"unknown step type {step_type!r}; one of: {known}")
        else:
            self.errors.extend(
                check_parameters(params, self.schemas[step_type], f"{where}.parameters")
            )
        depends_on = raw.get("depends_on")
        if depends_on is not None and (
            not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on)
        ):
            self.error(f"{where}.depends_on", "must be a list of step ids")
        timeout = raw.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or timeout <= 0
            or out_of_range(timeout, maximum=MAX_SECONDS)
        ):
            self.error(
                f"{where}.timeout", f"must be a positive number of seconds, at most {MAX_SECONDS}"
            )
        if not isinstance(raw.get("continue_on_failure", False), bool):
            self.error(f"{where}.continue_on_failure", "must be a boolean")
        condition = None
        if "condition" in raw:
            condition = self.expression(raw["condition"], f"{where}.condition")
        retry = self.retry(raw.get("retry"), f"{where}.retry")
        if len(self.errors) > before:
            return None
        expression, branches = self.control(step_type, params, f"{where}.parameters", depth)
        return Step(
            id=step_id,
            type=step_type,
            parameters=params,
            depends_on=(),
            timeout=timeout,
            continue_on_failure=raw.get("continue_on_failure", False),
            condition=condition,
            retry=retry,
            expression=expression,
            branches=branches,
        )

    def retry(self, raw: Any, where: str) -> Retry | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.error(where, "must be an object")
            return None
        for key in raw:
            if key not in RETRY_FIELDS:
                self.error(f"{where}.{key}", f"unknown field {key!r}")
        attempts = raw.get("max_attempts", 3)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
            self.error(f"{where}.max_attempts", "must be an integer from 1 to 100")
        numbers = {  # name: (default, maximum)
            "backoff_seconds": (1.0, MAX_SECONDS),
            "backoff_multiplier": (2.0, MAX_BACKOFF_MULTIPLIER),
            "jitter": (0.0, 1),  # a fraction
        }
        values = {}
        for name, (default, maximum) in numbers.items():
            value = raw.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.error(f"{where}.{name}", "must be a number")
            elif problem := out_of_range(value, 0, maximum):
                self.error(f"{where}.{name}", problem)
            values[name] = value
        if any(e.field.startswith(where) for e in self.errors):
            return None
        return Retry(
            attempts,
            float(values["backoff_seconds"]),
            float(values["backoff_multiplier"]),
            float(values["jitter"]),
        )

    def control(
        self, step_type: str, params: dict[str, Any], where: str, depth: int
    ) -> tuple[Expression | None, dict[str, tuple[Step, ...]]]:
        """The parts of control steps that a schema cannot check."""
        if step_type == "condition":
            expression = self.expression(params["if"], f"{where}.if")
            branches = {
                name: self.steps(params[name], f"{where}.{name}", depth + 1)
                for name in ("then", "else")
                if params.get(name)
            }
            return expression, branches
        if step_type == "loop":
            return self.loop(params, where), {
                "steps": self.steps(params["steps"], f"{where}.steps", depth + 1)
            }
        if step_type == "variable" and params["operation"] not in VARIABLE_OPERATIONS:
            self.error(f"{where}.operation", f"must be one of: {', '.join(VARIABLE_OPERATIONS)}")
        return None, {}

    def loop(self, params: dict[str, Any], where: str) -> Expression | None:
        kinds = [k for k in ("for", "count", "while") if params.get(k) is not None]
        if len(kinds) != 1:
            self.error(where, "a loop needs exactly one of: for, count, while")
            return None
        cap = self.limits.max_loop_iterations
        bound = loop_bound(params.get("max_iterations"), cap)
        if cap is not None and isinstance(bound, int) and bound > cap:
            self.error(
                f"{where}.max_iterations",
                f"must be at most {cap} (the server's max_loop_iterations)",
            )
        if not params["steps"]:
            self.error(f"{where}.steps", "a loop needs at least one step")
        items = params.get("for")
        if items is not None:
            if isinstance(items, list):
                if isinstance(bound, int) and len(items) > bound:
                    self.error(f"{where}.for", f"has {len(items)} items, over max_iterations")
            elif not isinstance(items, str) or not (
                is_whole_reference(items) or STEP_ID.fullmatch(items)
            ):
                self.error(f"{where}.for", "must be a list or the name of a list variable")
        count = params.get("count")
        if isinstance(count, int) and isinstance(bound, int) and count > bound:
            self.error(f"{where}.count", "is over max_iterations")
        if params.get("max_concurrency") is not None and not params.get("parallel"):
            self.error(f"{where}.max_concurrency", "applies to parallel loops only")
        if params.get("parallel") and "while" in kinds:
            self.error(f"{where}.parallel", "a while loop runs one iteration at a time")
        if "while" in kinds:
            return self.expression(params["while"], f"{where}.while")
        return None


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


def loop_bound(given: Any, cap: int | None) -> Any:
    """A loop's max_iterations: as given, or the default, lowered to the server's cap."""
    if given is not None:
        return given
    return DEFAULT_LOOP_BOUND if cap is None else min(DEFAULT_LOOP_BOUND, cap)


def steps_at_once(raw_steps: Any, cap: int | None, depth: int = 0) -> int:
    """The most steps of a raw step list that could run at the same time: independent
    steps add up, a parallel loop multiplies its body by its width (max_concurrency, else
    its max_iterations), a condition runs one branch. What one plan can hold in memory."""
    if not isinstance(raw_steps, list) or depth > MAX_DEPTH + 1:
        return 0
    total = 0
    for raw in raw_steps:
        params = raw.get("parameters") if isinstance(raw, dict) else None
        if not isinstance(params, dict):
            total += 1
            continue
        if raw.get("type") == "loop":
            width = 1
            if params.get("parallel") is True:
                width = params.get("max_concurrency") or loop_bound(
                    params.get("max_iterations"), cap
                )
            body = steps_at_once(params.get("steps"), cap, depth + 1)
            total += (width if isinstance(width, int) else 1) * max(1, body)
        elif raw.get("type") == "condition":
            branches = (steps_at_once(params.get(k), cap, depth + 1) for k in ("then", "else"))
            total += max(1, *branches)
        else:
            total += 1
    return total


def count_steps(raw_steps: Any) -> int:
    """The steps of a raw step list, nested ones (branches, loop bodies) included, down
    to MAX_DEPTH + 1 levels; cheap enough to run before anything else."""
    total = 0
    stack = [(raw_steps, 0)]
    while stack:
        steps, depth = stack.pop()
        if not isinstance(steps, list) or depth > MAX_DEPTH + 1:
            continue
        total += len(steps)
        for raw in steps:
            params = raw.get("parameters") if isinstance(raw, dict) else None
            if isinstance(params, dict):
                stack.extend((params.get(key), depth + 1) for key in ("then", "else", "steps"))
    return total


def validate_plan(
    doc: Any,
    step_types: Mapping[str, Schema],
    field: str = "plan",
    limits: Limits = DEFAULT_LIMITS,
) -> Plan:
    """Check a plan document; raise one validation_error listing every problem. A plan
    over `limits.max_steps` is refused before anything else is checked."""
    if not isinstance(doc, dict):
        raise validation_error([FieldError(field, "must be an object")])
    prefix = f"{field}." if field else ""
    total = count_steps(doc.get("steps"))
    if limits.max_steps is not None and total > limits.max_steps:
        message = (
            f"has {total} steps, nested ones included; at most {limits.max_steps} "
            "(the server's max_plan_steps)"
        )
        raise validation_error([FieldError(f"{prefix}steps", message)])
    at_once = steps_at_once(doc.get("steps"), limits.max_loop_iterations)
    if limits.max_loop_iterations is not None and at_once > limits.max_loop_iterations:
        message = (
            f"can run {at_once} steps at once (parallel loops multiply what they hold); at "
            f"most {limits.max_loop_iterations} (the server's max_loop_iterations): give its "
            "parallel loops a max_concurrency"
        )
        raise validation_error([FieldError(f"{prefix}steps", message)])
    checker = _Checker(step_types, limits)
    for key in doc:
        if key not in PLAN_FIELDS:
            checker.error(f"{field}.{key}" if field else key, f"unknown field {key!r}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        checker.error(f"{prefix}name", "is required and must be a non-empty string")
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        checker.error(f"{prefix}description", "must be a string")
    variables = doc.get("variables", {})
    if not isinstance(variables, dict):
        checker.error(f"{prefix}variables", "must be an object")
    checker.errors.extend(check_metadata(doc.get("metadata"), f"{prefix}metadata"))
    checker.errors.extend(check_names(doc.get("secret_variables"), f"{prefix}secret_variables"))
    steps = checker.steps(doc.get("steps"), f"{prefix}steps", 0)
    if checker.errors:
        raise validation_error(checker.errors)
    return Plan(
        name=name,
        description=description,
        steps=steps,
        variables=variables,
        metadata=doc.get("metadata") or {},
        document=doc,
        secret_variables=tuple(doc.get("secret_variables") or ()),
    )


__all__ = [
    "NO_LIMITS",
    "ApiError",
    "Limits",
    "Plan",
    "Retry",
    "Step",
    "check_metadata",
    "check_names",
    "find_cycle",
    "validate_plan",
    "walk",
]


NESTED_STEP_LISTS = ("then", "else", "steps")


def raw_steps(document_steps: Any, where: str = "steps") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of a raw (accepted or stored) step list, at any depth, with its field
    path: `steps[1].parameters.then[0]`."""
    for index, raw in enumerate(document_steps if isinstance(document_steps, list) else ()):
        if not isinstance(raw, dict):
            continue
        path = f"{where}[{index}]"
        yield path, raw
        params = raw.get("parameters")
        for key in NESTED_STEP_LISTS if isinstance(params, dict) else ():
            yield from raw_steps(params.get(key), f"{path}.parameters.{key}")


def child_plan_ids(document_steps: Any) -> set[str]:
    """The plan ids that `plan` steps name, at any depth of a raw (stored) step list.
    Ids given as `${...}` are only known at run time and are left out."""
    found: set[str] = set()
    for _where, raw in raw_steps(document_steps):
        params = raw.get("parameters") or {}
        if raw.get("type") == "plan":
            plan_id = params.get("plan_id")
            if isinstance(plan_id, str) and not is_whole_reference(plan_id) and "${" not in plan_id:
                found.add(plan_id)
    return found
