"""Fixtures: store URLs for SQLite and the machine's real PostgreSQL, and servers on both.

PostgreSQL (`SYNTHESIS_TEST_PG`) is required in CI (`CI` set): there an unreachable one
fails every test that needs it. Elsewhere (a laptop without it) those tests are skipped,
each with the one reason `require_postgres` gives, and the rest run."""

from __future__ import annotations

import contextlib
import functools
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

from tests.http_target import HttpTarget
from tests.receiver import Receiver
from tests.support import Client, ServerThread, make_settings

PG_ADMIN = os.environ.get("SYNTHESIS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None. Asked once per test session."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return f"{exc}".strip().splitlines()[0] if f"{exc}".strip() else type(exc).__name__


def require_postgres() -> None:
    """Fail the calling test (in CI) or skip it (elsewhere) when PostgreSQL is unreachable."""
    problem = _postgres_unreachable()
    if problem is None:
        return
    reason = f"PostgreSQL unreachable at SYNTHESIS_TEST_PG={PG_ADMIN}: {problem}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI requires PostgreSQL)", pytrace=False)
    pytest.skip(f"{reason} (set CI=true to make this a failure)")


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards (see `require_postgres`)."""
    require_postgres()
    name = f"synthesis_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_postgres_database() as url:
        yield url


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
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{data_dir / 'synthesis.db'}"
        elif getattr(request.module, "OWN_DATABASE", False):  # counts the whole store
            url = stack.enter_context(fresh_postgres_database())
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
        if os.environ.get("CI"):  # CI runs everything: there, a missing part is a failure
            pytest.fail("--run-as needs the tests to run as root, as CI does")
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


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    """A loopback HTTP server for http steps and invocations (tests/http_target.py)."""
    running = HttpTarget().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A loopback webhook receiver (tests/receiver.py)."""
    running = Receiver().start()
    yield running
    running.stop()
