"""A WebSocket on node B following an execution that runs on node A sees exactly the
messages a socket on A sees."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.cluster.harness import Cluster, Node, marked_step
from tests.support import TOKEN

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(30)]


def follow(node: Node, execution_id: str) -> Any:
    url = f"ws://127.0.0.1:{node.port}/ws/executions/{execution_id}?token={TOKEN}"
    return websocket_connect(url)


async def read_all(ws: WebSocketClientConnection, timeout: float = 15) -> list[dict[str, Any]]:
    """Every message until the server closes the socket (after the execution's end)."""
    messages = []
    while (message := await asyncio.wait_for(ws.read_message(), timeout)) is not None:
        messages.append(orjson.loads(message))
    return messages


def test_a_socket_on_another_node_sees_the_same_messages(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, max_executions=4)
    runner, watcher = cluster.nodes
    talk = "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done"
    steps = [
        marked_step(cluster, "watched", "first", 0.2),
        {"id": "talk", "type": "command", "parameters": {"command": talk}, "depends_on": ["first"]},
    ]
    execution = runner.client.create(steps, start=False)

    async def watch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        on_runner = await follow(runner, execution)
        on_watcher = await follow(watcher, execution)
        started = runner.client.post(f"/api/executions/{execution}/start")
        assert started.status == 200, started
        return await asyncio.gather(read_all(on_runner), read_all(on_watcher))

    seen_on_runner, seen_on_watcher = asyncio.run(watch())
    assert [a.node for a in cluster.attempts()] == [runner.name]  # it ran on A
    types = [m["type"] for m in seen_on_runner]
    assert types.count("step_output") >= 5 and types[-1] == "execution_completed", types
    assert seen_on_watcher == seen_on_runner
