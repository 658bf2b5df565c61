"""Parameter schemas of integration capabilities, and the one validator for them.

A step's `parameters` and a direct invocation's `parameters` are both checked here,
against the same schema, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthesis.engine.errors import FieldError
from synthesis.engine.substitution import is_whole_reference

_JSON_TYPES: dict[str, tuple[type, ...]] = {
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


def _type_ok(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[type_name])


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
        if spec.minimum is not None and value < spec.minimum:
            errors.append(FieldError(where, f"must be at least {spec.minimum:g}"))
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
