"""The statements that coordinate nodes through the database (docs/cluster.md).

A node is one running server: a row in `nodes`, new at every start, kept alive by its
heartbeat. Time is always the database's (`clock_timestamp()` on PostgreSQL), written as
the same fixed-width ISO text as every other timestamp, so nodes on hosts whose clocks
disagree still agree on who is dead. These statements run outside the event bus (they
coordinate, they record nothing a user asked for), each on the thread named in its
docstring.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from synthesis.store.models import executions, nodes

ALIVE = "alive"
DEAD = "dead"
DEAD_LISTED_SECONDS = 3600.0  # a dead node stays in GET /api/nodes this long

_PG_FORMAT = "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\""


def db_now(dialect: str, minus_seconds: float = 0.0) -> Any:
    """The database clock, as stored timestamp text, `minus_seconds` ago."""
    if dialect == "postgresql":
        moment = func.clock_timestamp() - func.make_interval(0, 0, 0, 0, 0, 0, minus_seconds)
        return func.to_char(func.timezone("UTC", moment), _PG_FORMAT)
    return func.strftime("%Y-%m-%dT%H:%M:%fZ", "now", f"-{minus_seconds:.3f} seconds")


def register_node(conn: Connection, dialect: str, node: dict[str, Any]) -> None:
    """A new node's row, its start and first heartbeat on the database clock."""
    now = db_now(dialect)
    conn.execute(nodes.insert().values(**node, started_at=now, heartbeat_at=now, fenced=False))


def list_nodes(conn: Connection, dialect: str) -> list[dict[str, Any]]:
    """Living nodes and those dead for less than an hour, oldest first, each with the
    running executions it owns. Web read pool."""
    running = (
        select(executions.c.node_id, func.count().label("n"))
        .where(executions.c.status == "running", executions.c.node_id.is_not(None))
        .group_by(executions.c.node_id)
        .subquery()
    )
    rows = conn.execute(
        select(nodes, func.coalesce(running.c.n, 0).label("executions"))
        .outerjoin(running, running.c.node_id == nodes.c.id)
        .where(
            (nodes.c.fenced.is_(False))
            | (nodes.c.fenced_at >= db_now(dialect, DEAD_LISTED_SECONDS))
        )
        .order_by(nodes.c.started_at, nodes.c.id)
    )
    return [
        {
            "node_id": row.id,
            "host": row.host,
            "port": row.port,
            "pid": row.pid,
            "started_at": row.started_at,
            "heartbeat_at": row.heartbeat_at,
            "status": DEAD if row.fenced else ALIVE,
            "executions": int(row.executions),
        }
        for row in rows
    ]


__all__ = ["ALIVE", "DEAD", "db_now", "list_nodes", "register_node"]
