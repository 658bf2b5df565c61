"""Parameter schemas of integration capabilities, and the one validator for them.

A step's `parameters` and a direct invocation's `parameters` are both checked here,
against the same schema, so the two can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.errors import FieldError
from synthesis.engine.substitution import is_whole_reference

MAX_SECONDS = 365 * 24 * 3600  # a year: the longest wait, timeout or retry delay
MAX_BACKOFF_MULTIPLIER = 10

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "any": (object,),
}


@dataclass(frozen=True)
class Param:
    type: str
    description: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    values: str | None = None  # for objects: the type every value must have

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "type": self.type,
            "description": self.description,
            "required": self.required,
        }
        if self.default is not None:
            spec["default"] = self.default
        return spec


Schema = Mapping[str, Param]


def seconds(
    description: str,
    *,
    default: float | None = None,
    minimum: float = 0.001,
    required: bool = False,
    type_name: str = "number",
) -> Param:
    """A duration parameter: at least `minimum`, at most MAX_SECONDS."""
    return Param(
        type_name,
        description,
        required=required,
        default=default,
        minimum=minimum,
        maximum=MAX_SECONDS,
    )


def out_of_range(
    value: float, minimum: float | None = None, maximum: float | None = None
) -> str | None:
    """Why `value` is refused (NaN and infinities always are), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if minimum is not None and value < minimum:
        return f"must be at least {_number(minimum)}"
    if maximum is not None and value > maximum:
        return f"must be at most {_number(maximum)}"
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _type_ok(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, JSON_TYPES[type_name])


def check_parameters(
    params: Any, schema: Schema, field: str = "parameters", *, resolved: bool = False
) -> list[FieldError]:
    """Return every problem with `params`; an empty list means they are valid.

    Before substitution (`resolved=False`) a value that is exactly `${name}` may stand
    for any type; it is checked again after substitution, when the step runs.
    """
    if not isinstance(params, dict):
        return [FieldError(field, "must be an object")]
    errors = [
        FieldError(f"{field}.{name}", f"unknown parameter {name!r}")
        for name in params
        if name not in schema
    ]
    for name, spec in schema.items():
        where = f"{field}.{name}"
        if name not in params or params[name] is None:
            if spec.required:
                errors.append(FieldError(where, "is required"))
            continue
        value = params[name]
        if not resolved and is_whole_reference(value):
            continue
        if not _type_ok(value, spec.type):
            errors.append(FieldError(where, f"must be of type {spec.type}"))
            continue
        if spec.type == "string" and spec.required and not value.strip():
            errors.append(FieldError(where, "must not be empty"))
        if spec.type in ("integer", "number") and (
            problem := out_of_range(value, spec.minimum, spec.maximum)
        ):
            errors.append(FieldError(where, problem))
        if spec.values is not None:
            errors.extend(
                FieldError(f"{where}.{key}", f"must be of type {spec.values}")
                for key, item in value.items()
                if not _type_ok(item, spec.values) and (resolved or not is_whole_reference(item))
            )
    return errors


def with_defaults(params: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    filled = {name: spec.default for name, spec in schema.items() if spec.default is not None}
    filled.update({k: v for k, v in params.items() if v is not None})
    return filled
