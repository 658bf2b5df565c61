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


def test_paths_reach_into_objects_and_lists() -> None:
    variables = {"fetch_output": {"body": {"items": [{"id": 7}]}, "status": 200}}
    assert substitute("${fetch_output.body.items.0.id}", variables) == 7
    assert substitute("status ${fetch_output.status}", variables) == "status 200"
    for missing in ("${fetch_output.body.nope}", "${fetch_output.body.items.5}", "${nope.x}"):
        with pytest.raises(UnknownVariable):
            substitute(missing, variables)
