"""`Idempotency-Key` on creates: the same key and request get the first answer and create
nothing more; the same key with another request is refused; a create whose answer was
lost (503) and is retried with its key gets what it created, never a duplicate."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support import (
    JWT_SECRET,
    Client,
    Response,
    ServerThread,
    command,
    make_settings,
    wait_until,
)


def key() -> str:
    return f"key-{uuid.uuid4()}"


def tagged(tag: str, **extra: Any) -> dict[str, Any]:
    plan = {
        "name": "idempotent",
        "steps": [{"id": "n", "type": "notify", "parameters": {"message": "hi"}}],
    }
    return {"plan": plan, "metadata": {"tags": [tag]}, **extra}


def total(client: Client, what: str, tag: str) -> int:
    return client.get(f"/api/{what}?tag={tag}").json["total"]


def post(client: Client, path: str, body: Any, idempotency_key: str, **kw: Any) -> Response:
    return client.post(path, body, headers={"Idempotency-Key": idempotency_key}, **kw)


def test_the_same_key_and_request_create_one_execution_and_answer_the_same(client: Client) -> None:
    tag, k = uuid.uuid4().hex, key()
    first = post(client, "/api/executions", tagged(tag, start=True), k)
    again = post(client, "/api/executions", tagged(tag, start=True), k)
    assert first.status == again.status == 201, (first, again)
    assert again.json == first.json
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert total(client, "executions", tag) == 1
    # key order and spacing are not part of the request
    reordered = client.post(
        "/api/executions",
        raw=b'{"start": true, "metadata": {"tags": ["%s"]}, "plan": {"steps": [{"type": "notify", '
        b'"parameters": {"message": "hi"}, "id": "n"}], "name": "idempotent"}}' % tag.encode(),
        headers={"Idempotency-Key": k},
    )
    assert reordered.status == 201 and reordered.json == first.json
    assert total(client, "executions", tag) == 1
    client.wait_for_status(first.json["execution_id"])


def test_the_same_key_with_another_request_is_refused(client: Client) -> None:
    tag, k = uuid.uuid4().hex, key()
    assert post(client, "/api/executions", tagged(tag), k).status == 201
    other = post(client, "/api/executions", tagged(tag, start=True), k)
    assert other.status == 409, other
    assert other.json["error"]["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in other.json["error"]["message"]
    elsewhere = post(client, "/api/plans", tagged(tag)["plan"], k)  # another route: another request
    assert elsewhere.status == 409 and elsewhere.json["error"]["code"] == "idempotency_key_reused"
    assert total(client, "executions", tag) == 1


def test_keys_belong_to_their_principal(server: ServerThread, client: Client) -> None:
    tag, k = uuid.uuid4().hex, key()
    token = jwt.encode(
        {"sub": f"u-{tag}", "scope": "read write", "exp": int(time.time()) + 60},
        JWT_SECRET,
        algorithm="HS256",
    )
    mine = [post(client, "/api/executions", tagged(tag), k) for _ in range(2)]
    theirs = [post(server.client(token), "/api/executions", tagged(tag), k) for _ in range(2)]
    assert {r.status for r in mine + theirs} == {201}
    assert mine[0].json == mine[1].json and theirs[0].json == theirs[1].json
    assert mine[0].json["execution_id"] != theirs[0].json["execution_id"]
    assert total(client, "executions", tag) == 2


def test_stored_plans_and_their_executions_take_keys_too(client: Client) -> None:
    tag = uuid.uuid4().hex
    plan = {**tagged(tag)["plan"], "metadata": {"tags": [tag]}}
    k = key()
    created = [post(client, "/api/plans", plan, k) for _ in range(2)]
    assert created[0].status == created[1].status == 201
    assert created[0].json == created[1].json
    assert total(client, "plans", tag) == 1

    plan_id, k = created[0].json["plan_id"], key()
    runs = [
        post(client, f"/api/plans/{plan_id}/execute", {"variables": {"a": 1}}, k) for _ in range(2)
    ]
    assert runs[0].status == runs[1].status == 201
    assert runs[0].json == runs[1].json
    assert total(client, "executions", tag) == 1
    client.wait_for_status(runs[0].json["execution_id"])


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_a_validation_error(client: Client, bad: str) -> None:
    # (other control characters never reach a handler: Tornado refuses the header line)
    response = post(client, "/api/executions", tagged("malformed"), bad)
    assert response.status == 400, response
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["error"]["details"][0]["field"] == "Idempotency-Key"


def test_concurrent_requests_with_one_key_run_one_execution(client: Client, tmp_path: Path) -> None:
    tag, k, marks = uuid.uuid4().hex, key(), tmp_path / "marks"
    body = {
        "plan": {"name": "once", "steps": [command("mark", f"echo run >> {marks}")]},
        "metadata": {"tags": [tag]},
        "start": True,
    }
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post(client, "/api/executions", body, k), range(6)))
    assert {a.status for a in answers} == {201}, answers
    assert len({a.json["execution_id"] for a in answers}) == 1
    client.wait_for_status(answers[0].json["execution_id"])
    assert total(client, "executions", tag) == 1
    assert marks.read_text() == "run\n"  # the losers never ran


def test_a_create_that_timed_out_and_is_retried_with_its_key_is_not_duplicated(
    database_url: str, tmp_path: Path
) -> None:
    """The engine answers too late for this server's 50 ms timeout (10,000 step rows to
    store), so the first answer is a 503 after the commit: the retry finds the execution."""
    server = ServerThread(make_settings(tmp_path, database_url, actor_timeout_seconds=0.05)).start()
    try:
        client, tag, k = server.client(), uuid.uuid4().hex, key()
        steps = [
            {"id": f"s{i}", "type": "notify", "parameters": {"message": "m"}} for i in range(10_000)
        ]
        body = {"plan": {"name": "big", "steps": steps}, "metadata": {"tags": [tag]}}
        first = post(client, "/api/executions", body, k)
        assert first.status == 503, first  # the answer was lost...
        assert first.json["error"]["code"] == "unavailable"
        wait_until(lambda: total(client, "executions", tag) == 1)  # ...but it was created
        retried = post(client, "/api/executions", body, k)
        assert retried.status == 201, retried
        assert retried.json["status"] == "created"
        assert total(client, "executions", tag) == 1
    finally:
        server.stop()
