"""Lists at scale, in the small: keyset pages, kept counts and bounded totals, and the
upgrade of a database made before them (docs/architecture.md, "Lists")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from synthesis.actors import recording
from synthesis.engine import clock
from synthesis.engine.events import Event
from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from synthesis.store import (
    Batch,
    EventFilter,
    ExecutionFilter,
    ExecutionUpdate,
    PlanDeleted,
    PlanFilter,
    PlanSaved,
    Pruned,
    Store,
    counts,
)
from synthesis.store.models import events, execution_tags, executions, plans
from synthesis.store.paging import CursorNotFound, Page

PLAN = validate_plan(
    {"name": "p", "steps": [{"id": "a", "type": "command", "parameters": {"command": "x"}}]},
    STEP_SCHEMAS,
)
START = datetime(2025, 5, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    return clock.format_time(START + timedelta(seconds=seconds))


def create(store: Store, created_at: str, *tags: str, eid: str | None = None) -> str:
    execution_id = eid or str(uuid.uuid4())
    commit = recording.created(execution_id, PLAN, {}, {"tags": list(tags)}, created_at)
    store.apply([commit.batch])
    return execution_id


def walk(list_page: Any, make: Any, between: Any = None, limit: int = 4) -> list[str]:
    """Every id of a list, page by page through `next` (after=), calling `between` after
    each page; asserts no page repeats an id."""
    seen: list[str] = []
    page: Page = list_page(make(limit=limit))
    while True:
        seen += [ident(r) for r in page.rows]
        if between is not None:
            between()
        if page.next is None:
            break
        page = list_page(make(limit=limit, after=page.next))
    assert len(seen) == len(set(seen))
    return seen


def ident(row: Any) -> str:
    return row.event_id if isinstance(row, Event) else row["id"]


def test_keyset_pages_walk_every_row_once_in_order_while_rows_arrive(store: Store) -> None:
    # ties on created_at are ordered by id; every third carries the tag
    ids = [
        create(store, at(i // 2), *(["t"] if i % 3 == 0 else []), eid=f"e{i:02d}")
        for i in range(23)
    ]
    newest_first = sorted(ids, key=lambda i: (at(int(i[1:]) // 2), i), reverse=True)
    tagged = [i for i in newest_first if int(i[1:]) % 3 == 0]
    arrivals = iter(range(100, 200))

    def arrive() -> None:  # newer rows come in between two pages
        create(store, at(next(arrivals)), "t")

    assert walk(store.list_executions, ExecutionFilter, arrive) == newest_first
    newer = [r["id"] for r in store.list_executions(ExecutionFilter(limit=100)).rows]
    tail = newer[newer.index(newest_first[0]) :]
    assert tail == newest_first  # the arrivals are all newer than the walk

    def by_tag(**kw: Any) -> ExecutionFilter:
        return ExecutionFilter(tag="t", to_date=at(50), **kw)

    assert walk(store.list_executions, by_tag, arrive, limit=3) == tagged
    # events: by seq, and with dates by (timestamp, seq), which here is another order
    told = [Event("notification", {"n": i}, None, timestamp=at((i * 7) % 10)) for i in range(20)]
    store.apply([Batch((), told)])
    every = [e.event_id for e in store.events_after(0)][::-1]
    assert walk(store.list_events, EventFilter, arrive, limit=7) == every

    def dated(**kw: Any) -> EventFilter:
        return EventFilter(from_date=at(0), to_date=at(9), **kw)

    stored = [e for e in store.events_after(0) if e.timestamp <= at(9)]
    in_window = [e.event_id for e in sorted(stored, key=lambda e: (e.timestamp, e.seq))][::-1]
    assert walk(store.list_events, dated, arrive, limit=6) == in_window


def test_before_and_after_are_symmetric(store: Store) -> None:
    for i in range(10):
        create(store, at(i), eid=f"e{i}")
    first = store.list_executions(ExecutionFilter(limit=3))
    assert [r["id"] for r in first.rows] == ["e9", "e8", "e7"]
    assert (first.next, first.previous) == ("e7", None)
    second = store.list_executions(ExecutionFilter(limit=3, after=first.next))
    assert [r["id"] for r in second.rows] == ["e6", "e5", "e4"]
    assert (second.next, second.previous) == ("e4", "e6")
    back = store.list_executions(ExecutionFilter(limit=3, before=second.previous))
    assert [r["id"] for r in back.rows] == [r["id"] for r in first.rows]
    assert (back.next, back.previous) == ("e7", None)
    last = store.list_executions(ExecutionFilter(limit=3, after="e3"))
    assert [r["id"] for r in last.rows] == ["e2", "e1", "e0"] and last.next is None
    newer = store.list_executions(ExecutionFilter(limit=3, before="e2"))
    assert [r["id"] for r in newer.rows] == ["e5", "e4", "e3"]
    assert (newer.next, newer.previous) == ("e3", "e5")
    with pytest.raises(CursorNotFound) as unknown:
        store.list_executions(ExecutionFilter(before="nope"))
    assert unknown.value.field == "before"
    with pytest.raises(CursorNotFound):
        store.list_plans(PlanFilter(after="e1"))  # an execution's id is no plan's


def real_counts(store: Store) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        found = {("plans", ""): conn.execute(select(func.count()).select_from(plans)).scalar()}
        for name, column in (("executions", executions.c.status), ("events", events.c.type)):
            for key, n in conn.execute(select(column, func.count()).group_by(column)):
                found[name, key] = n
    return {k: v for k, v in found.items() if v}


def kept_counts(store: Store) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(counts.row_counts))
        return {(r.name, r.key): r.n for r in rows if r.n}


def test_kept_counts_equal_a_real_count_through_every_kind_of_change(store: Store) -> None:
    old, done, running = (create(store, at(i)) for i in range(3))
    days_ago = clock.format_time(datetime.now(UTC) - timedelta(days=30))
    # a creation and its status changes in one transaction, and a no-op status change
    fresh = recording.created("fresh", PLAN, {}, {}, at(5)).batch
    store.apply(
        [
            fresh,
            Batch(
                [
                    ExecutionUpdate("fresh", {"status": "running"}),
                    ExecutionUpdate(done, {"status": "running"}),
                    ExecutionUpdate(running, {"status": "running"}),
                ],
                [Event("notification", {}, None, timestamp=days_ago)],
            ),
            Batch(
                [
                    ExecutionUpdate("fresh", {"status": "completed"}),
                    ExecutionUpdate(done, {"status": "completed", "completed_at": clock.now()}),
                    ExecutionUpdate(old, {"status": "failed", "completed_at": days_ago}),
                    ExecutionUpdate(running, {"status": "running"}),
                ]
            ),
        ]
    )
    row = {"id": "p1", "name": "p", "description": None, "document": {}, "meta": {}}
    row |= {"created_by": None, "created_at": at(1)}
    store.apply([Batch([PlanSaved(row, ("a",), created=True)])])
    store.apply([Batch([PlanSaved({**row, "id": "p2"}, (), created=True)])])
    store.apply([Batch([PlanSaved(row, ("b",), created=False)])])  # replaced: still one
    store.apply([Batch([PlanDeleted("p2")]), Batch([PlanDeleted("p2")])])  # once is enough
    assert kept_counts(store) == real_counts(store)
    failing = [ExecutionUpdate(done, {"status": "cancelled"}), PlanDeleted("p1")]
    again = recording.created(old, PLAN, {}, {}, at(0)).batch  # its id is taken
    with pytest.raises(IntegrityError):  # a failing commit changes no count either
        store.apply([Batch(failing, [Event("notification", {}, None)]), again])
    assert kept_counts(store) == real_counts(store)
    # retention: the old finished execution with its events, and old events
    cutoff = clock.format_time(datetime.now(UTC) - timedelta(days=10))
    store.apply([Batch([Pruned(older_than=cutoff, keep_events=2)])])
    assert store.get_execution(old) is None
    assert kept_counts(store) == real_counts(store)
    assert store.list_executions(ExecutionFilter(status="completed")).total == 2
    assert store.list_events(EventFilter()).total == 2
    assert store.list_plans(PlanFilter()).total == 1


def test_filtered_totals_count_up_to_a_bound_and_say_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counts, "BOUND", 3)
    for i in range(8):
        create(store, at(i), "t")
    page = store.list_executions(ExecutionFilter(tag="t", limit=2))
    assert (page.total, page.total_exact) == (4, False)  # at least 4
    assert store.list_executions(ExecutionFilter(limit=2)).total_exact  # a kept count
    middle = store.list_executions(ExecutionFilter(tag="t", limit=2, offset=4))
    assert (middle.total, middle.total_exact) == (7, False)  # the page proves 4 + 2 + 1
    end = store.list_executions(ExecutionFilter(tag="t", limit=5, offset=5))
    assert (end.total, end.total_exact, len(end.rows)) == (8, True, 3)  # the end, seen
    beyond = store.list_executions(ExecutionFilter(tag="t", offset=20))
    assert (beyond.total, beyond.total_exact, beyond.rows) == (4, False, [])
    few = store.list_executions(ExecutionFilter(tag="t", from_date=at(6)))
    assert (few.total, few.total_exact) == (2, True)


def test_a_database_made_before_lists_at_scale_is_upgraded_at_start(store: Store) -> None:
    """Without the counts table, the new indexes and the tags' created_at, as the
    previous version left it: a start adds them and counts what is there."""
    ids = [create(store, at(i), "t", eid=f"e{i}") for i in range(5)]
    store.apply([Batch([ExecutionUpdate("e1", {"status": "completed"})])])
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE row_counts"))
        conn.execute(text("DROP INDEX ix_execution_tags_tag_created"))
        conn.execute(text("ALTER TABLE execution_tags DROP COLUMN created_at"))
        conn.execute(text("DROP INDEX ix_events_type_seq"))
        conn.execute(text("CREATE INDEX ix_events_type ON events (type)"))
    try:
        store.create_tables()
    finally:
        store.create_tables()  # the shared PostgreSQL database stays whole either way
    with store.engine.connect() as conn:
        found = {i["name"] for i in inspect(conn).get_indexes("events")}
        tagged = conn.execute(select(execution_tags.c.created_at).order_by("created_at"))
        assert list(tagged.scalars()) == [at(i) for i in range(5)]
    assert "ix_events_type_seq" in found and "ix_events_type" not in found
    assert (
        kept_counts(store)
        == real_counts(store)
        == {
            ("executions", "created"): 4,
            ("executions", "completed"): 1,
            ("events", "execution_created"): 5,
        }
    )
    assert [r["id"] for r in store.list_executions(ExecutionFilter(tag="t")).rows] == ids[::-1]
