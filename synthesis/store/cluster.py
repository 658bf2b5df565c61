"""The statements that coordinate nodes through the database (docs/cluster.md).

A node is one running server: a row in `nodes`, new at every start, kept alive by its
heartbeat. Time is always the database's (`clock_timestamp()` on PostgreSQL), written as
the same fixed-width ISO text as every other timestamp, so nodes on hosts whose clocks
disagree still agree on who is dead. These statements run outside the event bus (they
coordinate, they record nothing a user asked for), each on the thread named in its
docstring.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, text, update

from synthesis.engine import events as ev
from synthesis.engine.events import Event
from synthesis.store import counts
from synthesis.store.changes import RESET_FIELDS
from synthesis.store.counts import Deltas
from synthesis.store.models import (
    control_requests,
    events,
    executions,
    invocations,
    nodes,
    steps,
)
from synthesis.store.subscription_models import subscriptions

ALIVE = "alive"
DEAD = "dead"
DEAD_LISTED_SECONDS = 3600.0  # a dead node stays in GET /api/nodes this long

MAX_TAKEOVERS = 5  # an execution freed from dead nodes this often fails instead
EVENTS_CHANNEL = "synthesis_events"  # payload: the last seq stored
WORK_CHANNEL = "synthesis_work"  # executions or subscriptions wait for an owner
CONTROL_CHANNEL = "synthesis_control"  # payload: the node that should look at its requests
ANSWER_CHANNEL = "synthesis_answers"  # payload: the node whose request was answered
SUBSCRIPTIONS_CHANNEL = "synthesis_subscriptions"  # subscriptions changed or lost their node
CHANNELS = (EVENTS_CHANNEL, WORK_CHANNEL, CONTROL_CHANNEL, ANSWER_CHANNEL, SUBSCRIPTIONS_CHANNEL)
EVENTS_LOCK = 0x53594E45  # "SYNE": held from the event insert to commit, so seq = commit order
PRUNE_LOCK = 0x53594E50  # "SYNP": one node prunes at a time


class Fenced(RuntimeError):
    """This node was declared dead: nothing it writes may be kept."""


_PG_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


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


def notify(conn: Connection, dialect: str, channel: str, payload: str = "") -> None:
    """Sent when the transaction commits; ids and seqs only, never payloads."""
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


def prove_alive(conn: Connection, dialect: str, node_id: str) -> None:
    """The first statement of every bus transaction on PostgreSQL: the node row is held
    (FOR KEY SHARE) until commit, so the sweep declaring it dead (which locks the row FOR
    UPDATE first) waits for this transaction, and every later one raises `Fenced`. The
    heartbeat's plain UPDATE does not conflict with it, so a busy bus never delays it."""
    if dialect != "postgresql":
        return
    alive = conn.execute(
        select(nodes.c.id)
        .where(nodes.c.id == node_id, nodes.c.fenced.is_(False))
        .with_for_update(read=True, key_share=True)
    ).first()
    if alive is None:
        raise Fenced(f"node {node_id} was declared dead")


def heartbeat(conn: Connection, dialect: str, node_id: str) -> bool:
    """False once the node is fenced. Heartbeat thread, on its own connection."""
    result = conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id, nodes.c.fenced.is_(False))
        .values(heartbeat_at=db_now(dialect))
    )
    return result.rowcount == 1


def sweep(conn: Connection, dialect: str, timeout: float) -> list[str]:
    """Declare dead the nodes silent for `timeout` seconds and free their work, in one
    transaction; forget nodes dead for an hour. Heartbeat thread, any node.

    The rows are locked FOR UPDATE before they are marked, skipping a node whose bus
    transaction is in flight (`prove_alive` holds its row): such a node is declared dead
    once that transaction ends, committed, or ended by the database when the node froze
    in it (`idle_in_transaction_session_timeout`). So a sweep never waits on a frozen
    node (it runs on the heartbeat thread), and no fenced node's transaction commits."""
    if dialect == "postgresql":  # the events lock, at most briefly: retried next sweep
        conn.execute(text("SET LOCAL lock_timeout = '500ms'"))
    silent = and_(nodes.c.fenced.is_(False), nodes.c.heartbeat_at < db_now(dialect, timeout))
    dead = list(
        conn.execute(select(nodes.c.id).where(silent).with_for_update(skip_locked=True))
        .scalars()
        .all()
    )
    if dead:
        dead = list(
            conn.execute(
                update(nodes)
                .where(nodes.c.id.in_(dead), silent)
                .values(fenced=True, fenced_at=db_now(dialect))
                .returning(nodes.c.id)
            ).scalars()
        )
    if dead:
        free_work(conn, dialect, dead, "its node stopped answering", takeover=True)
    conn.execute(
        delete(nodes).where(
            nodes.c.fenced.is_(True), nodes.c.fenced_at < db_now(dialect, DEAD_LISTED_SECONDS)
        )
    )
    return dead


