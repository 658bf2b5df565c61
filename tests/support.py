"""Test helpers: a real Synthesis server on a loopback port, a small HTTP client, and
waiting on conditions instead of sleeping."""

from __future__ import annotations

import asyncio
import http.client
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import tornado.netutil

from synthesis.config import Settings
from synthesis.runtime import Runtime
from synthesis.web.app import make_server

T = TypeVar("T")
TOKEN = "test-token"
READ_TOKEN = "read-only-token"


def wait_until(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call `probe` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        threading.Event().wait(interval)
        value = probe()
    return value


def process_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


async def eventually(
    probe: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """On a running loop: call (and await, if it gives an awaitable) `probe` until it
    returns something truthy; fail with its last value. `wait_until` for coroutines."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


class Response:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.raw = body
        self.headers = headers
        self.json: Any = orjson.loads(body) if body else None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.raw[:300]!r}>"


class Client:
    def __init__(self, port: int, token: str | None = TOKEN, prefix: str = "") -> None:
        self.port = port
        self.token = token
        self.prefix = prefix

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = ...,  # type: ignore[assignment]
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        use = self.token if token is ... else token
        if use:
            sent["Authorization"] = f"Bearer {use}"
        payload = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if payload is not None:
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, self.prefix + path, body=payload, headers=sent)
            resp = conn.getresponse()
            return Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    # ---- conveniences over the executions API ----

    def create(self, steps: list[dict[str, Any]], *, start: bool = True, **extra: Any) -> str:
        plan = {"name": extra.pop("name", "test plan"), "steps": steps}
        response = self.post("/api/executions", {"plan": plan, "start": start, **extra})
        assert response.status == 201, response
        return response.json["execution_id"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        response = self.get(f"/api/executions/{execution_id}")
        assert response.status == 200, response
        return response.json

    def wait_for_status(self, execution_id: str, *statuses: str, timeout: float = 15) -> dict:
        wanted = statuses or ("completed", "failed", "cancelled")
        return wait_until(
            lambda: (e := self.execution(execution_id))["status"] in wanted and e, timeout
        )

    def wait_for_step(self, execution_id: str, step_id: str, status: str, timeout: float = 15):
        def probe() -> dict | None:
            step = self.get(f"/api/executions/{execution_id}/steps/{step_id}").json
            return step if step["status"] == status else None

        return wait_until(probe, timeout)


JWT_SECRET = "jwt-test-secret-that-is-long-enough-for-hs256"


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "tokens": (TOKEN, f"{READ_TOKEN}:read"),
        "jwt_secret": JWT_SECRET,
        "kill_grace_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def command(step_id: str, cmd: str, **options: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "command", "parameters": {"command": cmd}, **options}


class ServerThread:
    """A Runtime and an HTTPServer on their own IOLoop thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-server", daemon=True)
        self.fenced: list[str] = []  # a fenced node in a test process must not exit it

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        try:
            self.runtime = Runtime(self.settings, on_fenced=self._fenced)
            await self.runtime.start()
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            self._server = make_server(self.runtime)
            self._server.add_sockets(sockets)
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()
        self._server.stop()
        await self.runtime.stop(self._grace)
        await self._server.close_all_connections()

    def _fenced(self, reason: str) -> None:
        logging.getLogger(__name__).error("test server fenced: %s", reason)
        self.fenced.append(reason)

    def stop(self, grace: float = 0.0) -> None:
        if self._loop is None or not self._thread.is_alive():
            return
        self._grace = grace
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(60)
        assert not self.fenced, f"the test server's node was fenced: {self.fenced}"

    def client(self, token: str | None = TOKEN) -> Client:
        return Client(self.port, token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """A real `synthesis serve` process in `data_dir`, healthy once constructed; `port`
    again after a stop starts the same server again (on SQLite: the same data)."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        preexec_fn: Callable[[], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHESIS_")}
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synthesis",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
            preexec_fn=preexec_fn,
            pass_fds=pass_fds,
        )
        probe = Client(self.port, token=None)

        def healthy() -> bool:
            assert self.process.poll() is None, self.process.stderr.read()
            try:
                return probe.get("/health").status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=20)

    def client(self, token: str) -> Client:
        return Client(self.port, token)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self.process.stdout.close()
            self.process.stderr.close()
