"""The `synthesis` client commands, run as real processes against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support import TOKEN, ServerThread, command


def synthesis(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "synthesis",
            *args[:1],
            "--server",
            f"http://127.0.0.1:{server.port}",
            "--token",
            TOKEN,
            *args[1:],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "name: greet\n"
        "steps:\n"
        "  - id: hello\n"
        "    type: command\n"
        "    parameters: {command: 'echo hello ${who}'}\n"
        "  - id: shout\n"
        "    type: command\n"
        "    parameters: {command: 'echo ${who} | tr a-z A-Z'}\n"
    )
    return path


def test_run_waits_shows_progress_and_exits_zero(server: ServerThread, plan_file: Path) -> None:
    result = synthesis(server, "run", str(plan_file), "--var", "who=world", "--wait")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "▶ hello (command)" in out
    assert "hello | hello world" in out
    assert "shout | WORLD" in out
    assert "✓ shout completed" in out
    assert "completed" in out.splitlines()[-4]


def test_run_exits_non_zero_when_the_execution_fails(server: ServerThread, tmp_path: Path) -> None:
    plan = tmp_path / "fail.json"
    plan.write_bytes(
        orjson.dumps({"name": "f", "steps": [command("boom", "echo bad >&2; exit 3")]})
    )
    result = synthesis(server, "run", str(plan), "--wait")
    assert result.returncode == 1
    assert "✗ boom failed" in result.stdout


def test_run_without_wait_prints_the_id_and_json_mode(
    server: ServerThread, plan_file: Path
) -> None:
    result = synthesis(server, "run", str(plan_file), "--var", "who=x", "--json")
    assert result.returncode == 0, result.stderr
    execution_id = orjson.loads(result.stdout)["execution_id"]
    got = synthesis(server, "executions", "get", execution_id, "--json")
    assert orjson.loads(got.stdout)["execution_id"] == execution_id
    listing = synthesis(server, "executions", "list", "--limit", "5")
    assert "EXECUTION_ID" in listing.stdout and execution_id in listing.stdout
    synthesis(server, "run", str(plan_file), "--var", "who=y")  # one more: two pages of one
    first = synthesis(server, "executions", "list", "--limit", "1").stdout
    newest = first.rsplit("next page: --after ", 1)[1].strip()
    second = synthesis(server, "executions", "list", "--limit", "1", "--after", newest).stdout
    assert newest in first and newest not in second and "EXECUTION_ID" in second


def test_plans_commands(server: ServerThread, plan_file: Path) -> None:
    created = synthesis(server, "plans", "create", str(plan_file))
    assert created.returncode == 0, created.stderr
    plan_id = created.stdout.strip()
    assert plan_id in synthesis(server, "plans", "list").stdout
    assert '"name": "greet"' in synthesis(server, "plans", "get", plan_id).stdout
    execution = synthesis(server, "plans", "execute", plan_id, "--var", "who=plan")
    assert execution.returncode == 0 and execution.stdout.strip()
    assert "deleted" in synthesis(server, "plans", "delete", plan_id).stdout


def test_errors_are_one_line_and_exit_two(server: ServerThread, tmp_path: Path) -> None:
    missing = synthesis(server, "executions", "get", "no-such-id")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: not_found:")
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"name": "b", "steps": []}))
    result = synthesis(server, "run", str(bad))
    assert result.returncode == 2
    assert "validation_error" in result.stderr and "steps" in result.stderr
    assert "Traceback" not in result.stderr


def test_control_commands(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    plan = tmp_path / "slow.json"
    plan.write_bytes(
        orjson.dumps(
            {
                "name": "s",
                "steps": [
                    command("hold", f"while [ ! -e {gate} ]; do sleep 0.02; done"),
                    command("b", "true"),
                ],
            }
        )
    )
    execution_id = orjson.loads(synthesis(server, "run", str(plan), "--json").stdout)[
        "execution_id"
    ]
    assert "paused" in synthesis(server, "executions", "pause", execution_id).stdout
    assert "running" in synthesis(server, "executions", "resume", execution_id).stdout
    assert "cancelled" in synthesis(server, "executions", "cancel", execution_id).stdout


def test_nodes_lists_the_servers_as_a_table_or_json(server: ServerThread) -> None:
    assert server.runtime is not None
    me = server.runtime.node_id
    result = synthesis(server, "nodes")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "NODE_ID",
        "HOST",
        "PORT",
        "PID",
        "STATUS",
        "EXECUTIONS",
        "HEARTBEAT_AT",
    ]
    [mine] = [row.split() for row in rows if row.startswith(me)]
    assert mine[2:5] == [str(server.settings.port), str(os.getpid()), "alive"]
    listed = orjson.loads(synthesis(server, "nodes", "--json").stdout)["nodes"]
    [node] = [n for n in listed if n["node_id"] == me]
    assert (node["pid"], node["status"]) == (os.getpid(), "alive")
