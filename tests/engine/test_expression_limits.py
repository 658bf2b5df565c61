"""The evaluator's bounds: every expression returns or fails with ExpressionError, fast
and in a few megabytes, whatever it asks for.

The hostile cases run in a child process with its address space capped and a timeout,
so an evaluator that tries to build gigabytes or to compare for minutes fails here
quickly instead of taking the test run down with it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthesis.engine.expressions import MAX_LENGTH, ExpressionError, parse

TIME_BOUND = 0.5  # seconds per evaluation, with room for a loaded machine
MEMORY_BOUND = 8 * 1024 * 1024  # bytes allocated at the peak of one evaluation

HOSTILE = [
    # formatting: a 2 GiB string on main
    ("'%2147483646d' % 1", "none"),
    ("'%.2147483646f' % 1", "none"),
    # replace, join and str() sized before they build 10 GB
    ("replace('a' * 99999, 'a', 'a' * 99999)", "none"),
    ("join(['a' * 99999] * 99999, '')", "none"),
    ("str(['a' * 99999] * 99999)", "none"),
    # split sized before it builds a piece per word
    ("split(out)", "output"),
    # sum adds numbers only (lists: quadratic copying)
    ("sum([[0] * 300] * 300, [])", "none"),
    # integer size: int() of long strings, products, round()
    ("int('f' * 99999, 16) * int('f' * 99999, 16)", "none"),
    ("int('9' * 1300) * int('9' * 1300)", "none"),
    ("int(1e308 * 10)", "none"),
    # no bytes
    ("len(b'a' * 100000000)", "none"),
    # the budget: comparing big structures again and again
    (" and ".join(["big == copy"] * 100), "lists"),
    # nesting: a RecursionError on main
    ("+".join(["1"] * 999), "none"),
    # these two run for minutes on main, so they come last
    ("round(1, -1000000000)", "none"),
    # repetition counted by elements, nested ones included: a 15 s comparison on main
    ("[[1] * 99999] * 99999 == [[1] * 99999] * 99999", "none"),
]

# Evaluates each (source, variables) of argv[1] under a 512 MiB address space; prints
# one JSON line per case: how it ended, in how many seconds, with what peak allocation.
_CHILD = r"""
import json, resource, sys, time, tracemalloc
limit = 512 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from synthesis.engine.expressions import ExpressionError, parse
VARIABLES = {
    "none": lambda: {},
    "lists": lambda: {
        "big": [[i] for i in range(250_000)],
        "copy": [[i] for i in range(250_000)],
    },
    "output": lambda: {"out": "ab " * 350_000},
}
for source, name in json.loads(sys.argv[1]):
    variables = VARIABLES[name]()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        parse(source).evaluate(variables, {})
        outcome = "returned"
    except ExpressionError as exc:
        outcome = f"ExpressionError: {exc}"
    except BaseException as exc:
        outcome = type(exc).__name__
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak": peak}), flush=True)
"""


@pytest.fixture(scope="module")
def hostile_results() -> list[dict[str, Any]]:
    """How each hostile case ended, all in one child process with its memory capped; if
    one runs past the timeout, it and the cases after it end as "timed out"."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(HOSTILE)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        output = done.stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    results = [json.loads(line) for line in output.splitlines()]
    return results + [{"outcome": "timed out after 10 s"}] * (len(HOSTILE) - len(results))


@pytest.mark.parametrize("case", range(len(HOSTILE)), ids=[source[:50] for source, _ in HOSTILE])
def test_hostile_expression_fails_fast_and_small(
    hostile_results: list[dict[str, Any]], case: int
) -> None:
    result = hostile_results[case]
    assert result["outcome"].startswith("ExpressionError"), (HOSTILE[case], result)
    assert result["seconds"] < 1.0, (HOSTILE[case], result)
    assert result["peak"] < MEMORY_BOUND, (HOSTILE[case], result)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("'%s' % 1", "'%' formats no strings"),
        ("[[1] * 1000] * 1000", "larger than 100000"),
        ("int('9' * 1300) * 10", "number larger than 4096 bits"),
        ("round(1, -1001)", "ndigits"),
        ("sum([[1]], [])", "sum adds numbers"),
        ("b'x'", "bytes literals are not allowed"),
        ("-" * 150 + "1", "nested deeper than 100"),
        (" or ".join(["'x' in out"] * 5), "expression too expensive"),
    ],
)
def test_refusals_say_why(source: str, message: str) -> None:
    variables = {"out": "a" * 1024 * 1024}
    with pytest.raises(ExpressionError, match=message):
        parse(source).evaluate(variables, {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len([1] * 100000)", 100000),  # the limit itself is allowed
        ("len(str([12, 'a\\'b', {'k': None}, 1.5, [True]] * 1000))", 37000),
        ("str({'a': [1, 'x']}) == \"{'a': [1, 'x']}\"", True),
        ("len(join(split(text, ','), ';'))", 29999),
        ("len(replace(text, ',', ''))", 20000),
        ("'needle' in out and len(out) == 1048576", True),
        ("x * 7 % 5", 1),
        ("startswith(out, 'hay') and not endswith(out, 'needle')", True),
    ],
)
def test_work_within_the_limits_is_done(source: str, expected: Any) -> None:
    variables = {
        "x": 3,
        "text": ",".join(["ab"] * 10_000),
        "out": "hay" * 300_000 + "needle" + "x" * (1024 * 1024 - 900_006),
    }
    assert parse(source).evaluate(variables, {}) == expected


