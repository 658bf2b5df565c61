"""The `variable` step's operations, on a plain dict of variables. Pure."""

from __future__ import annotations

from typing import Any


class VariableError(ValueError):
    pass


def apply_operation(variables: dict[str, Any], operation: str, name: str, value: Any) -> Any:
    """Change `variables` in place; return the variable's new value (None once deleted)."""
    current = variables.get(name)
    if operation == "set":
        variables[name] = value
    elif operation == "delete":
        variables.pop(name, None)
        return None
    elif operation == "increment":
        step = 1 if value is None else value
        start = 0 if current is None else current
        if not _is_number(step) or not _is_number(start):
            raise VariableError(f"increment needs numbers; {name!r} is {start!r}, step {step!r}")
        variables[name] = start + step
    elif operation == "append":
        start = [] if current is None else current
        if not isinstance(start, list):
            raise VariableError(f"append needs a list; {name!r} is {type(start).__name__}")
        variables[name] = [*start, value]
    elif operation == "merge":
        start = {} if current is None else current
        if not isinstance(start, dict) or not isinstance(value, dict):
            raise VariableError(f"merge needs two objects; {name!r} is {type(start).__name__}")
        variables[name] = {**start, **value}
    else:
        raise VariableError(f"unknown operation {operation!r}")
    return variables[name]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
