"""The plan language as JSON Schema, built from the definitions the server validates
with: a `Step` is a `oneOf` over the step types of STEP_SCHEMAS and CONTROL_SCHEMAS (each
Param turned into JSON Schema); plan, step and retry fields are checked against
PLAN_FIELDS, STEP_FIELDS and RETRY_FIELDS when this module is imported (a field the
engine accepts without a schema here, or the reverse, fails at once)."""

from __future__ import annotations

import functools
import sys
from typing import Any

from synthesis.engine.expressions import MAX_LENGTH as EXPRESSION_MAX_LENGTH
from synthesis.engine.plan import (
    CONTROL_SCHEMAS,
    MAX_CHILD_DEPTH,
    MAX_DEPTH,
    MAX_ITERATIONS,
    PLAN_FIELDS,
    RETRY_FIELDS,
    STEP_FIELDS,
    STEP_ID,
    VARIABLE_OPERATIONS,
)
from synthesis.engine.schema import JSON_TYPES, MAX_BACKOFF_MULTIPLIER, MAX_SECONDS, Param, Schema
from synthesis.engine.substitution import WHOLE_REFERENCE
from synthesis.integrations import STEP_SCHEMAS
from synthesis.web.declare import TEXT, TEXT_OR_NULL, or_null, ref, shape


def _char_class(chars: list[str]) -> str:
    """The inside of a character class matching `chars`, runs written as ranges."""
    runs: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in runs
    )


@functools.cache
def not_blank() -> str:
    """A pattern for "not blank" as Python's str.strip() sees it (the validators'
    `not value.strip()`): a character that is not whitespace to Python, spelled out, since
    ECMA-262's \\s is a different set."""
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    return f"[^{_char_class(spaces)}]"


REFERENCE = {
    "type": "string",
    "pattern": f"^{WHOLE_REFERENCE.pattern}$",
    "description": "`${name}`: the variable's value, whatever its type, checked at run time",
}
STEP_TYPES = tuple(dict.fromkeys([*STEP_SCHEMAS, *CONTROL_SCHEMAS]))
# ---- Param -> JSON Schema ---------------------------------------------------------------


def _typed(type_name: str, *, nullable: bool) -> dict[str, Any]:
    if type_name not in JSON_TYPES:
        raise ValueError(f"no JSON Schema for the parameter type {type_name!r}")
    if type_name == "any":
        return {}
    return {"type": [type_name, "null"] if nullable else type_name}


