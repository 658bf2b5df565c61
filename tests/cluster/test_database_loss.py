"""Every connection of the cluster to its database killed (`pg_terminate_backend`) while
executions run: the cluster carries on. Running executions complete, new ones run, every
node LISTENs again, and a socket opened before still receives events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.cluster.harness import Cluster, post_marked
from tests.support import TOKEN, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(30)]


def terminate_every_connection(cluster: Cluster) -> int:
    """All the cluster's connections to its database but this admin one; how many."""
    return len(
        cluster.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )


def listening_since(cluster: Cluster, moment: float) -> int:
    """Connections that LISTEN and were opened after `moment` (time.time() scale)."""
    return cluster.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN %%' AND backend_start > to_timestamp(%s)",
        moment,
    )[0][0]


async def until_completed(ws: WebSocketClientConnection, execution_id: str) -> list[str]:
    """The types of the event records the socket sends, through `execution_id`'s end."""
    types: list[str] = []
    while True:
        message = await asyncio.wait_for(ws.read_message(), 15)
        assert message is not None, "the socket was closed"
        record: dict[str, Any] = orjson.loads(message)
        if record.get("execution_id") == execution_id:
            types.append(record["type"])
            if record["type"] == "execution_completed":
                return types


def test_the_cluster_carries_on_after_its_connections_are_killed(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3, max_executions=2)
    watcher = cluster.nodes[1]

    async def scenario() -> list[str]:
        ws = await websocket_connect(f"ws://127.0.0.1:{watcher.port}/ws/events?token={TOKEN}")
        running = [
            post_marked(cluster, cluster.nodes[i % 3].client, f"r{i}", [1.0, 0.3]) for i in range(4)
        ]
        await asyncio.to_thread(wait_until, lambda: len(cluster.attempts()) == 4)
        killed_at = time.time()
        assert await asyncio.to_thread(terminate_every_connection, cluster) >= 3 * 3
        await asyncio.to_thread(cluster.wait_all_ended, running, 15)
        await asyncio.to_thread(wait_until, lambda: listening_since(cluster, killed_at) == 3, 10)
        fresh = post_marked(cluster, cluster.nodes[2].client, "fresh", [0.2])
        return await until_completed(ws, fresh)

    seen = asyncio.run(scenario())
    assert seen[0] == "execution_created" and "step_completed" in seen, seen
    statuses = {
        r["status"]
        for r in cluster.wait_all_ended(
            [row[0] for row in cluster.sql("SELECT id FROM executions")], 5
        ).values()
    }
    assert statuses == {"completed"}
    assert all(node.running() for node in cluster.nodes)
    assert {a.label for a in cluster.attempts()} == {"r0", "r1", "r2", "r3", "fresh"}
