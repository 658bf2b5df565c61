from __future__ import annotations

import pytest

from synthesis.engine.errors import ApiError
from synthesis.engine.plan import validate_plan
from synthesis.engine.scheduler import Schedule
from synthesis.engine.transitions import ACTIONS, transition
from synthesis.integrations import STEP_SCHEMAS


def schedule(*steps: dict[str, object]) -> Schedule:
    return Schedule(validate_plan({"name": "p", "steps": list(steps)}, STEP_SCHEMAS).steps)


def step(step_id: str, **options: object) -> dict[str, object]:
    return {"id": step_id, "type": "command", "parameters": {"command": "true"}, **options}


def test_diamond_runs_in_waves() -> None:
    s = schedule(
        step("a"),
        step("b", depends_on=["a"]),
        step("c", depends_on=["a"]),
        step("d", depends_on=["b", "c"]),
    )
    assert s.ready() == ["a"]
    s.mark("a", "running")
    assert s.ready() == []
    s.mark("a", "completed")
    assert s.ready() == ["b", "c"]
    s.mark("b", "completed")
    s.mark("c", "running")
    assert s.ready() == []
    s.mark("c", "completed")
    assert s.ready() == ["d"]
    s.mark("d", "completed")
    assert s.finished and s.outcome() == "completed"


def test_failure_halts_and_skips_what_never_ran() -> None:
    s = schedule(step("a", depends_on=[]), step("b", depends_on=[]), step("c", depends_on=["a"]))
    s.mark("a", "running")
    s.mark("b", "running")
    s.mark("a", "failed")
    assert s.ready() == [] and s.halted
    assert s.skip_unreachable() == []  # b still running
    s.mark("b", "completed")
    assert s.skip_unreachable() == ["c"]
    assert s.finished and s.outcome() == "failed"


def test_tolerated_failure_satisfies_dependents() -> None:
    s = schedule(step("a", continue_on_failure=True), step("b"))
    s.mark("a", "failed")
    assert not s.halted
    assert s.ready() == ["b"]
    s.mark("b", "completed")
    assert s.outcome() == "completed"


def test_recovered_statuses_are_kept() -> None:
    plan = validate_plan({"name": "p", "steps": [step("a"), step("b")]}, STEP_SCHEMAS)
    s = Schedule(plan.steps, {"a": "completed", "b": "pending", "zz": "completed"})
    assert s.ready() == ["b"]


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        ("created", "start", "running"),
        ("running", "pause", "paused"),
        ("paused", "resume", "running"),
        ("running", "cancel", "cancelled"),
        ("paused", "cancel", "cancelled"),
        ("created", "cancel", "cancelled"),
    ],
)
def test_allowed_transitions(status: str, action: str, target: str) -> None:
    assert transition(status, action) == target


def test_every_other_transition_is_invalid_state() -> None:
    statuses = ("created", "running", "paused", "completed", "failed", "cancelled")
    for action, (allowed, _) in ACTIONS.items():
        for status in set(statuses) - allowed:
            with pytest.raises(ApiError) as caught:
                transition(status, action)
            assert caught.value.code == "invalid_state"
            assert caught.value.http_status == 409


def test_a_step_passed_over_by_its_condition_lets_dependents_run() -> None:
    s = schedule(step("a"), step("b"), step("c"))
    s.mark("a", "completed")
    s.pass_over("b")
    assert s.ready() == ["c"]
    assert not s.halted
    s.mark("c", "completed")
    assert s.finished and s.outcome() == "completed"
