"""MCP through the Integrations API and as plan steps, against the real test MCP server
(tests/integrations/mcp_server.py) over stdio."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psutil

from tests.support import Client, command, wait_until

SERVER = {
    "command": sys.executable,
    "args": [str(Path(__file__).parent.parent / "integrations" / "mcp_server.py"), "stdio"],
}


def invoke(client: Client, capability: str, **parameters: Any):
    return client.post(
        f"/api/integrations/mcp/capabilities/{capability}", {"parameters": parameters}
    )


def test_mcp_is_listed_with_its_capabilities(client: Client) -> None:
    mcp = client.get("/api/integrations/mcp").json
    assert mcp["name"] == "Machine Control Protocol"
    assert {"connect", "disconnect", "send_command", "receive_response"} <= set(mcp["capabilities"])
    assert mcp["parameters"]["send_command"]["method"]["required"] is True


def test_connect_send_receive_disconnect(client: Client) -> None:
    connected = invoke(client, "connect", server=SERVER)
    assert connected.status == 201, connected
    connection_id = connected.json["output"]["connection_id"]

    tools = invoke(client, "send_command", connection_id=connection_id, method="tools/list").json
    assert tools["status"] == "completed"
    assert {"add", "echo", "fail"} <= {t["name"] for t in tools["output"]["tools"]}

    added = invoke(
        client,
        "send_command",
        connection_id=connection_id,
        method="tools/call",
        params={"name": "add", "arguments": {"a": 2, "b": 3}},
    ).json
    assert added["status"] == "completed", added
    received = invoke(client, "receive_response", connection_id=connection_id).json
    assert received["status"] == "completed"

    pid = invoke(
        client,
        "send_command",
        connection_id=connection_id,
        method="tools/call",
        params={"name": "pid", "arguments": {}},
    ).json["output"]
    server_pid = int(pid["content"][0]["text"])
    assert psutil.pid_exists(server_pid)

    assert invoke(client, "disconnect", connection_id=connection_id).json["status"] == "completed"
    wait_until(
        lambda: (
            not psutil.pid_exists(server_pid)
            or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
        )
    )
    after = invoke(client, "send_command", connection_id=connection_id, method="tools/list")
    assert after.json["status"] == "failed" or after.status == 502


def test_unreachable_server_is_an_integration_error(client: Client) -> None:
    response = invoke(client, "connect", server={"command": "/no/such/mcp-server"})
    assert response.status == 502
    assert response.json["error"]["code"] == "integration_error"
    assert "/no/such/mcp-server" in response.json["error"]["message"]


def test_mcp_step_puts_the_tool_result_in_its_output(client: Client) -> None:
    execution_id = client.create(
        [
            {
                "id": "sum",
                "type": "mcp",
                "parameters": {
                    "server": SERVER,
                    "tool": "add",
                    "arguments": {"a": 20, "b": "${b}"},
                },
            },
            command("show", "echo ${sum_output.text}"),
            {"id": "broken", "type": "mcp", "parameters": {"server": SERVER, "tool": "fail"}},
        ],
        variables={"b": 22},
    )
    done = client.wait_for_status(execution_id, timeout=30)
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["sum"]["status"] == "completed"
    assert steps["show"]["output"] == "42\n"
    assert steps["broken"]["status"] == "failed"
    assert "always fails" in steps["broken"]["error"]
    assert done["status"] == "failed"
