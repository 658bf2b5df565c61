"""The Executions API against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import psutil
import pykka
import pytest

from synthesis.actors.execution import ExecutionActor
from synthesis.actors.step import StepActor
from synthesis.web.executions import LANE_STEPS
from tests.support import Client, ServerThread, command, wait_until

HELLO = [command("step1", "echo Hello, World!")]


def test_create_returns_created_execution_with_plan(client: Client) -> None:
    plan = {"name": "Example Plan", "description": "An example", "steps": HELLO}
    response = client.post(
        "/api/executions",
        {"plan": plan, "variables": {"var1": "value1"}, "metadata": {"tags": ["example"]}},
    )
    assert response.status == 201
    body = response.json
    uuid.UUID(body["execution_id"], version=4)
    assert body["status"] == "created"
    assert body["created_at"].endswith("Z")
    assert body["plan"] == plan
    # Created only: nothing runs until /start.
    detail = client.execution(body["execution_id"])
    assert detail["status"] == "created"
    assert [s["status"] for s in detail["steps"]] == ["pending"]


def test_start_runs_steps_and_records_output_and_variables(client: Client) -> None:
    execution_id = client.create(
        [command("step1", "echo Hello, $SYNTHESIS_VAR_VAR1"), command("step2", "echo ${var1}-2")],
        start=False,
        variables={"var1": "value1"},
    )
    started = client.post(f"/api/executions/{execution_id}/start")
    assert started.status == 200
    assert started.json["status"] == "running"
    assert started.json["started_at"].endswith("Z")
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed"
    assert done["duration_ms"] is not None
    outputs = {s["id"]: s["output"] for s in done["steps"]}
    assert outputs == {"step1": "Hello, value1\n", "step2": "value1-2\n"}
    variables = client.get(f"/api/executions/{execution_id}/variables").json
    assert variables["variables"]["step1_output"] == "Hello, value1\n"
    assert variables["variables"]["step1_exit_code"] == 0
    assert variables["variables"]["var1"] == "value1"


def test_create_with_start_true_runs_at_once(client: Client) -> None:
    response = client.post(
        "/api/executions", {"plan": {"name": "p", "steps": HELLO}, "start": True}
    )
    assert response.status == 201
    assert response.json["status"] == "running"
    assert client.wait_for_status(response.json["execution_id"])["status"] == "completed"


def test_failing_step_fails_execution_and_skips_the_rest(client: Client) -> None:
    execution_id = client.create(
        [command("a", "echo oops >&2; exit 3"), command("b", "echo never")]
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "failed"
    a, b = done["steps"]
    assert (a["status"], a["exit_code"], a["error"]) == ("failed", 3, "oops\n")
    assert b["status"] == "skipped"
    assert b["output"] is None


def test_continue_on_failure_lets_the_next_step_run(client: Client) -> None:
    execution_id = client.create(
        [command("a", "exit 1", continue_on_failure=True), command("b", "echo ran")]
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed"
    assert [s["status"] for s in done["steps"]] == ["failed", "completed"]


def test_independent_steps_run_concurrently(client: Client, tmp_path) -> None:
    # Each branch waits for the other's file: only concurrent execution can finish.
    a, b = tmp_path / "a", tmp_path / "b"
    wait_for = "for i in $(seq 100); do [ -e {0} ] && exit 0; sleep 0.05; done; exit 1"
    execution_id = client.create(
        [
            command("left", f"touch {a}; " + wait_for.format(b), depends_on=[]),
            command("right", f"touch {b}; " + wait_for.format(a), depends_on=[]),
            command("join", "echo joined", depends_on=["left", "right"]),
        ]
    )
    done = client.wait_for_status(execution_id)
    assert done["status"] == "completed", done
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["join"]["started_at"] >= max(
        steps["left"]["completed_at"], steps["right"]["completed_at"]
    )


def test_unknown_variable_fails_the_step_naming_it(client: Client) -> None:
    execution_id = client.create([command("s", "echo ${nope}")])
    done = client.wait_for_status(execution_id)
    assert done["status"] == "failed"
    assert "nope" in done["steps"][0]["error"]


def test_escaped_reference_is_left_literal(client: Client) -> None:
    execution_id = client.create([command("s", "echo '$${literal}'")])
    done = client.wait_for_status(execution_id)
    assert done["steps"][0]["output"] == "${literal}\n"


def test_script_step_uses_interpreter_and_working_directory(client: Client, tmp_path) -> None:
    step = {
        "id": "py",
        "type": "script",
        "parameters": {
            "script": "import os\nprint(os.getcwd())\nprint(os.environ['GREETING'])\n",
            "interpreter": "python3",
            "working_directory": str(tmp_path),
            "env": {"GREETING": "hi"},
        },
    }
    done = client.wait_for_status(client.create([step]))
    assert done["status"] == "completed", done
    assert done["steps"][0]["output"] == f"{tmp_path}\nhi\n"


def test_command_timeout_fails_the_step(client: Client) -> None:
    step = {"id": "slow", "type": "command", "parameters": {"command": "sleep 20", "timeout": 1}}
    done = client.wait_for_status(client.create([step]))
    assert done["status"] == "failed"
    assert "timed out" in done["steps"][0]["error"]


def test_cancel_kills_the_whole_process_group(client: Client, tmp_path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The step forks a grandchild that ignores SIGTERM, records its pid, and waits.
    script = f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; exec sleep 60' & wait"
    execution_id = client.create([command("forks", script), command("after", "echo never")])
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
    grandchild = int(pid_file.read_text())
    assert psutil.pid_exists(grandchild)

    response = client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status == 200
    assert response.json["status"] == "cancelled"
    assert response.json["cancelled_at"].endswith("Z")

    def gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, timeout=10)
    done = client.wait_for_step(execution_id, "forks", "cancelled")
    assert done["status"] == "cancelled"
    after = client.get(f"/api/executions/{execution_id}/steps/after").json
    assert after["status"] == "cancelled"
    assert client.execution(execution_id)["status"] == "cancelled"


def test_pause_lets_running_step_finish_and_starts_no_new_one(client: Client, tmp_path) -> None:
    gate = tmp_path / "gate"
    first = command("first", f"while [ ! -e {gate} ]; do sleep 0.02; done; echo first")
    execution_id = client.create([first, command("second", "echo second")])
    client.wait_for_step(execution_id, "first", "running")

    paused = client.post(f"/api/executions/{execution_id}/pause")
    assert paused.status == 200
    assert paused.json["status"] == "paused"
    assert client.execution(execution_id)["status"] == "paused"

    gate.touch()
    client.wait_for_step(execution_id, "first", "completed")
    assert client.get(f"/api/executions/{execution_id}/steps/second").json["status"] == "pending"
    assert client.execution(execution_id)["status"] == "paused"

    resumed = client.post(f"/api/executions/{execution_id}/resume")
    assert resumed.status == 200
    assert resumed.json["status"] == "running"
    assert "resumed_at" in resumed.json
    assert client.wait_for_status(execution_id)["status"] == "completed"


def test_illegal_transitions_are_invalid_state(client: Client) -> None:
    execution_id = client.create(HELLO, start=False)
    for action in ("pause", "resume"):
        response = client.post(f"/api/executions/{execution_id}/{action}")
        assert response.status == 409
        assert response.json["error"]["code"] == "invalid_state"
    client.post(f"/api/executions/{execution_id}/start")
    client.wait_for_status(execution_id)
    for action in ("start", "pause", "resume", "cancel"):
        response = client.post(f"/api/executions/{execution_id}/{action}")
        assert response.status == 409, action
        assert response.json["error"]["code"] == "invalid_state"


def test_cancel_of_created_execution(client: Client) -> None:
    execution_id = client.create(HELLO, start=False)
    response = client.post(f"/api/executions/{execution_id}/cancel")
    assert response.json["status"] == "cancelled"
    detail = client.execution(execution_id)
    assert detail["status"] == "cancelled"
    assert detail["steps"][0]["status"] == "cancelled"


def test_list_filters_and_paginates(client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    ids = [
        client.create(HELLO, start=False, metadata={"tags": [tag], "created_by": f"user{i % 2}"})
        for i in range(5)
    ]
    page = client.get(f"/api/executions?tag={tag}&limit=2&offset=1").json
    assert page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 1)
    newest_first = list(reversed(ids))
    assert [e["execution_id"] for e in page["executions"]] == newest_first[1:3]
    assert set(page["executions"][0]) >= {"execution_id", "name", "status", "created_at", "tags"}

    by_user = client.get(f"/api/executions?tag={tag}&created_by=user1").json
    assert by_user["total"] == 2

    client.post(f"/api/executions/{ids[0]}/cancel")
    cancelled = client.get(f"/api/executions?tag={tag}&status=cancelled").json
    assert [e["execution_id"] for e in cancelled["executions"]] == [ids[0]]

    first = client.execution(ids[0])["created_at"]
    later = client.get(f"/api/executions?tag={tag}&from_date={ids and first}").json
    assert later["total"] == 5
    earlier = client.get(f"/api/executions?tag={tag}&to_date=2000-01-01").json
    assert earlier["total"] == 0


def test_bad_query_parameters_are_validation_errors(client: Client) -> None:
    for query in (
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "status=bogus",
        "from_date=yesterday",
        "colour=red",
    ):
        response = client.get(f"/api/executions?{query}")
        assert response.status == 400, query
        error = response.json["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["field"] == query.split("=")[0]


def test_steps_and_step_endpoints(client: Client) -> None:
    execution_id = client.create(HELLO)
    client.wait_for_status(execution_id)
    steps = client.get(f"/api/executions/{execution_id}/steps").json
    assert steps["execution_id"] == execution_id
    assert [s["id"] for s in steps["steps"]] == ["step1"]
    step = client.get(f"/api/executions/{execution_id}/steps/step1").json
    assert step["parameters"] == {"command": "echo Hello, World!"}
    assert step["output"] == "Hello, World!\n"
    assert step["error"] is None
    assert step["duration_ms"] >= 0


def test_unknown_ids_are_not_found(client: Client) -> None:
    missing = str(uuid.uuid4())
    known = client.create(HELLO, start=False)
    for path in (
        f"/api/executions/{missing}",
        f"/api/executions/{missing}/steps",
        f"/api/executions/{missing}/steps/step1",
        f"/api/executions/{missing}/variables",
        f"/api/executions/{known}/steps/nope",
    ):
        response = client.get(path)
        assert response.status == 404, path
        assert response.json["error"]["code"] == "not_found"
    response = client.post(f"/api/executions/{missing}/start")
    assert response.status == 404


def test_output_is_capped_with_a_visible_marker(client: Client) -> None:
    big = "head -c 1100000 /dev/zero | tr '\\0' x"
    done = client.wait_for_status(client.create([command("big", big)]))
    output = done["steps"][0]["output"]
    assert output.startswith("x" * 1000)
    assert "[output truncated:" in output
    assert len(output) < 1024 * 1024 + 200


def test_secrets_do_not_reach_commands(client: Client) -> None:
    planted = {
        "SYNTHESIS_TOKENS": "server-token",
        "SYNTHESIS_JWT_SECRET": "server-secret",
        "SYNTHESIS_JWT_SECRET_PROBE": "visible",  # a look-alike name does pass
    }
    os.environ.update(planted)
    try:
        done = client.wait_for_status(
            client.create([command("env", "env | grep ^SYNTHESIS_ | cut -d= -f1 | sort")])
        )
    finally:
        for name in planted:
            del os.environ[name]
    names = done["steps"][0]["output"].split()
    assert "SYNTHESIS_JWT_SECRET_PROBE" in names
    assert "SYNTHESIS_TOKENS" not in names and "SYNTHESIS_JWT_SECRET" not in names


def test_every_change_is_stored_as_an_event_in_order(server, client: Client) -> None:
    execution_id = client.create(
        [command("a", "echo one; echo two"), command("b", "exit 2"), command("c", "true")]
    )
    client.wait_for_status(execution_id)
    events = wait_until(
        lambda: (
            (e := server.runtime.store.events_for(execution_id))
            and e[-1].type == "execution_completed"
            and e
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:3] == ["execution_created", "execution_started", "step_started"]
    assert "step_output" in kinds[3 : kinds.index("step_completed")]
    assert kinds.count("step_completed") == 3  # a completed, b failed, c skipped
    assert kinds[-1] == "execution_completed"
    assert events[-1].data == {
        "execution_id": execution_id,
        "status": "failed",
        "duration_ms": events[-1].data["duration_ms"],
    }
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    completed = {e.data["step_id"]: e.data["status"] for e in events if e.type == "step_completed"}
    assert completed == {"a": "completed", "b": "failed", "c": "skipped"}


def test_finished_actors_stop_so_nothing_piles_up(client: Client) -> None:
    def live_actors() -> list[object]:
        return [
            *pykka.ActorRegistry.get_by_class(ExecutionActor),
            *pykka.ActorRegistry.get_by_class(StepActor),
        ]

    threads_before = threading.active_count()
    ids = [client.create([command("a", "true"), command("b", "true")]) for _ in range(10)]
    for execution_id in ids:
        assert client.wait_for_status(execution_id)["status"] == "completed"
    wait_until(lambda: not live_actors(), timeout=10)
    assert threading.active_count() <= threads_before + 2  # the HTTP client's, at most


def test_a_big_execution_is_read_whole_off_the_read_lane(
    server: ServerThread, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A get by id of more than LANE_STEPS steps is read on the read pool: the lane's one
    thread stays free for the quick reads, which would otherwise wait behind it."""
    runtime = server.runtime
    assert runtime is not None
    used: list[str] = []
    lane, pool = runtime.read_quick, runtime.read

    async def read_quick(fn: Any, *args: Any) -> Any:
        used.append("lane")
        return await lane(fn, *args)

    async def read(fn: Any, *args: Any) -> Any:
        used.append("pool")
        return await pool(fn, *args)

    monkeypatch.setattr(runtime, "read_quick", read_quick)
    monkeypatch.setattr(runtime, "read", read)
    small = client.create([command("a", "true")], start=False)
    big = client.create([command(f"s{i}", "true") for i in range(LANE_STEPS + 1)], start=False)
    assert [s["id"] for s in client.execution(small)["steps"]] == ["a"]
    assert used == ["lane"]
    used.clear()
    steps = client.execution(big)["steps"]
    assert [s["id"] for s in steps] == [f"s{i}" for i in range(LANE_STEPS + 1)]
    assert used == ["lane", "pool"]
