"""The plan language (docs/plans.md) against the interpreter alone: order, failure,
conditions, loops, variables, notify. No threads, no store, a fake clock."""

from __future__ import annotations

import pytest

from synthesis.engine import interpreter as run
from synthesis.engine.errors import ApiError
from synthesis.engine.transitions import (
    ACTIONS,
    RULES,
    StepMoveError,
    StepStatus,
    check_step_move,
    transition,
)
from tests.engine.interpreter_harness import Run, command, variable


def test_a_plain_list_runs_in_order_and_completes() -> None:
    r = Run([command("a"), command("b")])
    assert r.started() == ["a"]
    r.end("a")
    assert r.started() == ["a", "b"]
    assert r.outcome is None
    r.end("b")
    assert r.outcome is not None and r.outcome.status == "completed"
    assert r.of(run.Ended) == [run.Ended("completed", None)]


def test_steps_without_dependencies_run_at_once_and_a_diamond_in_waves() -> None:
    r = Run(
        [
            command("a", depends_on=[]),
            command("b", depends_on=["a"]),
            command("c", depends_on=["a"]),
            command("d", depends_on=["b", "c"]),
        ]
    )
    assert r.running() == ["a"]
    r.end("a")
    assert r.running() == ["b", "c"]
    r.end("c")
    assert r.running() == ["b"]
    r.end("b")
    assert r.running() == ["d"]


def test_a_failure_halts_running_steps_finish_and_the_rest_is_skipped() -> None:
    r = Run([command("a", depends_on=[]), command("b", depends_on=[]), command("c")])
    r.end("a", "failed", error="exit 1")
    assert r.running() == ["b"] and r.outcome is None  # b still runs
    r.end("b")
    assert r.status("c") == "skipped"
    assert r.error("c") == "not run: an earlier step failed"
    assert r.outcome is not None
    assert (r.outcome.status, r.outcome.error) == ("failed", "step 'a' failed")


def test_continue_on_failure_lets_dependents_run_and_the_run_complete() -> None:
    r = Run([command("a", continue_on_failure=True), command("b")])
    r.end("a", "failed")
    assert r.running() == ["b"]
    r.end("b")
    assert r.outcome is not None and r.outcome.status == "completed"


def test_a_false_condition_skips_the_step_and_its_dependents_still_run() -> None:
    r = Run([command("a", condition="x > 1"), command("b")], {"x": 1})
    assert r.status("a") == "skipped" and r.error("a") == "condition was false"
    assert r.running() == ["b"]


def test_a_condition_that_cannot_be_evaluated_fails_the_step() -> None:
    r = Run([command("a", condition="nope > 1")])
    assert r.status("a") == "failed"
    assert (r.error("a") or "").startswith("condition: ")
    assert r.outcome is not None and r.outcome.status == "failed"


def test_steps_in_expressions_see_earlier_results() -> None:
    r = Run(
        [
            command("a", continue_on_failure=True),
            command("b", condition="steps.a.status == 'failed'"),
        ]
    )
    r.end("a", "failed")
    assert r.running() == ["b"]


def condition(step_id: str, expression: str, then: list, otherwise: list) -> dict:
    parameters = {"if": expression, "then": then, "else": otherwise}
    return {"id": step_id, "type": "condition", "parameters": parameters}


def test_a_condition_step_runs_the_branch_it_takes_as_a_block() -> None:
    r = Run(
        [condition("check", "x == 1", [command("yes")], [command("no")]), command("after")],
        {"x": 1},
    )
    added = r.of(run.StepsAdded)
    assert [(a.prefix, [s.id for s in a.steps]) for a in added] == [("check.then.", ["yes"])]
    assert r.running() == ["check.then.yes"]
    r.end("check.then.yes", output="hi")
    assert r.status("check") == "completed"
    assert r.finished()["check"].result.variables == {"output": "hi", "branch": "then"}
    assert r.machine.variables["check_branch"] == "then"
    assert r.running() == ["after"]


def test_an_empty_branch_completes_the_condition_with_no_output() -> None:
    r = Run([condition("check", "false", [command("yes")], [])])
    assert r.status("check") == "completed"
    assert r.machine.variables["check_output"] is None


def test_a_failed_branch_fails_its_condition_step() -> None:
    r = Run([condition("check", "true", [command("yes")], [])])
    r.end("check.then.yes", "failed")
    assert r.status("check") == "failed"
    assert r.error("check") == "branch 'then' failed"


def loop(step_id: str, body: list, **parameters: object) -> dict:
    return {"id": step_id, "type": "loop", "parameters": {**parameters, "steps": body}}


def test_a_for_loop_runs_its_iterations_in_order_and_collects_the_outputs() -> None:
    r = Run([loop("each", [command("build")], **{"for": ["x", "y"]})])
    assert r.running() == ["each[0].build"]
    assert r.of(run.StartStep)[0].variables["item"] == "x"
    r.end("each[0].build", output="X")
    assert r.running() == ["each[1].build"]
    r.end("each[1].build", output="Y")
    assert r.finished()["each"].result.output == ["X", "Y"]
    assert r.outcome is not None and r.outcome.status == "completed"


