"""How deep a value nests: the limit, counted from 1 at the top, and the path named."""

from __future__ import annotations

from typing import Any

from synthesis.engine.nesting import MAX_DEPTH, render_path, too_deep


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def test_the_limit_counts_the_top_container_as_level_one() -> None:
    assert too_deep(nested(MAX_DEPTH)) is None
    assert too_deep(nested(MAX_DEPTH + 1)) == "[0]" * MAX_DEPTH
    assert too_deep("text") is None and too_deep(None) is None
    assert too_deep(nested(3), limit=2) == "[0][0]"


def test_the_path_names_keys_and_indexes_from_a_root() -> None:
    value = {"a": [1, {"b": nested(2)}]}
    assert too_deep(value, "body", limit=4) == "body.a[1].b[0]"
    assert too_deep(value, limit=4) == "a[1].b[0]"
    assert too_deep(value, limit=5) is None
    assert render_path("", [0, "k"]) == "[0].k"


def test_siblings_do_not_add_up_and_the_first_too_deep_one_is_named() -> None:
    wide = [nested(3) for _ in range(1000)]
    assert too_deep(wide, limit=4) is None
    assert too_deep([nested(2), {"x": nested(5)}], limit=4) == "[1].x[0][0]"


def test_ten_thousand_levels_need_no_recursion() -> None:
    assert too_deep(nested(10_000)) == "[0]" * MAX_DEPTH