def leave(conn: Connection, dialect: str, node_id: str) -> None:
    """A node that stops cleanly hands its work over at once."""
    conn.execute(
        update(nodes).where(nodes.c.id == node_id).values(fenced=True, fenced_at=db_now(dialect))
    )
    free_work(conn, dialect, [node_id], "its node stopped", takeover=False)


def fence_all_but(conn: Connection, dialect: str, node_id: str) -> list[str]:
    """SQLite: the file lock proves no other server runs, so every other node is dead."""
    dead = list(
        conn.execute(
            update(nodes)
            .where(nodes.c.fenced.is_(False), nodes.c.id != node_id)
            .values(fenced=True, fenced_at=db_now(dialect))
            .returning(nodes.c.id)
        ).scalars()
    )
    if dead:
        free_work(conn, dialect, dead, "the server stopped", takeover=True)
    return dead


def free_work(conn: Connection, dialect: str, dead: list[str], why: str, *, takeover: bool) -> None:
    """The nodes' executions lose their owner (their running steps go back to pending;
    with `takeover`, a death rather than a clean stop, each running one counts one), their
    subscriptions their lease, and their running invocations fail (with their events)."""
    _finish_cancelled(conn, dialect, dead)
    owned = select(executions.c.id).where(executions.c.node_id.in_(dead)).scalar_subquery()
    conn.execute(
        update(steps)
        .where(steps.c.execution_id.in_(owned), steps.c.status == "running")
        .values(dict(RESET_FIELDS))
    )
    if takeover:
        conn.execute(
            update(executions)
            .where(executions.c.node_id.in_(dead), executions.c.status == "running")
            .values(node_id=None, claims=executions.c.claims + 1)
        )
    conn.execute(update(executions).where(executions.c.node_id.in_(dead)).values(node_id=None))
    conn.execute(
        update(subscriptions).where(subscriptions.c.node_id.in_(dead)).values(node_id=None)
    )
    _fail_invocations(conn, dialect, dead, f"interrupted: {why}")
    conn.execute(
        delete(control_requests).where(
            control_requests.c.node_id.in_(dead) | control_requests.c.from_node.in_(dead)
        )
    )
    notify(conn, dialect, WORK_CHANNEL)
    notify(conn, dialect, SUBSCRIPTIONS_CHANNEL)


def _finish_cancelled(conn: Connection, dialect: str, dead: list[str]) -> None:
    """A cancel is stored (status `cancelled`) before the run ends (its running steps stop
    first): the runs the nodes were ending so end here, their unended steps cancelled,
    each with its event, then `execution_completed`."""
    ending = list(
        conn.execute(
            select(executions.c.id).where(
                executions.c.node_id.in_(dead), executions.c.status == "cancelled"
            )
        ).scalars()
    )
    told: list[Event] = []
    for eid in ending:
        marked = conn.execute(
            update(steps)
            .where(steps.c.execution_id == eid, steps.c.status.in_(("running", "pending")))
            .values(status="cancelled", completed_at=db_now(dialect))
            .returning(steps.c.step_id, steps.c.position)
        ).all()
        marked.sort(key=lambda row: row.position)
        told += [ev.step_completed(eid, row.step_id, "cancelled", None) for row in marked]
        told.append(
            ev.execution_event(ev.EXECUTION_COMPLETED, eid, status="cancelled", duration_ms=None)
        )
    insert_events(conn, dialect, told)


