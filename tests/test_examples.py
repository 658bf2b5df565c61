"""Every plan in examples/ runs against a real server (SQLite and PostgreSQL) and must end
exactly as its `expect` block says; docs/plans.md describes the file format. The JSON
snippets in docs/plans.md are checked too, so the reference cannot drift from the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from synthesis.engine.plan import validate_plan
from synthesis.integrations import STEP_SCHEMAS
from tests.support import Client, ServerThread

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
DOC = ROOT / "docs" / "plans.md"
FILE_KEYS = {"description", "children", "plan", "variables", "expect"}
EXPECT_KEYS = {
    "status",
    "error",
    "outputs",
    "errors",
    "statuses",
    "attempts",
    "variables",
    "notifications",
}
STEP_FIELDS = {"outputs": "output", "errors": "error", "statuses": "status"}


def load(path: Path) -> dict[str, Any]:
    example = json.loads(path.read_text())
    assert isinstance(example, dict), f"{path.name}: must hold one JSON object"
    assert not example.keys() - FILE_KEYS, f"{path.name}: unknown keys {example.keys() - FILE_KEYS}"
    assert {"plan", "expect"} <= example.keys(), f"{path.name}: needs plan and expect"
    expect = example["expect"]
    assert not expect.keys() - EXPECT_KEYS, f"{path.name}: unknown expect keys"
    assert "status" in expect, f"{path.name}: expect needs a status"
    return example


def with_ids(value: Any, ids: dict[str, str]) -> Any:
    """Replace every string "@<child name>" with the id the child plan was stored under."""
    if isinstance(value, str) and value.startswith("@") and value[1:] in ids:
        return ids[value[1:]]
    if isinstance(value, dict):
        return {key: with_ids(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [with_ids(item, ids) for item in value]
    return value


def mismatches(expect: dict[str, Any], execution: dict[str, Any], notifications: int) -> list[str]:
    """Every way the finished execution differs from `expect`; empty when it matches."""
    problems = []
    steps = {step["id"]: step for step in execution["steps"]}

    def compare(what: str, wanted: Any, got: Any) -> None:
        if wanted != got:
            problems.append(f"{what}: expected {wanted!r}, got {got!r}")

    compare("status", expect["status"], execution["status"])
    if "error" in expect:
        compare("error", expect["error"], execution["error"])
    for key, field in STEP_FIELDS.items():
        for step_id, wanted in expect.get(key, {}).items():
            if step_id not in steps:
                problems.append(f"{key}: no step {step_id!r} in {sorted(steps)}")
            else:
                compare(f"step {step_id!r} {field}", wanted, steps[step_id][field])
    for step_id, wanted in expect.get("attempts", {}).items():
        got = steps.get(step_id, {}).get("attempts")
        compare(f"step {step_id!r} attempts", wanted, None if got is None else len(got))
    for name, wanted in expect.get("variables", {}).items():
        got = execution["variables"].get(name, "<not set>")
        compare(f"variable {name!r}", wanted, got)
    if "notifications" in expect:
        compare("notifications", expect["notifications"], notifications)
    return problems


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example(path: Path, server: ServerThread, client: Client, tmp_path: Path) -> None:
    example = load(path)
    ids: dict[str, str] = {}
    for name, child in example.get("children", {}).items():
        response = client.post("/api/plans", with_ids(child, ids))
        assert response.status == 201, f"child plan {name!r}: {response}"
        ids[name] = response.json["plan_id"]
    body = {
        "plan": with_ids(example["plan"], ids),
        "variables": {**with_ids(example.get("variables", {}), ids), "workdir": str(tmp_path)},
        "start": True,
    }
    response = client.post("/api/executions", body)
    assert response.status == 201, response
    execution = client.wait_for_status(response.json["execution_id"])
    events = server.runtime.store.events_for(execution["execution_id"])
    notifications = sum(1 for event in events if event.type == "notification")

    problems = mismatches(example["expect"], execution, notifications)
    table = "\n".join(
        f"  {s['id']}: {s['status']} output={s['output']!r} error={s['error']!r}"
        for s in execution["steps"]
    )
    assert not problems, "\n".join([*problems, "steps:", table])
    for plan_id in ids.values():
        assert client.request("DELETE", f"/api/plans/{plan_id}").status == 200


def test_the_required_examples_exist() -> None:
    names = {path.stem for path in EXAMPLES}
    required = {
        "build-test-deploy",
        "fan-out-join",
        "retry-flaky",
        "loop-items",
        "conditional",
        "child-plan",
    }
    assert required <= names, required - names


def test_a_wrong_expectation_is_reported() -> None:
    execution = {
        "status": "completed",
        "error": None,
        "steps": [{"id": "a", "status": "completed", "output": "x", "error": None}],
        "variables": {"a_output": "x"},
    }
    assert mismatches({"status": "completed", "outputs": {"a": "x"}}, execution, 0) == []
    wrong = {
        "status": "failed",
        "outputs": {"a": "y", "b": "x"},
        "variables": {"a_output": "y"},
        "notifications": 1,
    }
    assert len(mismatches(wrong, execution, 0)) == 5


def doc_snippets() -> list[Any]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_doc_snippets_are_valid_plans_or_steps() -> None:
    """A ```json block in docs/plans.md holding a plan, a step or a list of steps must
    validate; other blocks (API bodies, outputs) are left alone."""
    checked = 0
    for snippet in doc_snippets():
        if isinstance(snippet, dict) and "steps" in snippet and "name" in snippet:
            plan = snippet
        elif isinstance(snippet, dict) and {"id", "type"} <= snippet.keys():
            plan = {"name": "snippet", "steps": [snippet]}
        elif isinstance(snippet, list) and all(isinstance(s, dict) and "id" in s for s in snippet):
            plan = {"name": "snippet", "steps": snippet}
        else:
            continue
        validate_plan(plan, STEP_SCHEMAS)
        checked += 1
    assert checked >= 15
