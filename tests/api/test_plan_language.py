"""Every step type and option of the plan language, against a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from synthesis.store.models import events
from tests.support import Client, ServerThread, command, wait_until


def step(step_id: str, step_type: str, **parameters: Any) -> dict[str, Any]:
    return {"id": step_id, "type": step_type, "parameters": parameters}


def run(client: Client, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return client.wait_for_status(client.create(steps, **extra))


def outputs(done: dict[str, Any]) -> dict[str, Any]:
    return {s["id"]: s["output"] for s in done["steps"]}


def statuses(done: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in done["steps"]}


def test_condition_takes_a_branch_and_nested_steps_say_where_they_came_from(
    client: Client,
) -> None:
    done = run(
        client,
        [
            command("probe", "exit 3", continue_on_failure=True),
            step(
                "check",
                "condition",
                **{
                    "if": "steps.probe.exit_code == 3 and size > 2",
                    "then": [command("big", "echo big ${size}")],
                    "else": [command("small", "echo small")],
                },
            ),
            command(
                "after", 'printf "%s%s" "$SYNTHESIS_VAR_CHECK_OUTPUT" "$SYNTHESIS_VAR_CHECK_BRANCH"'
            ),
        ],
        variables={"size": 5},
    )
    assert done["status"] == "completed", done
    assert statuses(done) == {
        "probe": "failed",
        "check": "completed",
        "after": "completed",
        "check.then.big": "completed",
    }
    assert outputs(done)["after"] == "big 5\nthen"
    assert done["variables"]["check_branch"] == "then"


def test_condition_without_the_branch_taken_completes(client: Client) -> None:
    done = run(
        client, [step("check", "condition", **{"if": "false", "then": [command("x", "true")]})]
    )
    assert done["status"] == "completed"
    assert done["variables"]["check_branch"] == "else"


def test_loop_for_over_a_variable_collects_results(client: Client) -> None:
    done = run(
        client,
        [
            step(
                "each",
                "loop",
                **{
                    "for": "names",
                    "steps": [
                        command("greet", "echo ${index}:${item}"),
                        command("shout", 'printf %s "$SYNTHESIS_VAR_GREET_OUTPUT" | tr a-z A-Z'),
                    ],
                },
            ),
        ],
        variables={"names": ["ann", "bob", "cy"]},
    )
    assert done["status"] == "completed"
    assert done["variables"]["each_output"] == ["0:ANN\n", "1:BOB\n", "2:CY\n"]
    assert outputs(done)["each[1].greet"] == "1:bob\n"
    ids = [s["id"] for s in done["steps"]]
    assert ids.index("each[0].greet") < ids.index("each[0].shout") < ids.index("each[2].shout")


def test_parallel_loop_respects_max_concurrency(client: Client, tmp_path: Path) -> None:
    log = tmp_path / "log"
    body = command("work", f"echo + >> {log}; sleep 0.3; echo - >> {log}")
    done = run(
        client, [step("fan", "loop", count=6, parallel=True, max_concurrency=2, steps=[body])]
    )
    assert done["status"] == "completed"
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "+" else -1
        peak = max(peak, running)
    assert peak == 2
    assert len(done["variables"]["fan_output"]) == 6


def test_while_loop_and_variable_operations(client: Client) -> None:
    done = run(
        client,
        [
            step("start", "variable", operation="set", name="n", value=0),
            step(
                "count",
                "loop",
                **{
                    "while": "n < 3",
                    "steps": [
                        step("inc", "variable", operation="increment", name="n"),
                        step("seen", "variable", operation="append", name="seen", value="${index}"),
                    ],
                },
            ),
            step("cfg", "variable", operation="merge", name="cfg", value={"a": 1}),
            step("cfg2", "variable", operation="merge", name="cfg", value={"b": "${n}"}),
            step("gone", "variable", operation="set", name="tmp", value="x"),
            step("drop", "variable", operation="delete", name="tmp"),
        ],
    )
    assert done["status"] == "completed", done
    variables = done["variables"]
    assert variables["n"] == 3
    assert variables["seen"] == [0, 1, 2]
    assert variables["cfg"] == {"a": 1, "b": 3}
    assert "tmp" not in variables


def test_while_loop_hitting_max_iterations_fails(client: Client) -> None:
    done = run(
        client,
        [
            step(
                "forever",
                "loop",
                **{"while": "true", "max_iterations": 3, "steps": [command("tick", "true")]},
            )
        ],
    )
    assert done["status"] == "failed"
    loop = next(s for s in done["steps"] if s["id"] == "forever")
    assert "max_iterations (3)" in loop["error"]
    assert sum(1 for s in done["steps"] if s["id"].startswith("forever[")) == 3


def test_bad_variable_operation_at_run_time_fails_the_step(client: Client) -> None:
    done = run(
        client,
        [step("inc", "variable", operation="increment", name="word")],
        variables={"word": "text"},
    )
    assert done["status"] == "failed"
    assert "increment needs numbers" in done["steps"][0]["error"]


def test_loop_over_something_that_is_not_a_list_fails(client: Client) -> None:
    done = run(
        client,
        [step("each", "loop", **{"for": "${x}", "steps": [command("a", "true")]})],
        variables={"x": "nope"},
    )
    assert done["status"] == "failed"
    assert "not a list" in done["steps"][0]["error"]


def test_wait_waits(client: Client) -> None:
    done = run(client, [step("pause", "wait", seconds=0.3)])
    assert done["status"] == "completed"
    assert done["steps"][0]["duration_ms"] >= 290


def test_notify_emits_a_notification_event(server: ServerThread, client: Client) -> None:
    done = run(
        client,
        [step("tell", "notify", message="built ${version}", data={"version": "${version}"})],
        variables={"version": 7},
    )
    assert done["steps"][0]["output"] == "built 7"
    stored = server.runtime.store.events_for(done["execution_id"])
    notes = [e.data for e in stored if e.type == "notification"]
    assert notes == [
        {
            "execution_id": done["execution_id"],
            "step_id": "tell",
            "message": "built 7",
            "data": {"version": 7},
        }
    ]


def test_false_condition_skips_and_dependents_still_run(client: Client) -> None:
    done = run(
        client,
        [
            command("maybe", "echo no", condition="deploy == true"),
            command("next", "echo yes"),
        ],
        variables={"deploy": False},
    )
    assert statuses(done) == {"maybe": "skipped", "next": "completed"}
    assert done["steps"][0]["error"] == "condition was false"
    assert done["status"] == "completed"


def test_condition_that_cannot_be_evaluated_fails_the_step(client: Client) -> None:
    done = run(client, [command("a", "true", condition="missing > 1")])
    assert done["status"] == "failed"
    assert "unknown variable 'missing'" in done["steps"][0]["error"]


def test_retry_with_backoff_records_every_attempt(client: Client, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    flaky = command(
        "flaky",
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        '[ "$n" -ge 3 ] && echo ok || { echo "try $n" >&2; exit 1; }',
        retry={"max_attempts": 4, "backoff_seconds": 0.2, "backoff_multiplier": 1.5},
    )
    done = run(client, [flaky])
    assert done["status"] == "completed"
    attempts = done["steps"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "failed", "completed"]
    assert [a["error"] for a in attempts[:2]] == ["try 1\n", "try 2\n"]
    assert attempts[1]["started_at"] >= attempts[0]["completed_at"]
    gap = _ms(attempts[1]["started_at"]) - _ms(attempts[0]["completed_at"])
    assert gap >= 190


def test_retry_gives_up_after_max_attempts(client: Client) -> None:
    done = run(
        client, [command("never", "exit 1", retry={"max_attempts": 2, "backoff_seconds": 0})]
    )
    assert done["status"] == "failed"
    assert len(done["steps"][0]["attempts"]) == 2


def test_timeout_on_a_loop_stops_what_it_started(client: Client, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    body = command("sleepy", f"echo $$ > {pid_file}; exec sleep 30")
    done = run(client, [{**step("slow", "loop", count=3, steps=[body]), "timeout": 0.5}])
    assert done["status"] == "failed"
    slow = next(s for s in done["steps"] if s["id"] == "slow")
    assert "timed out after 0.5 seconds" in slow["error"]
    pid = int(pid_file.read_text())
    wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    )
    assert not any(s["id"] == "slow[1].sleepy" for s in done["steps"])


def test_child_plan_runs_as_its_own_execution(client: Client) -> None:
    child = client.post(
        "/api/plans",
        {
            "name": "child",
            "variables": {"who": "nobody"},
            "steps": [command("hi", "echo hello ${who}")],
        },
    ).json["plan_id"]
    done = run(
        client,
        [
            step("kid", "plan", plan_id=child, variables={"who": "${me}"}),
            command("after", "echo ${kid_output.hi_output}"),
        ],
        variables={"me": "parent"},
    )
    assert done["status"] == "completed", done
    child_id = done["variables"]["kid_execution_id"]
    assert child_id != done["execution_id"]
    child_run = client.execution(child_id)
    assert child_run["status"] == "completed" and child_run["plan_id"] == child
    assert child_run["metadata"]["parent_execution_id"] == done["execution_id"]
    assert outputs(done)["after"] == "hello parent\n"


def test_a_failing_child_fails_the_plan_step(client: Client) -> None:
    child = client.post(
        "/api/plans", {"name": "bad child", "steps": [command("boom", "exit 4")]}
    ).json["plan_id"]
    done = run(client, [step("kid", "plan", plan_id=child)])
    assert done["status"] == "failed"
    assert client.execution(done["variables"]["kid_execution_id"])["status"] == "failed"


def test_pause_and_cancel_of_the_parent_reach_the_child(client: Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    child = client.post(
        "/api/plans",
        {
            "name": "slow child",
            "steps": [
                command("hold", f"while [ ! -e {gate} ]; do sleep 0.02; done"),
                command("later", "sleep 30"),
            ],
        },
    ).json["plan_id"]
    parent = client.create([step("kid", "plan", plan_id=child)])
    kid = wait_until(
        lambda: (
            client.execution(parent)["variables"].get("kid_execution_id")
            or _running_child(client, parent)
        )
    )
    client.wait_for_step(kid, "hold", "running")

    assert client.post(f"/api/executions/{parent}/pause").status == 200
    wait_until(lambda: client.execution(kid)["status"] == "paused")
    gate.touch()
    client.wait_for_step(kid, "hold", "completed")
    assert client.get(f"/api/executions/{kid}/steps/later").json["status"] == "pending"

    assert client.post(f"/api/executions/{parent}/resume").status == 200
    client.wait_for_step(kid, "later", "running")
    assert client.post(f"/api/executions/{parent}/cancel").status == 200
    assert client.wait_for_status(kid)["status"] == "cancelled"
    assert client.wait_for_status(parent)["status"] == "cancelled"


def _running_child(client: Client, parent: str) -> str | None:
    listing = client.get("/api/executions?limit=50").json["executions"]
    for summary in listing:
        detail = client.execution(summary["execution_id"])
        if detail["metadata"].get("parent_execution_id") == parent:
            return detail["execution_id"]
    return None


def _ms(stamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


BAD = {
    "bad expression": ([command("a", "true", condition="x >")], "plan.steps[0].condition"),
    "forbidden expression": (
        [command("a", "true", condition="__import__('os')")],
        "plan.steps[0].condition",
    ),
    "bad if": (
        [step("c", "condition", **{"if": "1 +", "then": []})],
        "plan.steps[0].parameters.if",
    ),
    "loop without bound": (
        [step("l", "loop", steps=[command("a", "true")])],
        "plan.steps[0].parameters",
    ),
    "loop with two bounds": (
        [step("l", "loop", count=2, **{"for": [1], "steps": [command("a", "true")]})],
        "plan.steps[0].parameters",
    ),
    "parallel while": (
        [step("l", "loop", parallel=True, **{"while": "true", "steps": [command("a", "true")]})],
        "plan.steps[0].parameters.parallel",
    ),
    "count over max_iterations": (
        [step("l", "loop", count=500, steps=[command("a", "true")])],
        "plan.steps[0].parameters.count",
    ),
    "list over max_iterations": (
        [
            step(
                "l", "loop", max_iterations=2, **{"for": [1, 2, 3], "steps": [command("a", "true")]}
            )
        ],
        "plan.steps[0].parameters.for",
    ),
    "count of wrong type": (
        [step("l", "loop", count="many", steps=[command("a", "true")])],
        "plan.steps[0].parameters.count",
    ),
    "empty loop body": ([step("l", "loop", count=1, steps=[])], "plan.steps[0].parameters.steps"),
    "wait of wrong type": ([step("w", "wait", seconds="soon")], "plan.steps[0].parameters.seconds"),
    "unknown variable operation": (
        [step("v", "variable", operation="square", name="x")],
        "plan.steps[0].parameters.operation",
    ),
    "notify without message": ([step("n", "notify")], "plan.steps[0].parameters.message"),
    "plan without plan_id": ([step("p", "plan")], "plan.steps[0].parameters.plan_id"),
    "bad nested step": (
        [
            step(
                "c",
                "condition",
                **{
                    "if": "true",
                    "then": [{"id": "x", "type": "command", "parameters": {"command": 5}}],
                },
            )
        ],
        "plan.steps[0].parameters.then[0].parameters.command",
    ),
    "duplicate id across depths": (
        [step("c", "condition", **{"if": "true", "then": [command("c", "true")]})],
        "plan.steps[0].parameters.then[0].id",
    ),
    "retry with unknown field": (
        [command("a", "true", retry={"max_attempts": 2, "delay": 1})],
        "plan.steps[0].retry.delay",
    ),
    "retry attempts out of range": (
        [command("a", "true", retry={"max_attempts": 0})],
        "plan.steps[0].retry.max_attempts",
    ),
    "jitter over one": ([command("a", "true", retry={"jitter": 2})], "plan.steps[0].retry.jitter"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_plan_language_is_a_validation_error(client: Client, case: str) -> None:
    steps, field = BAD[case]
    response = client.post("/api/executions", {"plan": {"name": "p", "steps": steps}})
    assert response.status == 400, response
    assert response.json["error"]["code"] == "validation_error"
    assert field in [d["field"] for d in response.json["error"]["details"]], response.json


def test_events_in_order_for_nested_steps(server: ServerThread, client: Client) -> None:
    done = run(client, [step("each", "loop", count=2, steps=[command("a", "echo ${index}")])])
    with server.runtime.store.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.payload)
            .where(events.c.execution_id == done["execution_id"])
            .order_by(events.c.seq)
        ).all()
    started = [p["step_id"] for t, p in rows if t == "step_started"]
    assert started == ["each", "each[0].a", "each[1].a"]
    assert rows[-1][0] == "execution_completed"


def test_steps_are_listed_in_tree_order(client: Client) -> None:
    done = run(
        client,
        [
            step("each", "loop", count=2, steps=[command("a", "true"), command("b", "true")]),
            step("check", "condition", **{"if": "true", "then": [command("t", "true")]}),
            command("last", "true"),
        ],
    )
    assert [s["id"] for s in done["steps"]] == [
        "each",
        "each[0].a",
        "each[0].b",
        "each[1].a",
        "each[1].b",
        "check",
        "check.then.t",
        "last",
    ]
    listed = client.get(f"/api/executions/{done['execution_id']}/steps").json["steps"]
    assert [s["id"] for s in listed] == [s["id"] for s in done["steps"]]


@pytest.mark.parametrize(
    ("steps", "variables", "message"),
    [
        (
            [step("l", "loop", count="${n}", steps=[command("a", "true")])],
            {"n": "three"},
            "count must be of type integer",
        ),
        (
            [step("l", "loop", count="${n}", max_iterations="${m}", steps=[command("a", "true")])],
            {"n": 5, "m": 2},
            "over max_iterations (2)",
        ),
        (
            [step("p", "plan", plan_id="${v}")],
            {"v": ["not", "an", "id"]},
            "plan_id must be of type string",
        ),
        (
            [step("p", "plan", plan_id="${v}", variables="${w}")],
            {"v": "x", "w": "text"},
            "variables must be of type object",
        ),
        ([step("w", "wait", seconds="${s}")], {"s": "soon"}, "seconds must be of type number"),
    ],
)
def test_parameters_given_as_variables_are_checked_when_the_step_starts(
    client: Client, steps: list[dict[str, Any]], variables: dict[str, Any], message: str
) -> None:
    done = run(client, steps, variables=variables)
    assert done["status"] == "failed"
    assert message in done["steps"][0]["error"]
    # The engine is unharmed: the next execution runs.
    assert run(client, [command("ok", "echo fine")])["status"] == "completed"


def test_loop_parameters_take_variables_and_paths(client: Client) -> None:
    done = run(
        client,
        [
            step("a", "loop", **{"for": "${cfg.names}", "steps": [command("x", "echo ${item}")]}),
            step("b", "loop", count="${n}", steps=[command("y", "true")]),
            step("c", "loop", **{"for": ["${first}", 2], "steps": [command("z", "echo ${item}")]}),
            {**command("1st", "echo one"), "depends_on": []},
            command("check", "echo ${1st_output}", condition="${cfg.names.0} == 'ann'"),
            step("w", "wait", seconds=0),
        ],
        variables={"cfg": {"names": ["ann", "bob"]}, "n": 2, "first": "f"},
    )
    assert done["status"] == "completed", done
    assert done["variables"]["a_output"] == ["ann\n", "bob\n"]
    assert len(done["variables"]["b_output"]) == 2
    assert done["variables"]["c_output"] == ["f\n", "2\n"]
    assert outputs(done)["check"] == "one\n"
    assert "w_output" in done["variables"]
