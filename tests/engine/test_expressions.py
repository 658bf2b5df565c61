"""The safe evaluator: what it computes, and what it refuses to parse or run."""

from __future__ import annotations

import pytest

from synthesis.engine.expressions import ExpressionError, parse

VARIABLES = {
    "x": 3,
    "name": "Ann",
    "items": [1, 2, 3],
    "cfg": {"env": "prod"},
    "step-1_output": "ok\n",
}
STEPS = {"build": {"status": "completed", "output": "v1", "exit_code": 0}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x > 2 and name == 'Ann'", True),
        ("not (x > 2) or false", False),
        ("x * 2 + 1 - 4 / 2", 5.0),
        ("x // 2, x % 2", [1, 1]),
        ("2 in items and 9 not in items", True),
        ("'nn' in lower(name)", True),
        ("len(items) == 3 and sum(items) == 6", True),
        ("cfg.env == 'prod' and cfg['env'] == 'prod'", True),
        ("items[0] + items[-1]", 4),
        ("items[1:]", [2, 3]),
        ("steps.build.status == 'completed' and steps.build.exit_code == 0", True),
        ("${x} == 3 and strip(${step-1_output}) == 'ok'", True),
        ("'big' if x > 2 else 'small'", "big"),
        ("1 < x < 5", True),
        ("defined('x') and not defined('y')", True),
        ("get(cfg, 'region', 'eu')", "eu"),
        ("null is None and true", True),
        ("{'a': x}['a']", 3),
        ("join(split('a,b', ','), '-')", "a-b"),
        (True, True),
    ],
)
def test_evaluates(source: object, expected: object) -> None:
    assert parse(source).evaluate(VARIABLES, STEPS) == expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "x.__class__",
        "().__class__.__bases__",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "[i for i in items]",
        "x ** 100",
        "x := 2",
        "lower.__globals__",
        "eval('1')",
        "x +",
        "",
        "a" * 3000,
        "name.upper()",
        "len(items, key=1)",
    ],
)
def test_refuses_to_parse(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing > 1", "unknown variable 'missing'"),
        ("cfg.nope", "no field 'nope'"),
        ("x.y", "cannot read 'y'"),
        ("'a' * 1000000", "larger than"),
        ("items * 100000", "larger than"),
        ("1 / 0", "ZeroDivisionError"),
        ("name + 1", "TypeError"),
        ("int('9' * 5000)", "ValueError"),
    ],
)
def test_errors_at_run_time_are_expression_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source).evaluate(VARIABLES, STEPS)
    assert message in str(caught.value)