# ---- property: any expression of the grammar returns or refuses, in bounded time and memory

VARIABLES = {
    "n": 7,
    "s": "ab,cd",
    "out": "line of output\n" * 70_000,  # about the stored output limit
    "nums": list(range(100_000)),
    "nest": [[i, str(i)] for i in range(20_000)],
    "cfg": {"env": "prod", "zones": ["a", "b"], "deep": {"k": [1, 2, {"x": "y"}]}},
}
STEPS = {"build": {"status": "completed", "output": "v1\n", "error": None, "exit_code": 0}}


def _of(*options: str) -> st.SearchStrategy[str]:
    return st.sampled_from(options)


def _call(name: str, *args: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*args).map(lambda a: f"{name}({', '.join(a)})")


def _form(template: str, *args: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*args).map(lambda a: template.format(*a))


_LEAVES = {
    "number": _of("0", "1", "-1", "7", "n", "99999", "100000", "2147483646", "1e308", "0.5")
    | _of("10000000000000000000", "steps.build.exit_code", "len(out)"),
    "text": _of("''", "'a'", "'ab,cd'", "'%s'", "'%2147483646d'", "'ß'", "'😀'", "'\\x00'")
    | _of("s", "out", "steps.build.output", "${cfg.zones.0}", "cfg.env"),
    "array": _of("[]", "nums", "nest", "cfg.zones", "cfg.deep.k", "[1, 2, 3]"),
    "mapping": _of("{}", "cfg", "cfg.deep", "steps"),
}


@functools.cache
def _grammar(depth: int) -> dict[str, st.SearchStrategy[str]]:
    """Expressions of each kind nesting at most `depth` levels: a typed grammar, so that
    most of them get as far as building something big."""
    if depth == 0:
        return _LEAVES
    inner = _grammar(depth - 1)
    number, text, array, mapping = (inner[k] for k in ("number", "text", "array", "mapping"))
    value = st.one_of(number, text, array, mapping)
    return {
        "number": st.one_of(
            _LEAVES["number"],
            _form("({} {} {})", number, _of("+", "-", "*", "/", "//", "%"), number),
            _form("-{}", number),
            _call("len", value),
            _call("int", number),
            _call("int", text),
            _call("round", number, number),
            _call("sum", array),
            _call("max", array),
            _call("min", number, number),
        ),
        "text": st.one_of(
            _LEAVES["text"],
            _form("({} + {})", text, text),
            _form("({} * {})", text, number),
            _form("({} * {})", number, text),
            _form("({} % {})", text, value),
            _call("str", value),
            _call("upper", text),
            _call("lower", text),
            _call("strip", text),
            _call("replace", text, text, text),
            _call("join", array, text),
            _form("{}[{}:]", text, number),
            _form("{}[{}]", text, number),
        ),
        "array": st.one_of(
            _LEAVES["array"],
            _form("({} + {})", array, array),
            _form("({} * {})", array, number),
            st.lists(value, max_size=4).map(lambda items: f"[{', '.join(items)}]"),
            _call("split", text),
            _call("split", text, text),
            _call("sorted", array),
            _call("keys", mapping),
            _call("values", mapping),
            _form("{}[{}:{}]", array, number, number),
        ),
        "mapping": st.one_of(_LEAVES["mapping"], _form("{{'k': {}, 'v': {}}}", value, value)),
        "condition": st.one_of(
            _form("({} {} {})", value, _of("==", "!=", "<", ">="), value),
            _form("({} {} {})", value, _of("in", "not in"), st.one_of(text, array, mapping)),
            _form("(not {} or {})", value, value),
            _call("startswith", text, text),
            _call("contains", array, value),
            _call("get", mapping, value, value),
        ),
    }


expressions = st.one_of(*_grammar(4).values()).filter(lambda s: len(s) <= MAX_LENGTH)


@pytest.mark.timing  # a bound in seconds per evaluation: run alone, not beside other tests
@settings(
    derandomize=True,
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(expressions)
def test_every_expression_returns_or_refuses_within_bounds(source: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        parse(source).evaluate(VARIABLES, STEPS)
    except ExpressionError:
        pass
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < TIME_BOUND, (source, elapsed)
    assert peak < MEMORY_BOUND, (source, peak)
