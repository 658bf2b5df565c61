"""The HTTP edge under a careless client or an attacker: refusals before the body is read
(401, 413), overlong URLs (414), values nested too deep (refused at parse, and never
stored half-way: nothing runs that is not stored), integer query parameters, JWT issuer
and audience, and CORS."""

from __future__ import annotations

import http.client
import os
import queue
import select
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import orjson
import psutil
import pytest

from synthesis.actors.messages import CreateExecution
from synthesis.cli import build_parser
from synthesis.config import ConfigError, Settings
from synthesis.engine.nesting import too_deep, too_deep_message
from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from tests.http_target import HttpTarget
from tests.support import (
    JWT_SECRET,
    READ_TOKEN,
    TOKEN,
    Client,
    Response,
    ServeProcess,
    ServerThread,
    command,
    free_port,
    make_settings,
)

ORIGIN = "https://app.example"
ISSUER, AUDIENCE = "https://auth.example", "synthesis"
LIMIT = 1024 * 1024  # max_body_bytes


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, object]:
    return {"cors_origins": (ORIGIN,), "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


def send_head(port: int, method: str, target: str, headers: dict[str, object]) -> socket.socket:
    """A connection that has sent a request's line and headers, and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return sock


def response_on(sock: socket.socket) -> Response:
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return Response(reply.status, reply.read(), {k.lower(): v for k, v in reply.getheaders()})


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    assert response.json["error"]["code"] == code, response


# ---- early refusal --------------------------------------------------------------------


def test_a_body_without_a_token_is_answered_before_it_is_sent(server: ServerThread) -> None:
    sock = send_head(
        server.port,
        "POST",
        "/api/executions",
        {"Content-Type": "application/json", "Content-Length": 15_000_000},
    )
    with sock:
        sock.sendall(b"x" * 65536)  # and not one byte more: the answer comes regardless
        assert_error(response_on(sock), 401, "unauthenticated")


def test_unauthenticated_bodies_cost_the_server_no_memory(tmp_path: Path) -> None:
    """The issue's case: twelve 15 MB POSTs without a token, sent in full and at once.
    Each hears its 401; the server drops the bodies as they come (RSS measured on a
    server process of its own)."""
    server = ServeProcess(tmp_path, "--token", "t")
    process = psutil.Process(server.process.pid)
    body = b"x" * 15_000_000
    try:
        before = process.memory_info().rss
        with ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(
                    lambda _: Client(server.port, None).post("/api/plans", raw=body), range(12)
                )
            )
        grown = process.memory_info().rss - before
    finally:
        assert server.stop() == 0
    for answer in answers:
        assert_error(answer, 401, "unauthenticated")
    assert grown < 30_000_000, f"RSS grew by {grown >> 20} MiB"


def test_a_client_that_never_finishes_its_request_head_is_disconnected(tmp_path: Path) -> None:
    """Slow-header clients: a head not finished within the idle timeout is dropped."""
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", http_idle_timeout_seconds=0.5
    )
    server = ServerThread(settings).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            sock.settimeout(10)
            began = time.monotonic()
            assert sock.recv(1024) == b""  # the server closed the connection
            assert time.monotonic() - began < 5
    finally:
        server.stop()


@pytest.mark.parametrize("declared", [2 * LIMIT, 200_000_000])
def test_a_declared_length_over_the_limit_is_413_before_the_body(
    server: ServerThread, declared: int
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Length": declared}
    with send_head(server.port, "POST", "/api/executions", headers) as sock:
        response = response_on(sock)
    assert_error(response, 413, "payload_too_large")
    assert str(LIMIT) in response.json["error"]["message"]


def test_a_chunked_body_is_refused_with_413_as_it_grows_past_the_limit(
    server: ServerThread,
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"}
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    with send_head(server.port, "POST", "/api/plans", headers) as sock:
        while sent < 3 * LIMIT and not select.select([sock], [], [], 0.01)[0]:
            sock.sendall(chunk)
            sent += 65536
        response = response_on(sock)  # answered before the body's last chunk
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [(None, 401, "unauthenticated"), (READ_TOKEN, 403, "permission_denied")],
)
def test_a_client_that_sends_its_whole_body_anyway_still_hears_why(
    server: ServerThread, token: str | None, status: int, code: str
) -> None:
    """A refused body a client goes on sending (up to 16 MiB) is read and dropped, so the
    client gets the answer, not a reset."""
    response = server.client(token).post("/api/executions", raw=b"x" * 5_000_000)
    assert_error(response, status, code)
    too_big = server.client().post("/api/executions", raw=b" " * (LIMIT + 1))
    assert_error(too_big, 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/api/executions", "/ws/events", "/nowhere", "/health"])
def test_an_overlong_url_is_414(client: Client, path: str) -> None:
    assert_error(client.get(f"{path}?pad={'x' * 100_000}"), 414, "uri_too_long")


def test_a_malformed_content_length_is_a_validation_error(server: ServerThread) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Length": "1_0"}
    with send_head(server.port, "POST", "/api/plans", headers) as sock:
        response = response_on(sock)
    assert_error(response, 400, "validation_error")
    assert response.json["error"]["details"][0]["field"] == "Content-Length"


# ---- one nesting limit --------------------------------------------------------------------


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def with_deep_value(body: dict[str, Any], levels: int) -> bytes:
    """`body` as JSON with its "DEEP" string replaced by arrays nested `levels` deep."""
    return orjson.dumps(body).replace(b'"DEEP"', nested(levels).encode())


def executions_total(client: Client) -> int:
    return client.get("/api/executions?limit=1").json["total"]


WHERE = {
    "variables": ({"variables": {"v": "DEEP"}}, [], "variables.v"),
    "metadata": ({"metadata": {"v": "DEEP"}}, [], "metadata.v"),
    "http json": (
        {},
        [{"id": "h", "type": "http", "parameters": {"url": "http://127.0.0.1:9/", "json": "DEEP"}}],
        "plan.steps[1].parameters.json",
    ),
    "notify data": (
        {},
        [{"id": "n", "type": "notify", "parameters": {"message": "m", "data": "DEEP"}}],
        "plan.steps[1].parameters.data",
    ),
}


@pytest.mark.parametrize("levels", [70, 300])
@pytest.mark.parametrize("where", list(WHERE))
def test_a_value_nested_too_deep_is_refused_and_nothing_runs(
    client: Client, tmp_path: Path, where: str, levels: int
) -> None:
    extra, steps, field = WHERE[where]
    marker = tmp_path / "ran"
    plan = {"name": "deep", "steps": [command("touch", f"touch {marker}"), *steps]}
    before = executions_total(client)
    response = client.post(
        "/api/executions", raw=with_deep_value({"plan": plan, "start": True, **extra}, levels)
    )
    assert_error(response, 400, "validation_error")
    (detail,) = response.json["error"]["details"]
    assert detail["field"].startswith(field + "[0]"), detail
    assert "nested deeper than 64 levels" in detail["message"]
    # a run created after it ends before we look: the refused one would have run first
    client.wait_for_status(client.create([command("after", "true")]))
    assert not marker.exists()
    assert executions_total(client) == before + 1


def test_sixty_four_levels_are_accepted_and_sixty_five_are_not(client: Client) -> None:
    plan = {"name": "deep", "steps": [command("a", "true")]}
    # the body is level 1 and metadata level 2: `v` may nest 62 levels
    fits = client.post(
        "/api/executions", raw=with_deep_value({"plan": plan, "metadata": {"v": "DEEP"}}, 62)
    )
    assert fits.status == 201, fits
    over = client.post(
        "/api/executions", raw=with_deep_value({"plan": plan, "metadata": {"v": "DEEP"}}, 63)
    )
    assert_error(over, 400, "validation_error")
    assert over.json["error"]["details"][0]["field"] == "metadata.v" + "[0]" * 62


def test_an_execution_the_store_refuses_never_runs(
    server: ServerThread, client: Client, tmp_path: Path
) -> None:
    """Rule 8 at the supervisor: an execution's actor starts only once its create is
    stored. (A value the store cannot write, sent past the web layer's checks.)"""
    marker = tmp_path / "ran"
    plan = validate_plan(
        {"name": "ghost", "steps": [command("touch", f"touch {marker}")]}, STEP_SCHEMAS
    )
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    answers: queue.Queue[object] = queue.Queue()
    execution_id = str(uuid.uuid4())
    assert server.runtime is not None
    server.runtime.supervisor.tell(
        CreateExecution(execution_id, plan, {}, {"v": deep}, True, answers.put)
    )
    assert isinstance(answers.get(timeout=10), BaseException)
    client.wait_for_status(client.create([command("after", "true")]))
    assert not marker.exists()
    assert client.get(f"/api/executions/{execution_id}").status == 404


def test_a_response_nested_too_deep_fails_its_step_and_the_run_is_stored(
    client: Client, target: HttpTarget
) -> None:
    step = {"id": "h", "type": "http", "parameters": {"url": f"{target.url}/deep/300"}}
    done = client.wait_for_status(client.create([step]))
    assert done["status"] == "failed"
    (recorded,) = done["steps"]
    assert recorded["status"] == "failed"
    assert recorded["error"].startswith("output.body[0][0]")
    assert "nested deeper than 64 levels" in recorded["error"]


def test_an_invocation_answer_nested_too_deep_is_a_failed_invocation(
    client: Client, target: HttpTarget
) -> None:
    response = client.post(
        "/api/integrations/api/capabilities/http_get",
        {"parameters": {"url": f"{target.url}/deep/300"}},
    )
    assert response.status == 201, response
    assert response.json["status"] == "failed"
    assert "nested deeper than 64 levels" in response.json["error"]


def test_a_variable_nested_too_deep_fails_its_step(client: Client) -> None:
    wrap = {"operation": "set", "name": "x", "value": ["${x}"]}  # one level more each time
    loop = {
        "id": "wrap",
        "type": "loop",
        "parameters": {
            "count": 10,
            "steps": [{"id": "w", "type": "variable", "parameters": wrap}],
        },
    }
    start = orjson.loads(nested(62))  # the most a body lets `variables.x` be
    done = client.wait_for_status(client.create([loop], variables={"x": start}))
    assert done["status"] == "failed"
    failed = [s for s in done["steps"] if s["status"] == "failed" and s["id"] != "wrap"]
    assert [s["id"] for s in failed] == ["wrap[2].w"]
    assert failed[0]["error"] == "x" + "[0]" * 64 + ": " + too_deep_message()
    kept = client.get(f"/api/executions/{done['execution_id']}/variables").json["variables"]
    assert too_deep(kept["x"], limit=63) and not too_deep(kept["x"])  # left at 64 levels


# ---- item 10: integers, JWTs, CORS --------------------------------------------------------


@pytest.mark.parametrize("value", ["٣", " 5", "5 ", "1_0", "+1", "-1", "0x10", "1e2", ""])
@pytest.mark.parametrize("name", ["limit", "offset"])
def test_integer_query_parameters_take_ascii_digits_only(
    client: Client, name: str, value: str
) -> None:
    for path in ("/api/executions", "/api/events", "/api/plans"):
        response = client.get(f"{path}?{name}={urllib.parse.quote(value)}")
        assert_error(response, 400, "validation_error")
        assert [d["field"] for d in response.json["error"]["details"]] == [name]


def make_jwt(**claims: object) -> str:
    payload = {"sub": "alice", "scope": "read", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def test_jwts_must_carry_the_configured_issuer_and_audience(server: ServerThread) -> None:
    def status(token: str) -> int:
        return server.client(token).get("/api/executions?limit=1").status

    assert status(make_jwt(iss=ISSUER, aud=AUDIENCE)) == 200
    assert status(make_jwt(iss=ISSUER, aud=[AUDIENCE, "other"])) == 200
    assert status(make_jwt(aud=AUDIENCE)) == 401  # no issuer
    assert status(make_jwt(iss=ISSUER)) == 401  # no audience
    assert status(make_jwt(iss="https://elsewhere", aud=AUDIENCE)) == 401
    assert status(make_jwt(iss=ISSUER, aud="someone-else")) == 401


def test_a_short_jwt_secret_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Settings(jwt_secret="x" * 31)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHESIS_")}
    env["SYNTHESIS_JWT_SECRET"] = "too-short-secret"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "synthesis",
            "serve",
            *("--port", str(free_port())),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "SYNTHESIS_JWT_SECRET is too short: it needs at least 32 bytes" in line
    assert "too-short-secret" not in result.stderr + result.stdout


def test_the_new_settings_come_from_flags_and_the_environment() -> None:
    args = build_parser().parse_args(
        [
            *("serve", "--jwt-issuer", "i", "--jwt-audience", "a"),
            *("--cors-origin", "https://a.example", "--cors-origin", "https://b.example"),
            *("--websocket-buffer-bytes", "4096"),
        ]
    )
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    settings = Settings.from_sources(flags, {})
    assert (settings.jwt_issuer, settings.jwt_audience) == ("i", "a")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.websocket_buffer_bytes == 4096
    environ = {
        "SYNTHESIS_JWT_ISSUER": "ei",
        "SYNTHESIS_JWT_AUDIENCE": "ea",
        "SYNTHESIS_CORS_ORIGINS": "https://c.example, https://d.example",
        "SYNTHESIS_WEBSOCKET_BUFFER_BYTES": "8192",
    }
    settings = Settings.from_sources({}, environ)
    assert (settings.jwt_issuer, settings.jwt_audience) == ("ei", "ea")
    assert settings.cors_origins == ("https://c.example", "https://d.example")
    assert settings.websocket_buffer_bytes == 8192
    with pytest.raises(ConfigError, match="SYNTHESIS_WEBSOCKET_BUFFER_BYTES"):
        Settings.from_sources({}, {"SYNTHESIS_WEBSOCKET_BUFFER_BYTES": "lots"})


def test_cors_answers_the_configured_origins_only(server: ServerThread, client: Client) -> None:
    allowed = client.get("/api/executions?limit=1", headers={"Origin": ORIGIN})
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in allowed.headers["vary"]
    refused = server.client(None).get("/api/executions", headers={"Origin": ORIGIN})
    assert_error(refused, 401, "unauthenticated")  # and the page can read why
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    other = client.get("/api/executions?limit=1", headers={"Origin": "https://evil.example"})
    assert other.status == 200
    assert not [h for h in other.headers if h.startswith("access-control-")]


def test_a_preflight_from_an_allowed_origin_needs_no_token(server: ServerThread) -> None:
    ask = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    anonymous = server.client(None)
    preflight = anonymous.request("OPTIONS", "/api/executions", headers=ask)
    assert preflight.status == 204, preflight
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-methods"] == "GET, POST, PUT, DELETE"
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {
        h.strip() for h in allowed_headers.split(",")
    }
    elsewhere = anonymous.request(
        "OPTIONS", "/api/executions", headers={**ask, "Origin": "https://evil.example"}
    )
    assert elsewhere.status == 401
    assert "access-control-allow-origin" not in elsewhere.headers


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    plain = ServerThread(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")).start()
    try:
        response = plain.client().get("/api/executions", headers={"Origin": ORIGIN})
        assert response.status == 200
        assert not [h for h in response.headers if h.startswith("access-control-")]
        assert "vary" not in response.headers
    finally:
        plain.stop()
