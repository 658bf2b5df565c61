"""The Plans API against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support import Client, command

EXAMPLE = {
    "name": "Example Plan",
    "description": "An example execution plan",
    "steps": [command("step1", "echo Hello, ${who}!")],
    "variables": {"who": "World"},
    "metadata": {"tags": ["example", "test"], "created_by": "user1"},
}


def create_plan(client: Client, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/api/plans", plan or EXAMPLE)
    assert response.status == 201, response
    return response.json


def test_create_get_and_list(client: Client) -> None:
    created = create_plan(client)
    uuid.UUID(created["plan_id"], version=4)
    assert created["name"] == "Example Plan"
    assert created["steps"] == EXAMPLE["steps"]
    assert created["metadata"] == EXAMPLE["metadata"]
    assert created["created_at"].endswith("Z")

    got = client.get(f"/api/plans/{created['plan_id']}").json
    assert got == created

    tag = f"t-{uuid.uuid4().hex[:8]}"
    ids = [
        create_plan(client, {**EXAMPLE, "metadata": {"tags": [tag]}})["plan_id"] for _ in range(3)
    ]
    page = client.get(f"/api/plans?tag={tag}&limit=2").json
    assert page["total"] == 3 and (page["limit"], page["offset"]) == (2, 0)
    assert [p["plan_id"] for p in page["plans"]] == ids[::-1][:2]
    assert page["plans"][0]["tags"] == [tag]
    assert client.get("/api/plans?created_by=user1&to_date=2000-01-01").json["total"] == 0


def test_update_replaces_the_plan_and_running_executions_keep_theirs(
    client: Client, tmp_path
) -> None:
    gate = tmp_path / "gate"
    original = {
        "name": "v1",
        "steps": [
            command("wait", f"while [ ! -e {gate} ]; do sleep 0.02; done"),
            command("say", "echo version one"),
        ],
    }
    plan_id = create_plan(client, original)["plan_id"]
    running = client.post(f"/api/plans/{plan_id}/execute", {}).json["execution_id"]
    client.wait_for_step(running, "wait", "running")

    replaced = client.request(
        "PUT",
        f"/api/plans/{plan_id}",
        {
            "name": "v2",
            "steps": [command("say", "echo version two")],
            "metadata": {"tags": ["v2"]},
        },
    )
    assert replaced.status == 200
    assert replaced.json["name"] == "v2"
    assert replaced.json["updated_at"] >= replaced.json["created_at"]
    assert client.get(f"/api/plans/{plan_id}").json["steps"] == [command("say", "echo version two")]
    assert client.get("/api/plans?tag=v2").json["total"] >= 1

    gate.touch()
    done = client.wait_for_status(running)
    assert done["steps"][1]["output"] == "version one\n"
    fresh = client.post(f"/api/plans/{plan_id}/execute", {}).json["execution_id"]
    assert client.wait_for_status(fresh)["steps"][0]["output"] == "version two\n"


def test_execute_takes_variables_and_metadata(client: Client) -> None:
    plan_id = create_plan(client)["plan_id"]
    response = client.post(
        f"/api/plans/{plan_id}/execute",
        {
            "variables": {"who": "Synthesis"},
            "metadata": {"tags": ["run"], "created_by": "ci"},
        },
    )
    assert response.status == 201
    body = response.json
    assert (body["status"], body["plan_id"]) == ("running", plan_id)
    assert body["started_at"].endswith("Z") and body["created_at"].endswith("Z")
    done = client.wait_for_status(body["execution_id"])
    assert done["steps"][0]["output"] == "Hello, Synthesis!\n"
    assert done["plan_id"] == plan_id
    assert done["metadata"]["created_by"] == "ci"
    # Plan-level variables are the defaults.
    default = client.post(f"/api/plans/{plan_id}/execute").json["execution_id"]
    assert client.wait_for_status(default)["steps"][0]["output"] == "Hello, World!\n"


def test_delete(client: Client) -> None:
    plan_id = create_plan(client)["plan_id"]
    response = client.request("DELETE", f"/api/plans/{plan_id}")
    assert response.json == {"success": True, "message": "Plan deleted successfully"}
    for method, path, body in (
        ("GET", "", None),
        ("PUT", "", EXAMPLE),
        ("DELETE", "", None),
        ("POST", "/execute", {}),
    ):
        again = client.request(method, f"/api/plans/{plan_id}{path}", body)
        assert again.status == 404, (method, path)
        assert again.json["error"]["code"] == "not_found"


def test_plan_events_are_stored(server, client: Client) -> None:
    plan_id = create_plan(client)["plan_id"]
    client.request("PUT", f"/api/plans/{plan_id}", {**EXAMPLE, "name": "renamed"})
    client.request("DELETE", f"/api/plans/{plan_id}")
    from sqlalchemy import select

    from synthesis.store.models import events

    with server.runtime.store.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.payload).order_by(events.c.seq)).all()
    mine = [(t, p["name"]) for t, p in rows if p.get("plan_id") == plan_id]
    assert mine == [
        ("plan_created", "Example Plan"),
        ("plan_updated", "renamed"),
        ("plan_deleted", "renamed"),
    ]


def test_bad_plans_are_validation_errors_naming_the_field(client: Client) -> None:
    cases = [
        ({"steps": [command("a", "true")]}, "name"),
        ({"name": "p", "steps": []}, "steps"),
        ({"name": "p", "steps": [command("a", "true")], "colour": 1}, "colour"),
        (
            {"name": "p", "steps": [{"id": "a", "type": "command", "parameters": {"command": 1}}]},
            "steps[0].parameters.command",
        ),
    ]
    for body, field in cases:
        response = client.post("/api/plans", body)
        assert response.status == 400, body
        assert field in [d["field"] for d in response.json["error"]["details"]], response.json
    plan_id = create_plan(client)["plan_id"]
    response = client.request("PUT", f"/api/plans/{plan_id}", {"name": "p", "steps": []})
    assert response.status == 400
    assert client.get(f"/api/plans/{plan_id}").json["name"] == "Example Plan"


def test_unknown_child_plan_and_recursion_are_rejected(client: Client) -> None:
    missing = str(uuid.uuid4())
    child_step = {"id": "kid", "type": "plan", "parameters": {"plan_id": missing}}
    for path, body in (
        ("/api/plans", {"name": "p", "steps": [child_step]}),
        ("/api/executions", {"plan": {"name": "p", "steps": [child_step]}}),
    ):
        response = client.post(path, body)
        assert response.status == 400, path
        assert "unknown child plan" in response.json["error"]["details"][0]["message"]

    # a -> b, then b -> a: the update that closes the loop is refused.
    b = create_plan(client, {"name": "b", "steps": [command("x", "true")]})["plan_id"]
    a = create_plan(
        client,
        {"name": "a", "steps": [{"id": "run_b", "type": "plan", "parameters": {"plan_id": b}}]},
    )["plan_id"]
    response = client.request(
        "PUT",
        f"/api/plans/{b}",
        {"name": "b", "steps": [{"id": "run_a", "type": "plan", "parameters": {"plan_id": a}}]},
    )
    assert response.status == 400
    assert "cannot run itself" in response.json["error"]["details"][0]["message"]
    # and so is a plan that names itself
    response = client.request(
        "PUT",
        f"/api/plans/{a}",
        {"name": "a", "steps": [{"id": "me", "type": "plan", "parameters": {"plan_id": a}}]},
    )
    assert response.status == 400
