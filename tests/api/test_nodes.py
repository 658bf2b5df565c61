"""GET /api/nodes, and `node_id` on execution records (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid

from tests.support import READ_TOKEN, Client, ServerThread, command, wait_until

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
    """null while no node runs it (created, ended); the node's id while it runs there,
    counted among that node's executions."""
    assert server.runtime is not None
    me = server.runtime.node_id
    tag = uuid.uuid4().hex
    execution_id = client.create([command("a", "sleep 30")], start=False, metadata={"tags": [tag]})

    def listed() -> dict:
        page = client.get(f"/api/executions?tag={tag}").json
        [summary] = page["executions"]
        return summary

    def mine() -> int:
        nodes = client.get("/api/nodes").json["nodes"]
        return next(n["executions"] for n in nodes if n["node_id"] == me)

    assert client.execution(execution_id)["node_id"] is None
    assert listed()["node_id"] is None
    before = mine()
    assert client.post(f"/api/executions/{execution_id}/start").status == 200
    assert client.execution(execution_id)["node_id"] == me
    assert listed()["node_id"] == me
    assert mine() == before + 1
    assert client.post(f"/api/executions/{execution_id}/cancel").status == 200
    client.wait_for_status(execution_id, "cancelled")  # at once; its step stops after
    wait_until(lambda: client.execution(execution_id)["node_id"] is None)
    assert mine() == before
