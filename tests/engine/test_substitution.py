from __future__ import annotations

import pytest

from synthesis.engine.substitution import UnknownVariable, substitute

VARIABLES = {"name": "world", "n": 3, "items": [1, 2], "step-1_output": "out"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello ${name}", "hello world"),
        ("${n}", 3),
        ("${items}", [1, 2]),
        ("n=${n} items=${items}", "n=3 items=[1,2]"),
        ("$${name} stays", "${name} stays"),
        ("$$${name}", "$${name}"),  # a lone "$", then an escaped reference
        ("${step-1_output}", "out"),
        ("no refs $HOME", "no refs $HOME"),
        ({"a": ["${name}", {"b": "${n}"}]}, {"a": ["world", {"b": 3}]}),
        (5, 5),
    ],
)
def test_substitute(value: object, expected: object) -> None:
    assert substitute(value, VARIABLES) == expected


def test_unknown_variable_names_it_at_any_depth() -> None:
    with pytest.raises(UnknownVariable) as caught:
        substitute({"x": ["fine ${name}", "${missing}"]}, VARIABLES)
    assert caught.value.name == "missing"
    assert "missing" in str(caught.value)
