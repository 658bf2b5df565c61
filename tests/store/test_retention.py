"""Retention prunes old events and finished executions in the background, keeping the rest."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from synthesis.actors import recording
from synthesis.engine import clock
from synthesis.engine.events import Event
from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from synthesis.store import Batch, ExecutionUpdate
from tests.conftest import fresh_postgres_database
from tests.support import ServerThread, command, make_settings, wait_until

PLAN = validate_plan({"name": "p", "steps": [command("a", "true")]}, STEP_SCHEMAS)


def days_ago(days: float) -> str:
    return clock.format_time(datetime.now(UTC) - timedelta(days=days))


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database of its own: pruning must not touch other tests' rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_old_events_and_finished_executions_are_pruned(tmp_path, own_database: str) -> None:
    settings = make_settings(
        tmp_path,
        own_database,
        retention_days=7,
        retention_interval_seconds=0.05,
    )
    server = ServerThread(settings).start()
    store = server.runtime.store
    try:
        old, recent, running = "old-execution", "recent-execution", "old-but-running"
        for eid in (old, recent, running):
            store.apply([recording.created(eid, PLAN, {}, {}, days_ago(30)).batch])
        store.apply(
            [
                Batch(
                    [
                        ExecutionUpdate(old, {"status": "completed", "completed_at": days_ago(20)}),
                        ExecutionUpdate(
                            recent, {"status": "completed", "completed_at": days_ago(1)}
                        ),
                        ExecutionUpdate(running, {"status": "running"}),
                    ],
                    [
                        Event("notification", {"n": 1}, None, timestamp=days_ago(10)),
                        Event("notification", {"n": 2}, None, timestamp=days_ago(2)),
                    ],
                )
            ]
        )

        def pruned() -> bool:
            return store.get_execution(old) is None and not any(
                e.data.get("n") == 1 for e in store.events_after(0)
            )

        wait_until(pruned)
        assert store.list_steps(old) == []
        assert store.get_execution(recent) is not None
        assert store.get_execution(running) is not None  # never pruned while unfinished
        assert any(e.data.get("n") == 2 for e in store.events_after(0))
    finally:
        server.stop()


def test_event_count_is_capped(tmp_path, own_database: str) -> None:
    settings = make_settings(
        tmp_path,
        own_database,
        retention_events=10,
        retention_interval_seconds=0.05,
    )
    server = ServerThread(settings).start()
    store = server.runtime.store
    try:
        store.apply([Batch([], [Event("notification", {"n": i}, None) for i in range(50)])])
        wait_until(lambda: len(store.events_after(0)) <= 10)
        assert [e.data["n"] for e in store.events_after(0)] == list(range(40, 50))
    finally:
        server.stop()