def param_schema(
    param: Param, *, references: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One capability parameter as JSON Schema, as `check_parameters` checks it: an optional
    parameter may be null (null means absent), a required string must not be blank, and
    before substitution (`references`) a whole `${name}` may stand for any typed value."""
    schema = _typed(param.type, nullable=not param.required)
    if param.type == "string" and param.required:
        schema["pattern"] = not_blank()
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.values is not None:
        values = _typed(param.values, nullable=False)
        if references and param.values not in ("any", "string"):
            values = {"anyOf": [values, REFERENCE]}
        schema["additionalProperties"] = values
    schema.update(extra or {})
    if references and param.type not in ("any", "string"):
        schema = {"anyOf": [schema, REFERENCE]}
    schema["description"] = param.description
    if param.default is not None:
        schema["default"] = param.default
    return schema


def parameters_schema(
    schema: Schema,
    *,
    references: bool,
    special: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A capability's whole `parameters` object: unknown names are refused."""
    special = special or {}
    properties = {
        name: special[name] if name in special else param_schema(p, references=references)
        for name, p in schema.items()
    }
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [name for name, p in schema.items() if p.required]
    if required:
        result["required"] = required
    return result


def _control_parameters() -> dict[str, dict[str, dict[str, Any]]]:
    """What `_Checker.control` adds to the control steps' Params: step lists (never a
    `${name}`), expression bounds, loop bounds and variable operations."""
    steps = {"items": ref("Step")}
    expression = {"maxLength": EXPRESSION_MAX_LENGTH}
    c = CONTROL_SCHEMAS
    return {
        "condition": {
            "if": param_schema(c["condition"]["if"], references=True, extra=expression),
            "then": param_schema(c["condition"]["then"], references=False, extra=steps),
            "else": param_schema(c["condition"]["else"], references=False, extra=steps),
        },
        "loop": {
            "for": {
                "description": c["loop"]["for"].description,
                "anyOf": [
                    {"type": "array"},
                    {"type": "string", "pattern": STEP_ID.pattern},
                    REFERENCE,
                    {"type": "null"},
                ],
            },
            "while": param_schema(c["loop"]["while"], references=True, extra=expression),
            "steps": param_schema(
                c["loop"]["steps"], references=False, extra={**steps, "minItems": 1}
            ),
            "max_iterations": param_schema(
                c["loop"]["max_iterations"],
                references=True,
                extra={"maximum": MAX_ITERATIONS},  # the default of max_loop_iterations
            ),
        },
        "variable": {
            "operation": param_schema(
                c["variable"]["operation"],
                references=False,
                extra={"enum": list(VARIABLE_OPERATIONS)},
            ),
        },
    }


def _component_name(step_type: str) -> str:
    return "".join(part.capitalize() for part in step_type.split("_")) + "Step"


def step_schemas() -> dict[str, dict[str, Any]]:
    """`Step` (a oneOf over the step types) and one schema per step type."""
    special = _control_parameters()
    all_types = {**STEP_SCHEMAS, **CONTROL_SCHEMAS}
    schemas: dict[str, dict[str, Any]] = {}
    mapping = {}
    for step_type, schema in all_types.items():
        parameters = parameters_schema(schema, references=True, special=special.get(step_type, {}))
        fields = {
            "id": {
                "type": "string",
                "pattern": STEP_ID.pattern,
                "description": "Unique in the plan at every depth",
            },
            "type": {"const": step_type},
            "parameters": parameters,
            "depends_on": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "Ids of steps in the same list. Absent: the step listed "
                "before it; []: none",
            },
            "timeout": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": MAX_SECONDS,
                "description": "Seconds",
            },
            "retry": or_null(ref("Retry")),
            "condition": {
                **ref("Expression"),
                "description": "Run the step only when true; false means skipped",
            },
            "continue_on_failure": {"type": "boolean", "default": False},
        }
        _same_fields(fields, STEP_FIELDS, "STEP_FIELDS")
        required = ["id", "type"] + (["parameters"] if "required" in parameters else [])
        name = _component_name(step_type)
        schemas[name] = {
            "type": "object",
            "properties": fields,
            "required": required,
            "additionalProperties": False,
        }
        mapping[step_type] = f"#/components/schemas/{name}"
    schemas["Step"] = {
        "description": "One step of a plan; its `type` chooses its parameters. Steps nest "
        f"(condition, loop) at most {MAX_DEPTH} levels deep.",
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return schemas


def _same_fields(
    described: dict[str, Any], accepted: set[str] | tuple[str, ...], what: str
) -> None:
    if set(described) != set(accepted):
        raise RuntimeError(
            f"openapi.py describes {sorted(described)} but the server accepts "
            f"{sorted(accepted)} ({what}): update the document"
        )


def retry_schema() -> dict[str, Any]:
    fields = {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
        "backoff_seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_SECONDS,
            "default": 1.0,
            "description": "Seconds before the second attempt; no delay is over a year",
        },
        "backoff_multiplier": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_BACKOFF_MULTIPLIER,
            "default": 2.0,
        },
        "jitter": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.0,
            "description": "Each delay moves by up to +/- this fraction",
        },
    }
    _same_fields(fields, RETRY_FIELDS, "RETRY_FIELDS")
    return {"type": "object", "properties": fields, "additionalProperties": False}


SECRET_VARIABLES = {
    "type": ["array", "null"],
    "items": {"type": "string", "minLength": 1},
    "description": "Variables shown as `***` wherever they would show (variables, step "
    "parameters and outputs, events, webhooks); steps still get their real values. "
    "Variables named like a secret (password, token, api_key...) are secret anyway",
}


def plan_schema() -> dict[str, Any]:
    fields = {
        "name": {"type": "string", "pattern": not_blank()},
        "description": {"type": ["string", "null"]},
        "steps": {"type": "array", "minItems": 1, "items": ref("Step")},
        "variables": {"type": "object", "description": "Default values of variables"},
        "secret_variables": SECRET_VARIABLES,
        "metadata": or_null(ref("Metadata")),
    }
    _same_fields(fields, PLAN_FIELDS, "PLAN_FIELDS")
    return {
        "type": "object",
        "description": "Step ids are unique, dependencies name steps of the same list and "
        "form no cycle, and `plan` steps name stored plans (nesting at most "
        f"{MAX_CHILD_DEPTH} deep): all checked when the plan is accepted.",
        "properties": fields,
        "required": ["name", "steps"],
        "additionalProperties": False,
    }


PARAMETER_SPEC = shape(
    {
        "type": {"enum": list(JSON_TYPES)},
        "description": TEXT,
        "required": {"type": "boolean"},
        "default": {},
    },
    optional=("default",),
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "Expression": {
        "description": "A safe expression over the variables (comparisons, boolean "
        "logic, arithmetic, membership), or a boolean",
        "anyOf": [
            {"type": "boolean"},
            {"type": "string", "maxLength": EXPRESSION_MAX_LENGTH, "pattern": not_blank()},
        ],
    },
    "Metadata": {
        "type": "object",
        "description": "Any other keys are kept as given",
        "properties": {
            "tags": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
            "created_by": TEXT_OR_NULL,
        },
    },
    "Retry": retry_schema(),
    "Plan": plan_schema(),
    **step_schemas(),
    "ParameterSpec": PARAMETER_SPEC,
}