def test_a_for_loop_over_a_variable_holding_a_list() -> None:
    r = Run([loop("each", [command("build")], **{"for": "items"})], {"items": [1, 2, 3]})
    assert r.of(run.StartStep)[0].variables["index"] == 0
    for i in range(3):
        r.end(f"each[{i}].build")
    assert r.status("each") == "completed"


def test_a_list_over_max_iterations_fails_the_loop() -> None:
    r = Run(
        [loop("each", [command("b")], max_iterations=2, **{"for": "items"})],
        {"items": [1, 2, 3, 4, 5]},
    )
    assert r.status("each") == "failed"
    assert r.error("each") == "5 items is over max_iterations (2)"


def test_a_parallel_count_loop_runs_max_concurrency_at_once() -> None:
    r = Run([loop("n", [command("s")], count=5, parallel=True, max_concurrency=2)])
    assert r.running() == ["n[0].s", "n[1].s"]
    r.end("n[1].s")
    assert r.running() == ["n[0].s", "n[2].s"]
    for i in (0, 2):
        r.end(f"n[{i}].s")
    assert r.running() == ["n[3].s", "n[4].s"]


def test_a_failed_iteration_stops_new_ones_and_fails_the_loop_with_the_outputs() -> None:
    r = Run([loop("n", [command("s")], count=4, parallel=True, max_concurrency=2)])
    r.end("n[0].s", output="zero")
    r.end("n[1].s", "failed")
    assert r.running() == ["n[2].s"]  # started before the failure; no n[3]
    r.end("n[2].s", output="two")
    assert r.status("n") == "failed"
    assert r.error("n") == "iteration 1 failed"
    assert r.finished()["n"].result.output == ["zero", "two"]


def test_a_while_loop_runs_while_true_with_index() -> None:
    body = [variable("dec", "left", -1, "increment")]
    r = Run([loop("drain", body, **{"while": "left > 0"})], {"left": 3})
    assert r.status("drain") == "completed"
    assert r.machine.variables["left"] == 0
    assert r.finished()["drain"].result.output == [2, 1, 0]


def test_a_while_loop_still_true_after_max_iterations_fails() -> None:
    r = Run([loop("spin", [variable("v", "x", 1)], max_iterations=3, **{"while": "true"})])
    assert r.status("spin") == "failed"
    assert r.error("spin") == "still true after max_iterations (3)"


def test_max_iterations_given_as_a_variable_is_checked_against_the_server_cap() -> None:
    r = Run(
        [loop("n", [command("s")], count=1, max_iterations="${m}")],
        {"m": 50},
        max_iterations=10,
    )
    assert "over the server's max_loop_iterations (10)" in (r.error("n") or "")


def test_variables_are_set_substituted_and_saved() -> None:
    r = Run([variable("v", "greeting", "hi"), command("c")], {"name": "x"})
    assert r.machine.variables["greeting"] == "hi"
    assert r.machine.variables["v_output"] == "hi"
    assert r.machine.variables_unsaved
    assert r.of(run.StartStep)[0].variables["greeting"] == "hi"


def test_an_unknown_variable_fails_the_step() -> None:
    step = {"id": "c", "type": "command", "parameters": {"command": "echo ${nope}"}}
    r = Run([step])
    assert r.status("c") == "failed"
    assert r.error("c") == "unknown variable 'nope'"


def test_nested_outputs_stay_in_their_block() -> None:
    r = Run([loop("n", [variable("v", "x", "${item}")], **{"for": ["a"]})])
    assert r.machine.variables["x"] == "a"  # the execution's variable changed
    assert "v_output" not in r.machine.variables  # the step's output stayed inside


def test_notify_records_a_notification_and_its_message_is_the_output() -> None:
    step = {"id": "say", "type": "notify", "parameters": {"message": "hi ${who}", "data": {"a": 1}}}
    r = Run([step], {"who": "you"})
    assert r.of(run.Notified) == [run.Notified("say", "hi you", {"a": 1})]
    assert r.machine.variables["say_output"] == "hi you"


def test_a_disabled_integration_fails_its_step() -> None:
    step = {"id": "h", "type": "http", "parameters": {"url": "http://127.0.0.1/"}}
    r = Run([step], disabled={"api"})
    assert r.status("h") == "failed" and "http" in (r.error("h") or "")


def test_a_turn_starts_at_most_a_batch_and_leaves_the_rest_for_the_next() -> None:
    r = Run([variable(f"v{i}", "x", i) for i in range(10)], batch=4)
    assert len(r.finished()) == 4 and r.machine.behind
    while r.machine.behind:
        r.machine.advance()
    assert len(r.finished()) == 10 and r.outcome is not None


def test_the_rule_table_allows_and_refuses_control_requests() -> None:
    assert transition("running", "pause") == "paused"
    assert RULES["cancel"].allowed == {"created", "running", "paused"}
    assert ACTIONS["resume"] == (frozenset({"paused"}), "running")
    with pytest.raises(ApiError, match="cannot pause an execution that is completed"):
        transition("completed", "pause")


def test_the_step_table_refuses_a_move_out_of_an_end() -> None:
    check_step_move("a", StepStatus.PENDING, StepStatus.RUNNING)
    with pytest.raises(StepMoveError):
        check_step_move("a", "completed", "running")
    assert StepStatus.COMPLETED == "completed" and f"{StepStatus.SKIPPED}" == "skipped"
