"""The store on SQLite and on the machine's real PostgreSQL: the same code, the same answers."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from synthesis.actors import recording
from synthesis.config import ConfigError
from synthesis.engine import clock
from synthesis.engine.cursor import EventCursor
from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import Event
from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from synthesis.store import (
    Batch,
    ExecutionFilter,
    ExecutionUpdate,
    IdempotencyKeySaved,
    StepUpdate,
    Store,
    steps_reset,
)
from synthesis.store.idempotency import KEY_TTL, find_key, idempotency_keys
from synthesis.store.models import events as events_table


def new_execution(
    store: Store, created_at: str, step_ids: tuple[str, ...] = ("a", "b"), **metadata: object
) -> str:
    execution_id = str(uuid.uuid4())
    commands = "xyz"
    plan = validate_plan(
        {
            "name": "p",
            "steps": [
                {"id": step_id, "type": "command", "parameters": {"command": commands[i]}}
                for i, step_id in enumerate(step_ids)
            ],
        },
        STEP_SCHEMAS,
    )
    commit = recording.created(execution_id, plan, {"v": 1}, metadata, created_at)
    store.apply([commit.batch])
    return execution_id


def test_round_trip_keeps_json_and_order(store: Store) -> None:
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z", tags=["x"], created_by="u")
    row = store.get_execution(execution_id)
    assert row["plan"]["steps"][1]["parameters"] == {"command": "y"}
    assert row["variables"] == {"v": 1}
    assert row["meta"] == {"tags": ["x"], "created_by": "u"}
    assert [s["step_id"] for s in store.list_steps(execution_id)] == ["a", "b"]
    store.ping()


def test_a_get_by_id_reads_what_sqlalchemy_reads(store: Store) -> None:
    """execution_and_steps reads through the driver's cursor (store/lookups.py): the same
    dicts as SQLAlchemy's rows, JSON decoded, NULLs kept, steps in position order."""
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z", tags=["x"])
    attempts = [{"attempt": 1, "status": "failed", "error": "e", "exit_code": 2}]
    change = {"status": "failed", "attempts": attempts, "exit_code": 2, "output": "ö\n"}
    store.apply([Batch([StepUpdate(execution_id, "b", change)])])
    row, rows = store.execution_and_steps(execution_id)
    assert row == store.get_execution(execution_id)
    assert rows == store.list_steps(execution_id)
    assert [r["step_id"] for r in rows] == ["a", "b"]
    assert (rows[0]["attempts"], rows[1]["attempts"]) == (None, attempts)
    assert row["variables"] == {"v": 1} and row["meta"] == {"tags": ["x"]}
    assert store.execution_and_steps("no-such-id") == (None, [])
    assert store.execution_and_steps(execution_id, most=2) == (row, rows)
    assert store.execution_and_steps(execution_id, most=1) == (row, None)  # more than that
    assert store.execution_and_steps("no-such-id", most=1) == (None, [])
    # position order, whatever order the keys have
    backwards = new_execution(store, "2025-05-01T10:00:00.000Z", step_ids=("z", "m", "a"))
    _, ordered = store.execution_and_steps(backwards, most=3)
    assert ordered == store.list_steps(backwards)
    assert [r["step_id"] for r in ordered or []] == ["z", "m", "a"]


