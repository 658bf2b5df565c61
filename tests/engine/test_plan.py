from __future__ import annotations

import itertools

import pytest

from synthesis.engine.errors import ApiError
from synthesis.engine.plan import Retry, find_cycle, validate_plan
from synthesis.integrations import STEP_SCHEMAS


def step(step_id: str, **options: object) -> dict[str, object]:
    return {"id": step_id, "type": "command", "parameters": {"command": "true"}, **options}


def test_plain_list_runs_in_order() -> None:
    plan = validate_plan({"name": "p", "steps": [step("a"), step("b"), step("c")]}, STEP_SCHEMAS)
    assert [s.depends_on for s in plan.steps] == [(), ("a",), ("b",)]


def test_empty_depends_on_starts_at_once_and_lists_make_a_dag() -> None:
    doc = {
        "name": "p",
        "steps": [step("a"), step("b", depends_on=[]), step("c", depends_on=["a", "b", "a"])],
    }
    plan = validate_plan(doc, STEP_SCHEMAS)
    assert [s.depends_on for s in plan.steps] == [(), (), ("a", "b")]


def test_forward_reference_is_allowed() -> None:
    doc = {"name": "p", "steps": [step("a", depends_on=["b"]), step("b", depends_on=[])]}
    assert validate_plan(doc, STEP_SCHEMAS).steps[0].depends_on == ("b",)


def test_whole_reference_defers_the_type_check() -> None:
    doc = {
        "name": "p",
        "steps": [
            {"id": "a", "type": "command", "parameters": {"command": "x", "timeout": "${t}"}}
        ],
    }
    validate_plan(doc, STEP_SCHEMAS)


def test_errors_name_fields() -> None:
    with pytest.raises(ApiError) as caught:
        validate_plan({"name": "", "steps": [step("a"), {"id": "a", "type": "x"}]}, STEP_SCHEMAS)
    fields = [d.field for d in caught.value.details]
    assert sorted(fields) == ["plan.name", "plan.steps[1].id", "plan.steps[1].type"]
    assert caught.value.code == "validation_error"


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": (), "b": ("a",)}, False),
        ({"a": ("b",), "b": ("a",)}, True),
        ({"a": ("c",), "b": ("a",), "c": ("b",)}, True),
        ({"a": (), "b": ("a",), "c": ("a", "b"), "d": ("c",)}, False),
    ],
)
def test_find_cycle(graph: dict[str, tuple[str, ...]], has_cycle: bool) -> None:
    cycle = find_cycle(graph)
    assert (cycle is not None) == has_cycle
    if cycle:
        assert cycle[0] == cycle[-1]
        for node, dep in itertools.pairwise(cycle):
            assert dep in graph[node]


YEAR = 365 * 24 * 3600


def wait(seconds: object) -> dict[str, object]:
    return {"id": "a", "type": "wait", "parameters": {"seconds": seconds}}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (wait(1e308), "plan.steps[0].parameters.seconds", f"must be at most {YEAR}"),
        (wait(float("nan")), "plan.steps[0].parameters.seconds", "must be a finite number"),
        (wait(float("inf")), "plan.steps[0].parameters.seconds", "must be a finite number"),
        (step("a", timeout=1e308), "plan.steps[0].timeout", f"at most {YEAR}"),
        (step("a", timeout=float("nan")), "plan.steps[0].timeout", f"at most {YEAR}"),
        (
            step("a", retry={"backoff_seconds": 1e308}),
            "plan.steps[0].retry.backoff_seconds",
            f"must be at most {YEAR}",
        ),
        (
            step("a", retry={"backoff_multiplier": 11}),
            "plan.steps[0].retry.backoff_multiplier",
            "must be at most 10",
        ),
        (
            step("a", retry={"jitter": float("nan")}),
            "plan.steps[0].retry.jitter",
            "must be a finite number",
        ),
        (step("a", retry={"jitter": 1.5}), "plan.steps[0].retry.jitter", "must be at most 1"),
        (
            {"id": "a", "type": "command", "parameters": {"command": "x", "timeout": 2.5}},
            "plan.steps[0].parameters.timeout",
            "must be of type integer",
        ),
        (
            {"id": "a", "type": "http", "parameters": {"url": "http://x", "timeout": 1e308}},
            "plan.steps[0].parameters.timeout",
            f"must be at most {YEAR}",
        ),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_field(
    raw: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        validate_plan({"name": "p", "steps": [raw]}, STEP_SCHEMAS)
    assert [(d.field, message in d.message) for d in caught.value.details] == [(field, True)]


def test_the_maxima_themselves_are_accepted() -> None:
    retry = {"backoff_seconds": YEAR, "backoff_multiplier": 10, "jitter": 1}
    steps = [wait(YEAR), step("b", timeout=YEAR, retry=retry)]
    plan = validate_plan({"name": "p", "steps": steps}, STEP_SCHEMAS)
    assert plan.steps[1].retry == Retry(3, YEAR, 10, 1)


def test_retry_delays_are_at_most_a_year() -> None:
    assert Retry(100, 60, 10).delay(99, 0.5) == YEAR


def _parallel_loop(step_id: str, body: list[dict], **extra: object) -> dict:
    parameters = {"count": 10_000, "parallel": True, "max_iterations": 10_000, "steps": body}
    return {"id": step_id, "type": "loop", "parameters": {**parameters, **extra}}


def test_parallel_loops_nested_past_the_cap_are_refused_at_create_time() -> None:
    """Three steps within every other cap would hold 10,000 x 10,000 waits at once."""
    wait = [{"id": "w", "type": "wait", "parameters": {"seconds": 600}}]
    nested = {"name": "p", "steps": [_parallel_loop("L", [_parallel_loop("M", wait)])]}
    with pytest.raises(ApiError) as refused:
        validate_plan(nested, STEP_SCHEMAS)
    (problem,) = refused.value.details
    assert problem.field == "plan.steps"
    assert "100000000 steps at once" in problem.message
    bounded = [_parallel_loop("L", [_parallel_loop("M", wait, max_concurrency=1)])]
    validate_plan({"name": "p", "steps": bounded}, STEP_SCHEMAS)  # 10,000 at once: fine
