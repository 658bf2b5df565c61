"""/health really checks its components: a store that is gone makes it unhealthy."""

from __future__ import annotations

import uuid

import psycopg

from tests.conftest import PG_ADMIN
from tests.support import ServerThread, make_settings


def test_health_turns_unhealthy_when_the_database_goes_away(tmp_path) -> None:
    name = f"synthesis_health_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    server = ServerThread(make_settings(tmp_path, url)).start()
    try:
        client = server.client(token=None)
        assert client.get("/health").json["status"] == "healthy"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = client.get("/health")
        assert response.status == 503
        assert response.json["status"] == "unhealthy"
        assert response.json["components"]["storage"] == "unhealthy"
        assert response.json["components"]["execution_engine"] == "healthy"
    finally:
        server.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
