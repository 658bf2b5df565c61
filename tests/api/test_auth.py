"""Authentication and scopes on every route; /health open."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.support import JWT_SECRET, READ_TOKEN, Client, ServerThread, command

ROUTES = [
    ("GET", "/api/executions"),
    ("POST", "/api/executions"),
    ("GET", "/api/executions/x"),
    ("POST", "/api/executions/x/start"),
    ("POST", "/api/executions/x/pause"),
    ("POST", "/api/executions/x/resume"),
    ("POST", "/api/executions/x/cancel"),
    ("GET", "/api/executions/x/steps"),
    ("GET", "/api/executions/x/steps/y"),
    ("GET", "/api/executions/x/variables"),
]


def make_jwt(**claims: object) -> str:
    payload = {"sub": "alice", "scope": "read write", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token", "Basic abc"])
def test_every_route_needs_a_valid_token(
    server: ServerThread, method: str, path: str, token: str | None
) -> None:
    client = server.client(token=None)
    headers = (
        {"Authorization": token if token.startswith("Basic") else f"Bearer {token}"}
        if token
        else {}
    )
    response = client.request(method, path, headers=headers)
    assert response.status == 401
    assert response.json["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_read_token_reads_but_cannot_write(server: ServerThread) -> None:
    reader = server.client(token=READ_TOKEN)
    assert reader.get("/api/executions").status == 200
    response = reader.post(
        "/api/executions", {"plan": {"name": "p", "steps": [command("a", "true")]}}
    )
    assert response.status == 403
    assert response.json["error"]["code"] == "permission_denied"


def test_jwt_subject_becomes_created_by(server: ServerThread) -> None:
    client = server.client(token=make_jwt())
    execution_id = client.create([command("a", "true")], start=False)
    assert client.execution(execution_id)["metadata"]["created_by"] == "alice"
    # An explicit created_by in the body wins.
    other = client.create([command("a", "true")], start=False, metadata={"created_by": "bob"})
    assert client.execution(other)["metadata"]["created_by"] == "bob"


def test_jwt_scopes_are_enforced(server: ServerThread) -> None:
    reader = server.client(token=make_jwt(scope="read"))
    assert reader.get("/api/executions").status == 200
    assert reader.post("/api/executions", {}).status == 403


@pytest.mark.parametrize(
    "token",
    [
        make_jwt(exp=int(time.time()) - 10),
        jwt.encode(
            {"sub": "a", "scope": "read", "exp": int(time.time()) + 60},
            "other-secret-that-is-long-enough!!",
            algorithm="HS256",
        ),
        jwt.encode({"sub": "a", "scope": "read"}, JWT_SECRET, algorithm="HS256"),  # no exp
        "a.b.c",
    ],
    ids=["expired", "wrong-secret", "no-exp", "garbage"],
)
def test_bad_jwts_are_rejected(server: ServerThread, token: str) -> None:
    response = server.client(token=token).get("/api/executions")
    assert response.status == 401
    assert response.json["error"]["code"] == "unauthenticated"


def test_health_is_open_and_checks_components(server: ServerThread) -> None:
    response = server.client(token=None).get("/health")
    assert response.status == 200
    body = response.json
    assert body["status"] == "healthy"
    assert body["components"] == {
        "api": "healthy",
        "execution_engine": "healthy",
        "storage": "healthy",
        "event_system": "healthy",
        "cluster": "healthy",
    }
    assert isinstance(body["uptime"], int) and body["version"]


def test_unknown_route_without_token_is_still_json(server: ServerThread) -> None:
    client: Client = server.client(token=None)
    response = client.get("/nowhere")
    assert response.status == 404
    assert response.json["error"]["code"] == "not_found"
