"""/health really checks its components: a store that is gone makes it unhealthy."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg

from synthesis.web import system
from tests.conftest import PG_ADMIN, fresh_postgres_database
from tests.support import ServerThread, make_settings, wait_until


def test_health_turns_unhealthy_when_the_database_goes_away(tmp_path) -> None:
    with fresh_postgres_database() as url:
        server = ServerThread(make_settings(tmp_path, url)).start()
        try:
            client = server.client(token=None)
            assert client.get("/health").json["status"] == "healthy"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            response = client.get("/health")
            assert response.status == 503
            assert response.json["status"] == "unhealthy"
            assert response.json["components"]["storage"] == "unhealthy"
            assert response.json["components"]["execution_engine"] == "healthy"
        finally:
            server.stop()


def test_a_broken_sqlite_store_is_unhealthy_and_probes_at_once_share_one_check(tmp_path) -> None:
    """The storage check reads a table (O(1), not a count of the executions), and probes
    that arrive while a check runs get that check's answer: one store round trip."""
    server = ServerThread(make_settings(tmp_path, f"sqlite:///{tmp_path / 'synthesis.db'}"))
    server.start()
    try:
        client = server.client(token=None)
        store = server.runtime.store
        real_ping, pings, release = store.ping, [], threading.Event()

        def held_ping() -> None:
            pings.append(1)
            release.wait(5)
            real_ping()

        store.ping = held_ping
        checks = system._CHECKS.setdefault(server.runtime, system.Checks(server.runtime))
        asked, components = [], checks.components

        async def counted() -> dict[str, str]:
            asked.append(1)
            return await components()

        checks.components = counted
        with ThreadPoolExecutor(8) as pool:
            probes = [pool.submit(client.get, "/health") for _ in range(8)]
            wait_until(lambda: len(asked) == 8)  # all in while the first check is held
            release.set()
            answers = [p.result() for p in probes]
        assert [a.status for a in answers] == [200] * 8
        assert len(pings) == 1
        store.ping = real_ping

        with sqlite3.connect(tmp_path / "synthesis.db") as conn:
            conn.execute("DROP TABLE row_counts")
        response = client.get("/health")
        assert response.status == 503
        assert response.json["components"]["storage"] == "unhealthy"
        assert response.json["components"]["execution_engine"] == "healthy"
    finally:
        server.stop()
