"""The server's caps on one plan: its steps (nested ones included) and a loop's
`max_iterations`, each a clear validation_error naming the field, or a failed step when
the bound only becomes known at run time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Client, command


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, object]:
    return {"max_plan_steps": 6, "max_loop_iterations": 50}


def notify(step_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "notify", "parameters": {"message": step_id}}


def loop(step_id: str, body: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "loop", "parameters": {"count": 2, "steps": body, **params}}


def assert_refused(response: Any, field: str, *words: str) -> None:
    assert response.status == 400, response
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == field, error
    for word in words:
        assert word in error["details"][0]["message"], error


def test_a_plan_over_max_plan_steps_is_refused_counting_nested_steps(client: Client) -> None:
    at_cap = [notify("a"), notify("b"), loop("l", [notify("c"), notify("d"), notify("e")])]
    assert client.post("/api/executions", {"plan": {"name": "p", "steps": at_cap}}).status == 201
    over = [*at_cap[:2], loop("l", [notify("c"), notify("d"), notify("e"), notify("f")])]
    plan = {"name": "p", "steps": over}
    assert_refused(
        client.post("/api/executions", {"plan": plan}), "plan.steps", "7", "max_plan_steps"
    )
    assert_refused(client.post("/api/plans", plan), "steps", "max_plan_steps")


def test_max_iterations_over_the_servers_cap_is_refused(client: Client) -> None:
    plan = {"name": "p", "steps": [loop("l", [notify("a")], max_iterations=51)]}
    response = client.post("/api/executions", {"plan": plan})
    assert_refused(response, "plan.steps[0].parameters.max_iterations", "max_loop_iterations")
    plan = {"name": "p", "steps": [loop("l", [notify("a")], max_iterations=50)]}
    assert client.post("/api/executions", {"plan": plan}).status == 201


def test_a_bound_known_only_at_run_time_fails_the_step(client: Client) -> None:
    steps = [loop("l", [command("a", "true")], max_iterations="${n}")]
    execution_id = client.create(steps, variables={"n": 1000})
    run = client.wait_for_status(execution_id)
    assert run["status"] == "failed"
    loop_step = next(s for s in run["steps"] if s["id"] == "l")
    assert "max_loop_iterations (50)" in loop_step["error"]