def test_batches_apply_in_one_transaction_and_number_events(store: Store) -> None:
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z")
    first = Batch(
        [ExecutionUpdate(execution_id, {"status": "running"})],
        [
            Event("step_started", {"n": 1}, execution_id),
            Event("step_output", {"n": 2}, execution_id),
        ],
    )
    second = Batch(
        [StepUpdate(execution_id, "a", {"status": "running"})],
        [Event("step_output", {"n": 3}, execution_id)],
    )
    numbered = store.apply([first, second])
    assert [len(events) for events in numbered] == [2, 1]
    seqs = [e.seq for events in numbered for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    stored = store.events_for(execution_id)
    assert [e.data.get("n") for e in stored][-3:] == [1, 2, 3]
    assert store.execution_status(execution_id) == "running"


def test_each_numbered_event_is_its_stored_row(store: Store) -> None:
    """The seqs an apply hands back (the events' order for every reader and socket) are
    the stored rows' own, every field as stored, across transactions."""
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z")
    numbered: list[Event] = []
    for round_ in range(2):
        first = [
            Event("step_output", {"text": "ö ✓", "nested": {"a": [1, None]}}, execution_id),
            Event("notification", {"round": round_}),  # no execution
        ]
        second = [Event("step_output", {"n": round_}, execution_id)]
        batches = store.apply([Batch([], first), Batch([], second)])
        numbered += [e for batch in batches for e in batch]
    with store.engine.connect() as conn:
        rows = {row.seq: row for row in conn.execute(select(events_table))}
    assert [e.seq for e in numbered] == sorted(rows)[-len(numbered) :]
    for e in numbered:
        row = rows[e.seq]
        stored = (row.event_id, row.type, row.timestamp, row.execution_id, row.payload)
        assert stored == (e.event_id, e.type, e.timestamp, e.execution_id, dict(e.data))


def test_a_failing_change_rolls_back_its_whole_transaction(store: Store) -> None:
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z")
    duplicate = recording.created(
        execution_id,
        validate_plan(
            {
                "name": "p",
                "steps": [{"id": "a", "type": "command", "parameters": {"command": "x"}}],
            },
            STEP_SCHEMAS,
        ),
        {},
        {},
        "2025-05-01T10:00:00.000Z",
    )
    update = Batch([ExecutionUpdate(execution_id, {"status": "paused"})])
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error
        store.apply([update, duplicate.batch])
    assert store.execution_status(execution_id) == "created"


def test_steps_reset_only_touches_running_steps(store: Store) -> None:
    execution_id = new_execution(store, "2025-05-01T10:00:00.000Z")
    store.apply(
        [
            Batch(
                [
                    StepUpdate(execution_id, "a", {"status": "completed", "output": "kept"}),
                    StepUpdate(
                        execution_id,
                        "b",
                        {
                            "status": "running",
                            "output": "partial",
                            "started_at": "2025-05-01T10:00:01.000Z",
                        },
                    ),
                ]
            )
        ]
    )
    store.apply([Batch([steps_reset(execution_id)])])
    a, b = store.list_steps(execution_id)
    assert (a["status"], a["output"]) == ("completed", "kept")
    assert (b["status"], b["output"], b["started_at"]) == ("pending", None, None)


def test_list_filters(store: Store) -> None:
    old = new_execution(store, "2025-01-01T00:00:00.000Z", tags=["a", "b"], created_by="ann")
    mid = new_execution(store, "2025-06-01T00:00:00.000Z", tags=["b"], created_by="bob")
    new = new_execution(store, "2025-12-01T00:00:00.000Z", created_by="ann")

    def ids(**kw: object) -> tuple[int, list[str]]:
        page = store.list_executions(ExecutionFilter(**kw))
        return page.total, [r["id"] for r in page.rows]

    assert ids() == (3, [new, mid, old])
    assert ids(tag="b") == (2, [mid, old])
    assert ids(created_by="ann") == (2, [new, old])
    assert ids(from_date="2025-06-01T00:00:00.000Z") == (2, [new, mid])
    assert ids(to_date="2025-06-01T00:00:00.000Z") == (2, [mid, old])
    assert ids(status="created", limit=1, offset=1) == (3, [mid])
    assert ids(tag="nope") == (0, [])


def test_a_cursor_replays_from_the_store_what_its_selector_selects(store: Store) -> None:
    """events_after narrows in SQL by types and execution exactly as the selector does;
    the cursor checks payload keys and reads on past pages with nothing it wants."""
    one, two = new_execution(store, "2025-01-01T00:00:00.000Z"), str(uuid.uuid4())
    store.apply(
        [
            Batch(
                events=[Event("step_output", {"n": n}, one if n % 2 else two) for n in range(12)]
                + [Event("notification", {"n": 3}, one), Event("plan_created", {"n": 3})]
            )
        ]
    )
    stored = store.events_after(0, limit=10_000)
    selectors = [
        EventSelector(),
        EventSelector.of(["notification", "plan_created"]),
        EventSelector(execution_id=one),
        EventSelector.of(["step_output"], two),
        EventSelector.of(payload={"n": 3}),
        EventSelector(types=frozenset()),
    ]
    for selector in selectors:
        narrowed = store.events_after(0, selector, limit=10_000)
        if not selector.payload:
            assert narrowed == [e for e in stored if selector.matches(e)], selector
        cursor = EventCursor(0, selector, page_size=2)
        handed: list[Event] = []
        while not cursor.caught_up:
            cursor.page(store.events_after(cursor.position, selector, limit=cursor.page_size))
            handed += cursor.drain()
        assert handed == [e for e in stored if selector.matches(e)], selector


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()


def test_a_sqlite_file_is_held_by_one_store_until_it_closes(tmp_path, postgres_url) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    first, second = Store(url), Store(url)
    try:
        first.hold()
        with pytest.raises(
            ConfigError, match=rf"one\.db is in use by another server \(pid {os.getpid()}\)"
        ):
            second.hold()
        first.close()  # releases it
        second.hold()
    finally:
        first.close()
        second.close()
    on_postgresql = [Store(postgres_url), Store(postgres_url)]  # a cluster's: nothing to hold
    for store in on_postgresql:
        store.hold()
    for store in on_postgresql:
        store.close()


def test_plain_postgresql_urls_use_psycopg_3(postgres_url: str) -> None:
    store = Store(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert store.engine.dialect.driver == "psycopg"
        store.create_tables()
        store.ping()
    finally:
        store.close()


def test_an_older_database_gains_the_columns_a_newer_version_added(store: Store) -> None:
    """Upgrading keeps what is stored: missing columns are added, rows get the default."""
    from sqlalchemy import insert, select, text

    from synthesis.store.subscription_models import subscriptions

    sid = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            insert(subscriptions).values(
                id=sid,
                types=[],
                event_filter={},
                callback_url="http://x",
                created_at="t",
                position=0,
            )
        )
        for column in ("status", "paused_reason"):  # as a version before them made it
            conn.execute(text(f'ALTER TABLE subscriptions DROP COLUMN "{column}"'))
    try:
        store.create_tables()
    finally:
        store.create_tables()  # the shared PostgreSQL database stays whole either way
    with store.engine.connect() as conn:
        row = conn.execute(select(subscriptions).where(subscriptions.c.id == sid)).one()
    assert (row.status, row.paused_reason, row.callback_url) == ("active", None, "http://x")


def test_a_column_that_cannot_be_filled_is_refused_with_a_clear_message() -> None:
    from sqlalchemy import Column, Integer
    from sqlalchemy.dialects import sqlite

    from synthesis.store.database import SchemaMismatch, _add_column

    with pytest.raises(SchemaMismatch, match="lacks column 'n'"):
        _add_column("t", Column("n", Integer, nullable=False), sqlite.dialect())


# ---- idempotency keys: live for a day, then replaced or pruned ----


def hours_ago(hours: float) -> str:
    return clock.format_time(datetime.now(UTC) - timedelta(hours=hours))


def save(store: Store, principal: str, key: str, at: str, body: dict[str, str]) -> None:
    row = {
        "principal": principal,
        "key": key,
        "fingerprint": "f" * 64,
        "status": 201,
        "response": body,
        "created_at": at,
    }
    expired = clock.format_time(datetime.now(UTC) - KEY_TTL)
    store.apply([Batch((IdempotencyKeySaved(row, expired),))])


def test_a_live_key_is_found_and_cannot_be_saved_twice(store: Store) -> None:
    principal = f"token:{uuid.uuid4().hex}"
    save(store, principal, "k", hours_ago(1), {"first": "yes"})
    found = find_key(store, principal, "k", hours_ago(24))
    assert found is not None and found["response"] == {"first": "yes"}
    assert find_key(store, f"token:{uuid.uuid4().hex}", "k", hours_ago(24)) is None
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        save(store, principal, "k", hours_ago(0), {"second": "no"})


def test_an_expired_key_is_not_found_and_is_replaced_and_old_ones_are_pruned(store: Store) -> None:
    principal = f"token:{uuid.uuid4().hex}"
    for name in ("k", "old-1", "old-2"):
        save(store, principal, name, hours_ago(25), {"stale": name})
    assert find_key(store, principal, "k", hours_ago(24)) is None
    save(store, principal, "k", hours_ago(0), {"fresh": "yes"})
    found = find_key(store, principal, "k", hours_ago(24))
    assert found is not None and found["response"] == {"fresh": "yes"}
    with store.engine.connect() as conn:
        left = conn.execute(
            idempotency_keys.select().where(idempotency_keys.c.principal == principal)
        ).all()
    assert [row.key for row in left] == ["k"]  # the expired ones went with the new save
