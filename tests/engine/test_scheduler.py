from __future__ import annotations

import time

import pytest

from synthesis.engine.errors import ApiError
from synthesis.engine.plan import Step, validate_plan
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


def test_a_step_recovered_skipped_was_passed_over_and_lets_dependents_run() -> None:
    plan = validate_plan({"name": "p", "steps": [step("a"), step("b"), step("c")]}, STEP_SCHEMAS)
    s = Schedule(plan.steps, {"a": "completed", "b": "skipped"})
    assert s.ready() == ["c"]


def test_ready_with_a_limit_gives_the_first_in_plan_order() -> None:
    s = schedule(*(step(f"s{i}", depends_on=[]) for i in range(10)))
    assert s.ready(3) == ["s0", "s1", "s2"]
    s.mark("s1", "running")
    assert s.ready(3) == ["s0", "s2", "s3"]
    s.mark("s1", "pending")  # a step reset by a shutdown is ready again, in its place
    assert s.ready(2) == ["s0", "s1"]
    assert s.ready(100) == [f"s{i}" for i in range(10)]


def test_a_satisfied_dependency_going_back_to_pending_blocks_its_dependents_again() -> None:
    s = schedule(step("a"), step("b"))
    s.mark("a", "completed")
    assert s.ready() == ["b"]
    s.mark("a", "pending")
    assert s.ready() == ["a"]


def test_halted_and_outcome_follow_each_change() -> None:
    s = schedule(step("a", depends_on=[]), step("b", depends_on=[], continue_on_failure=True))
    s.mark("b", "failed")
    assert not s.halted and s.ready() == ["a"]
    s.mark("a", "failed")
    assert s.halted and s.ready() == []
    s.mark("a", "cancelled")  # no longer a failure: no longer halted
    assert not s.halted and s.finished and s.outcome() == "cancelled"


def chain(size: int) -> tuple[Step, ...]:
    return tuple(Step(f"s{i}", "command", {}, (f"s{i - 1}",) if i else ()) for i in range(size))


def run_through(s: Schedule, batch: int) -> int:
    """Drive a schedule as the execution actor does, asking every question each step."""
    started = 0
    while not s.finished:
        ready = s.ready(batch)
        assert ready and not s.halted and not s.unreachable()
        for step_id in ready:
            s.mark(step_id, "running")
            s.mark(step_id, "completed")
            started += 1
        s.skip_unreachable()
    return started


def test_twenty_thousand_steps_in_a_chain_are_scheduled_in_linear_time() -> None:
    s = Schedule(chain(20_000))
    began = time.perf_counter()
    assert run_through(s, 1) == 20_000
    assert time.perf_counter() - began < 1.0  # O(n^2) took minutes
    assert s.outcome() == "completed"


def test_twenty_thousand_independent_steps_are_scheduled_in_linear_time() -> None:
    s = Schedule(tuple(Step(f"s{i}", "command", {}, ()) for i in range(20_000)))
    began = time.perf_counter()
    assert run_through(s, 64) == 20_000
    assert time.perf_counter() - began < 1.0
