"""/health really checks its components: a store that is gone makes it unhealthy."""

from __future__ import annotations

import psycopg

from tests.conftest import PG_ADMIN, fresh_postgres_database
from tests.support import ServerThread, make_settings


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
