"""/api/nodes: the servers of the cluster on this database (docs/cluster.md)."""

from __future__ import annotations

from typing import Any

from synthesis.store.cluster import ALIVE, DEAD
from synthesis.web.base import ApiHandler
from synthesis.web.declare import TEXT, TIMESTAMP, Endpoint, ref, shape

SCHEMAS: dict[str, dict[str, Any]] = {
    "Node": shape(
        {
            "node_id": {"type": "string", "description": "New at every start of a server"},
            "host": TEXT,
            "port": {"type": "integer"},
            "pid": {"type": "integer"},
            "started_at": TIMESTAMP,
            "heartbeat_at": {**TIMESTAMP, "description": "Its last heartbeat"},
            "status": {"enum": [ALIVE, DEAD]},
            "executions": {
                "type": "integer",
                "minimum": 0,
                "description": "The running executions it owns",
            },
        }
    ),
    "NodeList": shape({"nodes": {"type": "array", "items": ref("Node")}}),
}


class NodesHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/nodes",
            "listNodes",
            "System",
            "The servers of the cluster on this database, oldest first: the living, "
            "and those dead for less than an hour",
            ok=(200, "The nodes", "NodeList"),
        ),
    )

    async def get(self) -> None:
        self.query()
        self.send({"nodes": await self.read(self.runtime.store.list_nodes)})


default_handlers = [(r"/api/nodes", NodesHandler)]
