"""The statements that coordinate nodes (store/cluster.py), on the real PostgreSQL: the
sweep fences a silent node and frees its work in one transaction, never under a
transaction of that node in flight, and every later one is refused; claims take a fair share,
oldest first, never the same row twice; a clean stop counts no takeover; a control
request goes there and back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from synthesis.engine.events import Event
from synthesis.store import Batch, Store, cluster
from synthesis.store.models import executions, invocations, nodes, steps
from synthesis.store.subscription_models import subscriptions
from tests.conftest import fresh_postgres_database
from tests.support import wait_until

LONG_AGO = "2000-01-01T00:00:00.000Z"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    store = Store(database)
    store.create_tables()
    store.delete_everything()
    with store.engine.begin() as conn:
        conn.execute(nodes.delete())
    yield store
    store.close()


def node(store: Store, *, silent: bool = False) -> str:
    node_id = str(uuid.uuid4())
    store.register_node({"id": node_id, "host": "h", "port": 1, "pid": 1})
    if silent:
        with store.engine.begin() as conn:
            conn.execute(update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=LONG_AGO))
    return node_id


def execution(store: Store, owner: str | None, created_at: str, status: str = "running") -> str:
    eid = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            executions.insert().values(
                id=eid,
                name="n",
                status=status,
                plan={},
                variables={},
                meta={},
                created_at=created_at,
                node_id=owner,
            )
        )
        conn.execute(
            steps.insert().values(
                execution_id=eid,
                step_id="a",
                position=0,
                type="command",
                status="running",
                parameters={},
                started_at=created_at,
            )
        )
    return eid


def row(store: Store, table: object, key: str) -> dict[str, object]:
    with store.engine.connect() as conn:
        found = conn.execute(select(table).where(table.c.id == key)).first()  # type: ignore[attr-defined]
        assert found is not None
        return dict(found._mapping)


def test_a_silent_node_is_fenced_and_its_work_freed(store: Store) -> None:
    dead, alive = node(store, silent=True), node(store)
    eid = execution(store, dead, "2026-01-01T00:00:00.000Z")
    paused = execution(store, dead, "2026-01-01T00:00:01.000Z", status="paused")
    invocation, subscription = str(uuid.uuid4()), str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            invocations.insert().values(
                id=invocation,
                integration_id="cli",
                capability_id="run_command",
                status="running",
                parameters={},
                started_at=LONG_AGO,
                node_id=dead,
            )
        )
        conn.execute(
            subscriptions.insert().values(
                id=subscription,
                types=[],
                event_filter={},
                callback_url="http://x",
                created_at=LONG_AGO,
                position=0,
                node_id=dead,
            )
        )

    assert store.coordinate(cluster.sweep, 10.0) == [dead]

    assert row(store, nodes, dead)["fenced"] and not row(store, nodes, alive)["fenced"]
    assert (row(store, executions, eid)["node_id"], row(store, executions, eid)["claims"]) == (
        None,
        1,
    )
    assert row(store, executions, paused)["claims"] == 0  # only running ones are taken over
    assert {s["status"] for s in store.list_steps(eid)} == {"pending"}
    assert {s["status"] for s in store.list_steps(paused)} == {"pending"}
    failed = row(store, invocations, invocation)
    assert failed["status"] == "failed" and "stopped answering" in str(failed["error"])
    told = [e for e in store.events_after(0) if e.type == "invocation_completed"]  # same commit
    assert [(e.data["invocation_id"], e.data["status"]) for e in told] == [(invocation, "failed")]
    assert told[0].data["duration_ms"] is failed["duration_ms"] is None  # ran until it died
    assert row(store, subscriptions, subscription)["node_id"] is None
    with store.engine.begin() as conn, pytest.raises(cluster.Fenced):
        cluster.prove_alive(conn, store.dialect, dead)
    assert store.coordinate(cluster.heartbeat, dead) is False
    assert store.coordinate(cluster.heartbeat, alive) is True
    assert store.coordinate(cluster.sweep, 10.0) == []  # once
    assert [n["status"] for n in store.list_nodes() if n["node_id"] == dead] == ["dead"]


def test_the_sweep_passes_over_a_transaction_in_flight_then_refuses_the_next(
    store: Store,
) -> None:
    """A silent node's bus transaction in flight is neither waited on (the sweep runs on
    the heartbeat thread) nor fenced under it: the node is declared dead once that
    transaction ended, and its next one is refused."""
    slow = node(store)
    with store.engine.connect() as held:  # the slow node's bus, mid-transaction
        transaction = held.begin()
        cluster.prove_alive(held, store.dialect, slow)
        with store.engine.begin() as conn:  # its heartbeat is not held up meanwhile
            started = time.monotonic()
            assert cluster.heartbeat(conn, store.dialect, slow)
            assert time.monotonic() - started < 1
            conn.execute(update(nodes).where(nodes.c.id == slow).values(heartbeat_at=LONG_AGO))
        started = time.monotonic()
        assert store.coordinate(cluster.sweep, 10.0) == []  # passed over, not waited on
        assert time.monotonic() - started < 1
        transaction.commit()  # committed before the fence: kept
    assert store.coordinate(cluster.sweep, 10.0) == [slow]
    with store.engine.begin() as conn, pytest.raises(cluster.Fenced):
        cluster.prove_alive(conn, store.dialect, slow)


def test_claims_take_a_fair_share_oldest_first_never_twice(store: Store) -> None:
    me, _other, _third = node(store), node(store), node(store)
    waiting = [execution(store, None, f"2026-01-01T00:00:0{i}.000Z") for i in range(9)]
    claimed, seen = store.coordinate(cluster.claim_executions, me, 100)
    assert seen == 9
    assert [eid for eid, _ in claimed] == waiting[:3]  # 9 waiting, 3 nodes: 3 each
    claimed, _ = store.coordinate(cluster.claim_executions, me, 1)
    assert [eid for eid, _ in claimed] == waiting[3:4]  # no more than its room

    racers = [node(store) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda n: store.coordinate(cluster.claim_executions, n, 100)[0], racers)
        )
    taken = [eid for result in results for eid, _ in result]
    assert len(taken) == len(set(taken)) == 4  # 5 waiting, 7 nodes: one each, none twice
    assert set(taken) < set(waiting[4:])


def test_a_clean_stop_hands_work_over_without_a_takeover(store: Store) -> None:
    leaving = node(store)
    eid = execution(store, leaving, "2026-01-01T00:00:00.000Z")
    store.coordinate(cluster.leave, leaving)
    assert row(store, nodes, leaving)["fenced"]
    assert (row(store, executions, eid)["node_id"], row(store, executions, eid)["claims"]) == (
        None,
        0,
    )


def test_a_control_request_goes_to_the_owner_and_its_answer_comes_back(store: Store) -> None:
    owner, asker = node(store), node(store)
    request = {
        "id": str(uuid.uuid4()),
        "execution_id": str(uuid.uuid4()),
        "action": "pause",
        "node_id": owner,
        "from_node": asker,
    }
    store.coordinate(cluster.request_control, request)
    assert store.coordinate(cluster.pending_requests, asker) == []
    [pending] = store.coordinate(cluster.pending_requests, owner)
    assert pending["action"] == "pause" and pending["from_node"] == asker
    store.coordinate(cluster.mark_taken, [pending["id"]])
    assert store.coordinate(cluster.pending_requests, owner) == []  # taken once
    assert store.coordinate(cluster.take_answers, [request["id"]]) == {}
    store.coordinate(cluster.answer_request, request["id"], asker, {"value": {"status": "paused"}})
    answers = store.coordinate(cluster.take_answers, [request["id"]])
    assert answers == {request["id"]: {"value": {"status": "paused"}}}
    assert store.coordinate(cluster.take_answers, [request["id"]]) == {}  # read once


def test_a_node_frozen_mid_transaction_cannot_stall_the_others(store: Store, database: str) -> None:
    """SIGSTOP in the middle of a bus transaction: the database ends the frozen session
    (idle in transaction), so its locks go, the others commit, and it is fenced."""
    frozen, other_node = node(store), node(store)
    other = Store(database)
    other.node_id = other_node
    try:
        with store.engine.connect() as held:
            transaction = held.begin()
            cluster.prove_alive(held, store.dialect, frozen)
            held.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": cluster.EVENTS_LOCK})
            with store.engine.begin() as conn:
                conn.execute(
                    update(nodes).where(nodes.c.id == frozen).values(heartbeat_at=LONG_AGO)
                )
            started = time.monotonic()
            [stored] = other.apply([Batch(events=(Event("notification", {"n": 1}),))])
            assert stored[0].seq is not None
            assert time.monotonic() - started < 8  # not until the frozen node wakes
            swept = wait_until(lambda: store.coordinate(cluster.sweep, 10.0), timeout=10)
            assert swept == [frozen]
            with pytest.raises(DBAPIError):  # it wakes: its transaction is gone
                transaction.commit()
    finally:
        other.close()


def test_a_run_whose_cancel_its_dead_node_was_carrying_out_ends_cancelled(store: Store) -> None:
    """Its cancel was stored and answered, its running step not stopped yet, when its node
    died: the sweep ends it cancelled, each step with its event, then the run's end."""
    dead = node(store, silent=True)
    eid = execution(store, dead, "2026-01-01T00:00:00.000Z", status="cancelled")
    with store.engine.begin() as conn:
        conn.execute(
            steps.insert().values(
                execution_id=eid,
                step_id="b",
                position=1,
                type="command",
                status="pending",
                parameters={},
            )
        )
    assert store.coordinate(cluster.sweep, 10.0) == [dead]
    assert {s["step_id"]: s["status"] for s in store.list_steps(eid)} == {
        "a": "cancelled",
        "b": "cancelled",
    }
    told = [(e.type, e.data.get("step_id"), e.data["status"]) for e in store.events_for(eid)]
    assert told == [
        ("step_completed", "a", "cancelled"),
        ("step_completed", "b", "cancelled"),
        ("execution_completed", None, "cancelled"),
    ]
    assert row(store, executions, eid)["node_id"] is None