def insert_events(
    conn: Connection, dialect: str, told: list[Event], also: Deltas | None = None
) -> list[Event]:
    """Store events in this transaction, numbered: on PostgreSQL under the events lock,
    held until commit (so seq = commit order), and the other nodes woken at commit. Then
    the counts move (store/counts.py): the events' and `also`, the transaction's other
    changes, last, so count rows are only ever locked after the events lock."""
    deltas: Deltas = Counter()
    deltas.update(also or {})
    if not told:
        counts.add(conn, deltas)
        return []
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK})
    result = conn.execute(
        insert(events).returning(events.c.seq, sort_by_parameter_order=True),
        [
            {
                "event_id": e.event_id,
                "type": e.type,
                "timestamp": e.timestamp,
                "execution_id": e.execution_id,
                "payload": dict(e.data),
            }
            for e in told
        ],
    )
    numbered = [replace(e, seq=seq) for e, seq in zip(told, result.scalars(), strict=True)]
    deltas.update(("events", e.type) for e in told)
    counts.add(conn, deltas)
    notify(conn, dialect, EVENTS_CHANNEL, str(numbered[-1].seq))
    return numbered


def _fail_invocations(conn: Connection, dialect: str, dead: list[str], error: str) -> None:
    """The nodes' running invocations fail, each with its `invocation_completed` event in
    the same transaction. Their duration is unknown (they ran until their node died, not
    until now): null in the row and the event alike."""
    ended = conn.execute(
        update(invocations)
        .where(invocations.c.node_id.in_(dead), invocations.c.status == "running")
        .values(status="failed", error=error, completed_at=db_now(dialect))
        .returning(
            invocations.c.id,
            invocations.c.integration_id,
            invocations.c.capability_id,
            invocations.c.started_at,
        )
    ).all()
    ended.sort(key=lambda row: (row.started_at, row.id))
    insert_events(
        conn, dialect, [ev.invocation_completed(r._mapping, "failed", None) for r in ended]
    )


def wake_claimers(conn: Connection, dialect: str) -> None:
    """An execution waits for a node with room."""
    notify(conn, dialect, WORK_CHANNEL)


def wake_lessees(conn: Connection, dialect: str) -> None:
    """A subscription changed: the node delivering it looks at it again."""
    notify(conn, dialect, SUBSCRIPTIONS_CHANNEL)


def alive_nodes(conn: Connection) -> int:
    return conn.execute(select(func.count()).where(nodes.c.fenced.is_(False))).scalar_one()


def _fair_share(waiting: int, alive: int, room: int) -> int:
    return min(room, max(1, math.ceil(waiting / max(alive, 1))))


def claim_executions(
    conn: Connection, dialect: str, node_id: str, room: int
) -> tuple[list[tuple[str, int]], int]:
    """Take up to a fair share of the running executions no node owns, oldest first:
    `(id, takeovers)` of each, and how many waited. Supervisor thread."""
    waiting = conn.execute(
        select(func.count()).where(executions.c.status == "running", executions.c.node_id.is_(None))
    ).scalar_one()
    if not waiting or room <= 0:
        return [], waiting
    share = _fair_share(waiting, alive_nodes(conn), room)
    rows = _take_oldest(conn, dialect, node_id, executions, share, executions.c.status == "running")
    return [(row.id, row.claims) for row in rows], waiting


def _take_oldest(
    conn: Connection, dialect: str, node_id: str, table: Any, count: int, *waiting: Any
) -> list[Any]:
    """Give `node_id` up to `count` of `table`'s rows that no node owns and match
    `waiting`, oldest first, passing over those another node is taking at this moment:
    each row as updated (`id` and, for executions, `claims`)."""
    pick = (
        select(table.c.id)
        .where(table.c.node_id.is_(None), *waiting)
        .order_by(table.c.created_at, table.c.id)
        .limit(count)
    )
    if dialect == "postgresql":
        prove_alive(conn, dialect, node_id)
        pick = pick.with_for_update(skip_locked=True)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return []
    taken = [table.c.id, *([table.c.claims] if "claims" in table.c else [])]
    return list(
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.node_id.is_(None))
            .values(node_id=node_id)
            .returning(*taken)
        )
    )


