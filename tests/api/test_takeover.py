"""A node takes over what a dead node ran, in one process against the real PostgreSQL:
the dead node is fenced by this node's sweep, its execution goes on here (its finished
step is not run again, its interrupted one is), and an execution whose nodes died under
it five times fails with an error that says so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from synthesis.store import Store
from synthesis.store.models import executions, nodes, steps
from tests.conftest import fresh_postgres_database
from tests.support import ServerThread, command, make_settings, wait_until

LONG_AGO = "2000-01-01T00:00:00.000Z"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with fresh_postgres_database() as url:
        settings = make_settings(tmp_path, url, heartbeat_seconds=0.2, node_timeout_seconds=1.0)
        running = ServerThread(settings).start()
        yield running
        running.stop()


def dead_node_owns(store: Store, execution_id: str, takeovers: int) -> str:
    """Make `execution_id` look like a running execution of a node that died."""
    dead = str(uuid.uuid4())
    store.register_node({"id": dead, "host": "elsewhere", "port": 1, "pid": 1})
    with store.engine.begin() as conn:
        conn.execute(update(nodes).where(nodes.c.id == dead).values(heartbeat_at=LONG_AGO))
        conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values(status="running", node_id=dead, claims=takeovers, started_at=LONG_AGO)
        )
    return dead


def test_a_dead_nodes_execution_goes_on_here_and_a_fifth_takeover_fails(
    server: ServerThread, tmp_path: Path
) -> None:
    assert server.runtime is not None
    store, client = server.runtime.store, server.client()
    marks = tmp_path / "marks"
    plan = [command("first", f"echo first >> {marks}"), command("second", f"echo 2 >> {marks}")]
    survivor = client.create(plan, start=False)
    doomed = client.create([command("never", f"echo never >> {marks}")], start=False)
    with store.engine.begin() as conn:  # `first` finished on the dead node, `second` ran
        conn.execute(
            update(steps)
            .where(steps.c.execution_id == survivor, steps.c.step_id == "first")
            .values(status="completed", output="first\n", exit_code=0)
        )
        conn.execute(
            update(steps)
            .where(steps.c.execution_id == survivor, steps.c.step_id == "second")
            .values(status="running", started_at=LONG_AGO)
        )
    dead = dead_node_owns(store, survivor, takeovers=0)
    dead_node_owns(store, doomed, takeovers=4)

    done = client.wait_for_status(survivor, "completed", timeout=15)
    assert marks.read_text() == "2\n"  # the finished step did not run again
    assert done["node_id"] is None
    listed = {n["node_id"]: n["status"] for n in client.get("/api/nodes").json["nodes"]}
    assert listed[dead] == "dead" and listed[server.runtime.node_id] == "alive"

    failed = client.wait_for_status(doomed, "failed", timeout=15)
    assert "taken over 5 times" in failed["error"]
    assert [s["status"] for s in failed["steps"]] == ["skipped"]
    told = client.get(f"/api/events?execution_id={doomed}&type=step_completed").json["events"]
    assert [(e["payload"]["step_id"], e["payload"]["status"]) for e in told] == [
        ("never", "skipped")
    ]
    assert "never" not in marks.read_text()
    wait_until(lambda: client.get(f"/api/executions/{survivor}").json["status"] == "completed")
