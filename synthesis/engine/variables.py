"""The `variable` step's operations, on a plain dict of variables. Pure."""

from __future__ import annotations

from typing import Any

from synthesis.engine.nesting import too_deep, too_deep_message


class VariableError(ValueError):
    pass


def apply_operation(variables: dict[str, Any], operation: str, name: str, value: Any) -> Any:
    """Change `variables` in place; return the variable's new value (None once deleted).
    A new value nested deeper than MAX_DEPTH is refused and changes nothing."""
    if operation == "delete":
        variables.pop(name, None)
        return None
    new = _new_value(variables.get(name), operation, name, value)
    deep = too_deep(new, name)
    if deep is not None:
        raise VariableError(f"{deep}: {too_deep_message()}")
    variables[name] = new
    return new


def _new_value(current: Any, operation: str, name: str, value: Any) -> Any:
    if operation == "set":
        return value
    if operation == "increment":
        step = 1 if value is None else value
        start = 0 if current is None else current
        if not _is_number(step) or not _is_number(start):
            raise VariableError(f"increment needs numbers; {name!r} is {start!r}, step {step!r}")
        return start + step
    if operation == "append":
        start = [] if current is None else current
        if not isinstance(start, list):
            raise VariableError(f"append needs a list; {name!r} is {type(start).__name__}")
        return [*start, value]
    if operation == "merge":
        start = {} if current is None else current
        if not isinstance(start, dict) or not isinstance(value, dict):
            raise VariableError(f"merge needs two objects; {name!r} is {type(start).__name__}")
        return {**start, **value}
    raise VariableError(f"unknown operation {operation!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
