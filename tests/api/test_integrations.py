"""The Integrations API and the http step type against real far sides: subprocesses and
a loopback HTTP server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.http_target import HttpTarget
from tests.support import Client, ServerThread, command, make_settings, wait_until


def invoke(client: Client, integration: str, capability: str, **body: Any):
    return client.post(f"/api/integrations/{integration}/capabilities/{capability}", body)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_list_get_and_capabilities_match_the_reference(client: Client) -> None:
    listing = client.get("/api/integrations").json["integrations"]
    by_id = {i["id"]: i for i in listing}
    assert by_id["cli"]["capabilities"] == ["execute_command", "execute_script"]
    assert by_id["api"]["capabilities"] == ["http_get", "http_post", "http_put", "http_delete"]
    assert by_id["api"]["name"] == "HTTP API"

    cli = client.get("/api/integrations/cli").json
    assert cli["parameters"]["execute_command"]["command"] == {
        "type": "string",
        "description": "The command to execute",
        "required": True,
    }
    assert cli["parameters"]["execute_command"]["timeout"]["default"] == 60
    # the reference's types: whole seconds
    assert cli["parameters"]["execute_command"]["timeout"]["type"] == "integer"
    assert cli["parameters"]["execute_script"]["timeout"]["type"] == "integer"
    assert cli["parameters"]["execute_script"]["interpreter"]["default"] == "bash"

    caps = client.get("/api/integrations/cli/capabilities").json
    assert caps["integration_id"] == "cli"
    assert [c["id"] for c in caps["capabilities"]] == ["execute_command", "execute_script"]
    assert caps["capabilities"][0]["name"] == "Execute Command"
    assert caps["capabilities"][1]["parameters"]["script"]["required"] is True


def test_invoke_waits_for_the_result_and_stores_it(client: Client) -> None:
    response = invoke(
        client,
        "cli",
        "execute_command",
        parameters={
            "command": "echo Hello, Integration!",
            "working_directory": "/tmp",
            "timeout": 30,
        },
    )
    assert response.status == 201
    body = response.json
    assert (body["status"], body["output"], body["error"]) == (
        "completed",
        "Hello, Integration!\n",
        None,
    )
    assert body["duration_ms"] >= 0 and body["completed_at"].endswith("Z")
    stored = client.get(f"/api/integrations/invocations/{body['invocation_id']}").json
    assert stored == body


def test_async_invoke_answers_at_once_and_the_status_follows(client: Client, tmp_path) -> None:
    gate = tmp_path / "gate"
    response = invoke(
        client,
        "cli",
        "execute_script",
        **{"async": True},
        parameters={
            "script": f"while [ ! -e {gate} ]; do sleep 0.02; done\necho done",
            "timeout": 30,
        },
    )
    assert response.status == 201
    assert response.json["status"] == "running"
    path = f"/api/integrations/invocations/{response.json['invocation_id']}"
    assert client.get(path).json["status"] == "running"
    gate.touch()
    done = wait_until(lambda: (r := client.get(path).json)["status"] == "completed" and r)
    assert done["output"] == "done\n"


def test_a_failing_command_is_a_failed_invocation_not_an_error(client: Client) -> None:
    body = invoke(client, "cli", "execute_command", parameters={"command": "echo no >&2; exit 2"})
    assert body.status == 201
    assert (body.json["status"], body.json["error"]) == ("failed", "no\n")


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    [
        ("/api/integrations/nope", None, 404, "not_found", None),
        ("/api/integrations/nope/capabilities", None, 404, "not_found", None),
        ("/api/integrations/invocations/nope", None, 404, "not_found", None),
        ("/api/integrations/nope/capabilities/x", {}, 404, "not_found", None),
        ("/api/integrations/cli/capabilities/nope", {}, 404, "not_found", None),
        (
            "/api/integrations/cli/capabilities/execute_command",
            {"parameters": {}},
            400,
            "validation_error",
            "parameters.command",
        ),
        (
            "/api/integrations/cli/capabilities/execute_command",
            {"parameters": {"command": 1}},
            400,
            "validation_error",
            "parameters.command",
        ),
        (
            "/api/integrations/cli/capabilities/execute_command",
            {"parameters": {"command": "true", "shell": "zsh"}},
            400,
            "validation_error",
            "parameters.shell",
        ),
        (
            "/api/integrations/cli/capabilities/execute_command",
            {"parameters": {"command": "true"}, "async": "yes"},
            400,
            "validation_error",
            "async",
        ),
        (
            "/api/integrations/api/capabilities/http_get",
            {"parameters": {"url": 5}},
            400,
            "validation_error",
            "parameters.url",
        ),
        (
            "/api/integrations/cli/capabilities/execute_command",
            {"parameters": {"command": "true", "timeout": 1e308}},
            400,
            "validation_error",
            "parameters.timeout",
        ),
        (
            "/api/integrations/api/capabilities/http_get",
            {"parameters": {"url": "http://127.0.0.1:9", "timeout": 1e308}},
            400,
            "validation_error",
            "parameters.timeout",
        ),
    ],
)
def test_bad_requests(
    client: Client, path: str, body: Any, status: int, code: str, field: str | None
) -> None:
    response = client.post(path, body) if body is not None else client.get(path)
    assert response.status == status, response
    assert response.json["error"]["code"] == code
    if field:
        assert field in [d["field"] for d in response.json["error"]["details"]]


def test_http_methods_bodies_query_and_headers(client: Client, target: HttpTarget) -> None:
    got = invoke(
        client,
        "api",
        "http_get",
        parameters={
            "url": f"{target.url}/echo",
            "query": {"a": 1, "b": ["x", "y"]},
            "headers": {"X-Token": "abc"},
        },
    ).json
    assert got["status"] == "completed"
    out = got["output"]
    assert out["status"] == 200 and out["headers"]["x-echo"] == "yes"
    assert out["body"]["query"] == {"a": ["1"], "b": ["x", "y"]}
    assert out["body"]["headers"]["x-token"] == "abc"

    posted = invoke(
        client, "api", "http_post", parameters={"url": f"{target.url}/echo", "json": {"n": 1}}
    ).json["output"]["body"]
    assert (posted["method"], posted["body"], posted["headers"]["content-type"]) == (
        "POST",
        {"n": 1},
        "application/json",
    )
    put = invoke(
        client, "api", "http_put", parameters={"url": f"{target.url}/echo", "body": "raw text"}
    ).json["output"]["body"]
    assert (put["method"], put["body"]) == ("PUT", "raw text")
    deleted = invoke(client, "api", "http_delete", parameters={"url": f"{target.url}/echo"}).json[
        "output"
    ]["body"]
    assert deleted["method"] == "DELETE"
    text = invoke(client, "api", "http_get", parameters={"url": f"{target.url}/text"}).json
    assert text["output"]["body"] == "plain text"


def test_http_status_checks(client: Client, target: HttpTarget) -> None:
    missing = invoke(client, "api", "http_get", parameters={"url": f"{target.url}/status/404"})
    assert missing.status == 201
    assert missing.json["status"] == "failed"
    assert "answered 404" in missing.json["error"]
    allowed = invoke(
        client,
        "api",
        "http_get",
        parameters={"url": f"{target.url}/status/404", "expected_status": [200, 404]},
    ).json
    assert allowed["status"] == "completed"
    klass = invoke(
        client,
        "api",
        "http_get",
        parameters={"url": f"{target.url}/status/302", "expected_status": "3xx"},
    ).json
    assert klass["status"] == "completed"


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"url": "{target}/status/503"}, "answered 503"),
        ({"url": "http://127.0.0.1:{closed}/x"}, "Connection refused"),
        ({"url": "{target}/slow?seconds=5", "timeout": 0.3}, "Timeout"),
    ],
    ids=["5xx", "refused", "timeout"],
)
def test_far_side_failures_are_integration_errors(
    client: Client, target: HttpTarget, parameters: dict[str, Any], reason: str
) -> None:
    filled = {
        k: v.format(target=target.url, closed=closed_port()) if isinstance(v, str) else v
        for k, v in parameters.items()
    }
    response = invoke(client, "api", "http_get", parameters=filled)
    assert response.status == 502
    assert response.json["error"]["code"] == "integration_error"
    assert reason in response.json["error"]["message"]
    invocation_id = response.json["error"]["message"].rsplit("invocation ", 1)[1].rstrip(")")
    stored = client.get(f"/api/integrations/invocations/{invocation_id}").json
    assert stored["status"] == "failed"


def test_http_step_output_flows_into_later_steps(client: Client, target: HttpTarget) -> None:
    execution_id = client.create(
        [
            {
                "id": "fetch",
                "type": "http",
                "parameters": {"method": "POST", "url": f"{target.url}/echo", "json": {"id": 42}},
            },
            command("use", "echo ${fetch_output.body.body.id} ${fetch_output.status}"),
            {"id": "down", "type": "http", "parameters": {"url": f"{target.url}/status/500"}},
        ]
    )
    done = client.wait_for_status(execution_id)
    steps = {s["id"]: s for s in done["steps"]}
    assert steps["use"]["output"] == "42 200\n"
    assert done["status"] == "failed"
    assert "answered 500" in steps["down"]["error"]


def test_bad_http_step_parameters_are_rejected(client: Client) -> None:
    response = client.post(
        "/api/executions",
        {
            "plan": {
                "name": "p",
                "steps": [
                    {
                        "id": "h",
                        "type": "http",
                        "parameters": {"url": "http://x", "timeout": "soon"},
                    }
                ],
            }
        },
    )
    assert response.status == 400
    assert response.json["error"]["details"][0]["field"] == "plan.steps[0].parameters.timeout"
    done = client.wait_for_status(
        client.create(
            [{"id": "h", "type": "http", "parameters": {"url": "ftp://x", "method": "PATCH"}}]
        )
    )
    assert "method must be one of" in done["steps"][0]["error"]


def test_command_output_streams_as_step_output_events(
    server: ServerThread, client: Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    execution_id = client.create(
        [command("talk", f"echo first; while [ ! -e {gate} ]; do sleep 0.02; done; echo second")]
    )

    def outputs() -> list[str]:
        return [
            e.data["output"]
            for e in server.runtime.store.events_for(execution_id)
            if e.type == "step_output"
        ]

    assert wait_until(outputs) == ["first\n"]  # while the step is still running
    assert client.execution(execution_id)["status"] == "running"
    gate.touch()
    client.wait_for_status(execution_id)
    assert wait_until(lambda: len(outputs()) == 2 and outputs()) == ["first\n", "second\n"]


def test_invocations_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = ServerThread(settings).start()
    client = first.client()
    done = invoke(client, "cli", "execute_command", parameters={"command": "echo kept"}).json
    gate = tmp_path / "never"
    running = invoke(
        client,
        "cli",
        "execute_command",
        **{"async": True},
        parameters={"command": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
    ).json
    first.stop(grace=0)

    second = ServerThread(settings).start()
    try:
        client = second.client()
        assert client.get(f"/api/integrations/invocations/{done['invocation_id']}").json == done
        interrupted = client.get(f"/api/integrations/invocations/{running['invocation_id']}").json
        assert interrupted["status"] in ("cancelled", "failed")
    finally:
        second.stop()
