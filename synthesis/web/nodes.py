"""/api/nodes: the servers of the cluster on this database (docs/cluster.md)."""

from __future__ import annotations

from synthesis.web.base import ApiHandler


class NodesHandler(ApiHandler):
    async def get(self) -> None:
        self.query(())
        self.send({"nodes": await self.read(self.runtime.store.list_nodes)})


default_handlers = [(r"/api/nodes", NodesHandler)]