def take_execution(conn: Connection, dialect: str, node_id: str, execution_id: str) -> str | None:
    """Own one execution no node owns and that has not ended (to answer a control
    request for it): its status as taken, or None when another node has it."""
    prove_alive(conn, dialect, node_id)
    return conn.execute(
        update(executions)
        .where(
            executions.c.id == execution_id,
            executions.c.node_id.is_(None),
            executions.c.status.not_in(("completed", "failed", "cancelled")),
        )
        .values(node_id=node_id)
        .returning(executions.c.status)
    ).scalar_one_or_none()


def lease_subscriptions(conn: Connection, dialect: str, node_id: str) -> list[str]:
    """Lease a fair share of the subscriptions no node delivers. Subscription
    supervisor thread."""
    waiting = conn.execute(
        select(func.count()).where(subscriptions.c.node_id.is_(None))
    ).scalar_one()
    if not waiting:
        return []
    total = conn.execute(select(func.count()).select_from(subscriptions)).scalar_one()
    mine = conn.execute(select(func.count()).where(subscriptions.c.node_id == node_id)).scalar_one()
    share = max(1, math.ceil(total / max(alive_nodes(conn), 1))) - mine
    if share <= 0:
        return []
    return [row.id for row in _take_oldest(conn, dialect, node_id, subscriptions, share)]


def leased_subscriptions(conn: Connection, dialect: str, node_id: str) -> set[str]:
    return set(
        conn.execute(select(subscriptions.c.id).where(subscriptions.c.node_id == node_id)).scalars()
    )


def owner_of(conn: Connection, dialect: str, execution_id: str) -> tuple[str, str | None] | None:
    """`(status, node_id)` of an execution, or None if unknown."""
    row = conn.execute(
        select(executions.c.status, executions.c.node_id).where(executions.c.id == execution_id)
    ).first()
    return (row.status, row.node_id) if row else None


# ---- control requests: start, pause, resume, cancel for an execution another node owns


def request_control(conn: Connection, dialect: str, request: dict[str, Any]) -> None:
    """`request`: id, execution_id, action, node_id (the owner), from_node."""
    conn.execute(insert(control_requests).values(**request, created_at=db_now(dialect)))
    notify(conn, dialect, CONTROL_CHANNEL, request["node_id"])


def pending_requests(conn: Connection, dialect: str, node_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(control_requests)
        .where(control_requests.c.node_id == node_id, control_requests.c.answered.is_(False))
        .order_by(control_requests.c.created_at)
    )
    return [dict(row._mapping) for row in rows]


def mark_taken(conn: Connection, dialect: str, request_ids: list[str]) -> None:
    conn.execute(
        update(control_requests).where(control_requests.c.id.in_(request_ids)).values(answered=True)
    )


def answer_request(
    conn: Connection, dialect: str, request_id: str, from_node: str, answer: Any
) -> None:
    conn.execute(
        update(control_requests).where(control_requests.c.id == request_id).values(answer=answer)
    )
    notify(conn, dialect, ANSWER_CHANNEL, from_node)


def take_answers(conn: Connection, dialect: str, request_ids: list[str]) -> dict[str, Any]:
    """The answers that came, for these requests; their rows are deleted."""
    rows = conn.execute(
        select(control_requests.c.id, control_requests.c.answer).where(
            control_requests.c.id.in_(request_ids), control_requests.c.answer.is_not(None)
        )
    ).all()
    if rows:
        conn.execute(
            delete(control_requests).where(control_requests.c.id.in_([r.id for r in rows]))
        )
    return {row.id: row.answer for row in rows}


def forget_requests(
    conn: Connection, dialect: str, request_ids: list[str], taken_too: bool
) -> list[str]:
    """Withdraw requests that had no answer: those the owner has not taken yet (so it
    never will), and with `taken_too` the others as well. The ids withdrawn."""
    condition = control_requests.c.id.in_(request_ids)
    if not taken_too:
        condition = condition & control_requests.c.answered.is_(False)
    return list(
        conn.execute(
            delete(control_requests).where(condition).returning(control_requests.c.id)
        ).scalars()
    )
