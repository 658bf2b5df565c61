"""Bad input gets the contract's error, with details naming the field, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Client, command


def plan(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"plan": {"name": "p", "steps": list(steps), **fields}}


CASES = {
    "no plan": ({}, "plan"),
    "plan not object": ({"plan": []}, "plan"),
    "no name": ({"plan": {"steps": [command("a", "true")]}}, "plan.name"),
    "no steps": (plan(), "plan.steps"),
    "steps not a list": ({"plan": {"name": "p", "steps": {}}}, "plan.steps"),
    "step not object": (plan("x"), "plan.steps[0]"),
    "bad step id": (plan(command("a b", "true")), "plan.steps[0].id"),
    "missing id": (
        plan({"type": "command", "parameters": {"command": "true"}}),
        "plan.steps[0].id",
    ),
    "duplicate ids": (plan(command("a", "true"), command("a", "true")), "plan.steps[1].id"),
    "unknown type": (plan({"id": "a", "type": "teleport"}), "plan.steps[0].type"),
    "missing command": (
        plan({"id": "a", "type": "command", "parameters": {}}),
        "plan.steps[0].parameters.command",
    ),
    "wrong parameter type": (
        plan({"id": "a", "type": "command", "parameters": {"command": 5}}),
        "plan.steps[0].parameters.command",
    ),
    "unknown parameter": (
        plan({"id": "a", "type": "command", "parameters": {"command": "true", "shell": 1}}),
        "plan.steps[0].parameters.shell",
    ),
    "env not strings": (
        plan({"id": "a", "type": "command", "parameters": {"command": "true", "env": {"A": 1}}}),
        "plan.steps[0].parameters.env.A",
    ),
    "negative timeout": (plan(command("a", "true", timeout=-1)), "plan.steps[0].timeout"),
    "timeout over a year": (plan(command("a", "true", timeout=1e308)), "plan.steps[0].timeout"),
    "wait over a year": (
        plan({"id": "a", "type": "wait", "parameters": {"seconds": 1e308}}),
        "plan.steps[0].parameters.seconds",
    ),
    "backoff over a year": (
        plan(command("a", "true", retry={"backoff_seconds": 1e308})),
        "plan.steps[0].retry.backoff_seconds",
    ),
    "backoff multiplier over 10": (
        plan(command("a", "true", retry={"backoff_multiplier": 1e308})),
        "plan.steps[0].retry.backoff_multiplier",
    ),
    "command timeout not whole seconds": (
        plan({"id": "a", "type": "command", "parameters": {"command": "true", "timeout": 0.5}}),
        "plan.steps[0].parameters.timeout",
    ),
    "unknown step field": (plan(command("a", "true", colour="red")), "plan.steps[0].colour"),
    "unknown dependency": (
        plan(command("a", "true", depends_on=["zz"])),
        "plan.steps[0].depends_on",
    ),
    "self dependency": (plan(command("a", "true", depends_on=["a"])), "plan.steps[0].depends_on"),
    "depends_on not list": (plan(command("a", "true", depends_on="b")), "plan.steps[0].depends_on"),
    "cycle": (
        plan(command("a", "true", depends_on=["b"]), command("b", "true", depends_on=["a"])),
        "plan.steps",
    ),
    "unknown top-level field": ({**plan(command("a", "true")), "varaibles": {}}, "varaibles"),
    "variables not object": ({**plan(command("a", "true")), "variables": [1]}, "variables"),
    "tags not list": ({**plan(command("a", "true")), "metadata": {"tags": "x"}}, "metadata.tags"),
    "start not bool": ({**plan(command("a", "true")), "start": "yes"}, "start"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_plan_is_validation_error_naming_the_field(client: Client, case: str) -> None:
    before = client.get("/api/executions?limit=1").json["total"]
    body, field = CASES[case]
    response = client.post("/api/executions", body)
    assert response.status == 400, response
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    assert field in [d["field"] for d in error["details"]], error
    assert client.get("/api/executions?limit=1").json["total"] == before


def test_cycle_message_names_the_cycle(client: Client) -> None:
    body = plan(command("a", "true", depends_on=["b"]), command("b", "true", depends_on=["a"]))
    message = client.post("/api/executions", body).json["error"]["details"][0]["message"]
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_every_problem_is_reported_at_once(client: Client) -> None:
    body = plan({"id": "a", "type": "command", "parameters": {}}, {"id": "b", "type": "nope"})
    fields = [d["field"] for d in client.post("/api/executions", body).json["error"]["details"]]
    assert fields == ["plan.steps[0].parameters.command", "plan.steps[1].type"]


@pytest.mark.parametrize(
    "raw",
    [b"{bad json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"plan": {"name": "p"'],
)
def test_malformed_bodies_are_400(client: Client, raw: bytes) -> None:
    response = client.request("POST", "/api/executions", raw=raw)
    assert response.status == 400
    assert response.json["error"]["code"] == "validation_error"


def test_oversized_body_is_413(client: Client) -> None:
    filler = "x" * (1024 * 1024 + 10)
    response = client.post(
        "/api/executions", {**plan(command("a", "true")), "variables": {"f": filler}}
    )
    assert response.status == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_unknown_route_and_wrong_method(client: Client) -> None:
    response = client.get("/api/nothing-here")
    assert response.status == 404
    assert response.json["error"]["code"] == "not_found"
    response = client.request("DELETE", "/api/executions")
    assert response.status == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


def test_action_body_with_unknown_fields_is_rejected(client: Client) -> None:
    execution_id = client.create([command("a", "true")], start=False)
    response = client.post(f"/api/executions/{execution_id}/start", {"force": True})
    assert response.status == 400
    assert client.execution(execution_id)["status"] == "created"


def test_errors_never_leak_stack_traces(client: Client) -> None:
    for response in (
        client.request("POST", "/api/executions", raw=b"{bad"),
        client.get("/api/executions?limit=abc"),
        client.get("/api/zzz"),
    ):
        assert b"Traceback" not in response.raw
        assert set(response.json) == {"error"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": {"name": "p", "steps": [{"id": "a", "type": {}}]}}, "plan.steps[0].type"),
        ({"plan": {"name": "p", "steps": [{"id": "a", "type": []}]}}, "plan.steps[0].type"),
        ({"plan": {"name": "p", "steps": [command("a\n", "true")]}}, "plan.steps[0].id"),
    ],
    ids=["type-object", "type-list", "id-with-newline"],
)
def test_odd_values_found_by_the_fuzzer_are_validation_errors(
    client: Client, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/executions", body)
    assert response.status == 400, response
    assert field in [d["field"] for d in response.json["error"]["details"]]


def test_huge_offsets_are_validation_errors(client: Client) -> None:
    for path in ("/api/executions", "/api/plans", "/api/events"):
        response = client.get(f"{path}?offset={2**63}")
        assert response.status == 400, path
        assert response.json["error"]["details"][0]["field"] == "offset"


def test_null_tags_list_as_empty(client: Client) -> None:
    execution_id = client.create(
        [command("a", "true")], start=False, metadata={"tags": None, "created_by": "nulltags"}
    )
    listed = client.get("/api/executions?created_by=nulltags").json["executions"]
    assert [(e["execution_id"], e["tags"]) for e in listed] == [(execution_id, [])]


def test_every_bad_query_parameter_is_named_at_once(client: Client) -> None:
    response = client.get("/api/executions?limit=0&status=bogus&from_date=never&offset=-1")
    assert response.status == 400
    fields = sorted(d["field"] for d in response.json["error"]["details"])
    assert fields == ["from_date", "limit", "offset", "status"]
