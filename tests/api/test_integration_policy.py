"""`--integrations`: the operator turns integrations off. Plans that need them are refused
when accepted, invoking them is permission_denied, the list says which are off, and a run
accepted before the policy changed fails the step instead of running it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthesis.config import ConfigError
from synthesis.runtime import Runtime
from tests.support import Client, ServerThread, command, make_settings

OFF = "which the operator turned off"


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {"integrations": ("api",)}


def test_the_list_says_which_integrations_are_off(client: Client) -> None:
    listing = client.get("/api/integrations").json["integrations"]
    assert {i["id"]: i["enabled"] for i in listing} == {"cli": False, "api": True, "mcp": False}
    assert client.get("/api/integrations/cli").json["enabled"] is False


def test_plans_needing_an_integration_that_is_off_are_refused(client: Client) -> None:
    steps = [
        {"id": "pause", "type": "wait", "parameters": {"seconds": 0.01}},
        {
            "id": "each",
            "type": "loop",
            "parameters": {"count": 1, "steps": [command("run", "true")]},
        },
        {"id": "tool", "type": "mcp", "parameters": {"server": {"command": "x"}, "tool": "y"}},
    ]
    response = client.post("/api/executions", {"plan": {"name": "p", "steps": steps}})
    assert response.status == 400, response
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["error"]["details"] == [
        {
            "field": "plan.steps[1].parameters.steps[0].type",
            "message": f"step type 'command' needs the 'cli' integration, {OFF}",
        },
        {
            "field": "plan.steps[2].type",
            "message": f"step type 'mcp' needs the 'mcp' integration, {OFF}",
        },
    ]
    stored = client.post("/api/plans", {"name": "p", "steps": steps})
    assert stored.status == 400
    assert stored.json["error"]["details"][0]["field"] == "steps[1].parameters.steps[0].type"
    allowed = client.post("/api/executions", {"plan": {"name": "p", "steps": steps[:1]}})
    assert allowed.status == 201


def test_invoking_an_integration_that_is_off_is_permission_denied(client: Client) -> None:
    response = client.post(
        "/api/integrations/cli/capabilities/execute_command",
        {"parameters": {"command": "touch /tmp/should-not-run"}},
    )
    assert response.status == 403
    assert response.json["error"] == {
        "code": "permission_denied",
        "message": "the 'cli' integration is turned off by the operator",
    }


def test_a_run_accepted_before_the_policy_fails_the_step(database_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    before = ServerThread(make_settings(tmp_path, database_url)).start()
    try:
        execution_id = before.client().create([command("c", f"touch {marker}")], start=False)
    finally:
        before.stop()
    after = ServerThread(make_settings(tmp_path, database_url, integrations=("api",))).start()
    try:
        client = after.client()
        assert client.post(f"/api/executions/{execution_id}/start").status == 200
        done = client.wait_for_status(execution_id)
        assert done["status"] == "failed"
        assert (
            done["steps"][0]["error"] == f"step type 'command' needs the 'cli' integration, {OFF}"
        )
        assert not marker.exists()
    finally:
        after.stop()


def test_an_unknown_integration_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown integration 'shell' in --integrations"):
        Runtime(make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", integrations=("shell",)))
