"""How deep a JSON value nests, checked without recursion. Pure.

One limit for every value that comes in (request bodies) and every value a step makes
(outputs, variables): deep enough for any real document, far below what the JSON encoder
can write (orjson refuses past 254 levels) and what Python's recursion allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 64


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return iter(value.items())
    return enumerate(value)


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list | tuple)


def too_deep(value: Any, root: str = "", limit: int = MAX_DEPTH) -> str | None:
    """The path (`root.key[0]`) of the first array or object nested deeper than `limit`
    levels in `value` (a container at the top is level 1), or None when none is."""
    if not _is_container(value):
        return None
    stack = [_children(value)]
    path: list[str | int] = []
    while stack:
        for key, child in stack[-1]:
            if _is_container(child):
                if len(stack) >= limit:
                    return render_path(root, [*path, key])
                path.append(key)
                stack.append(_children(child))
                break
        else:
            stack.pop()
            if path:
                path.pop()
    return None


def render_path(root: str, keys: list[str | int]) -> str:
    """`root`, then `.key` for object keys and `[i]` for array indexes."""
    text = root
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


def too_deep_message(limit: int = MAX_DEPTH) -> str:
    return f"nested deeper than {limit} levels of arrays and objects"
