"""GET /api/nodes, and `node_id` on execution records (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid

from synthesis.store.models import executions
from tests.support import READ_TOKEN, Client, ServerThread, command

NODE_FIELDS = {
    "node_id",
    "host",
    "port",
    "pid",
    "started_at",
    "heartbeat_at",
    "status",
    "executions",
}


def test_nodes_lists_this_server_for_a_read_token(server: ServerThread, client: Client) -> None:
    assert server.runtime is not None
    response = client.get("/api/nodes", token=READ_TOKEN)
    assert response.status == 200, response
    assert set(response.json) == {"nodes"}
    [me] = [n for n in response.json["nodes"] if n["node_id"] == server.runtime.node_id]
    assert set(me) == NODE_FIELDS
    assert (me["pid"], me["port"], me["status"]) == (os.getpid(), server.settings.port, "alive")
    assert me["started_at"] <= me["heartbeat_at"]


def test_nodes_needs_a_token_and_takes_no_parameters(client: Client) -> None:
    assert client.get("/api/nodes", token=None).status == 401
    response = client.get("/api/nodes?status=alive")
    assert response.status == 400
    assert response.json["error"]["code"] == "validation_error"


def test_execution_records_name_their_node(server: ServerThread, client: Client) -> None:
    """null while no node runs it; the owner's id once one does (the cluster core sets the
    column; here the test does)."""
    assert server.runtime is not None
    tag = uuid.uuid4().hex
    execution_id = client.create([command("a", "true")], start=False, metadata={"tags": [tag]})

    def listed() -> dict:
        page = client.get(f"/api/executions?tag={tag}").json
        [summary] = page["executions"]
        return summary

    assert client.execution(execution_id)["node_id"] is None
    assert listed()["node_id"] is None
    with server.runtime.store.engine.begin() as conn:
        conn.execute(
            executions.update()
            .where(executions.c.id == execution_id)
            .values(node_id=server.runtime.node_id)
        )
    assert client.execution(execution_id)["node_id"] == server.runtime.node_id
    assert listed()["node_id"] == server.runtime.node_id
