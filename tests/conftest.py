"""Fixtures: store URLs for SQLite and the machine's real PostgreSQL, and servers on both.

PostgreSQL is never skipped: a test run that cannot reach it fails."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import Client, ServerThread, make_settings

PG_ADMIN = os.environ.get("SYNTHESIS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"synthesis_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'synthesis.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, object]:
    """Settings a test module wants changed for its server: override this fixture."""
    return {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    server_overrides: dict[str, object],
) -> Iterator[ServerThread]:
    """One real server per test module and store; tests keep to their own executions."""
    data_dir = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'synthesis.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    running = ServerThread(make_settings(data_dir, url, **server_overrides)).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: ServerThread) -> Client:
    return server.client()


STEP_USER = "synthesis-test-step"


@pytest.fixture(scope="session")
def step_user() -> str:
    """An unprivileged user for --run-as, made if this machine lacks it."""
    if os.geteuid() != 0:
        pytest.skip("--run-as needs the tests to run as root")
    try:
        pwd.getpwnam(STEP_USER)
    except KeyError:
        if shutil.which("useradd") is None and not os.environ.get("CI"):
            pytest.skip("useradd not found")
        subprocess.run(["useradd", "--system", "--no-create-home", STEP_USER], check=True)
    return STEP_USER


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's own tmp dirs are private)."""
    path = Path(tempfile.mkdtemp(prefix="synthesis-run-as-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)
