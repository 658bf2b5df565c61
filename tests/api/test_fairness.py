"""One big plan of instant steps must not starve the engine: while it runs, a create, a
health check and a cancel answer at once, and a small execution runs to its end."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support import Client, Response, ServerThread, wait_until

pytestmark = pytest.mark.timing  # latency bounds: run alone, after the parallel tests

BIG = 10_000  # the default max_plan_steps; on the old engine one pass took minutes
PROMPT = 1.0  # seconds: "about a second"


def instant_steps(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"s{i}",
            "type": "variable",
            "parameters": {"operation": "set", "name": "v", "value": i},
        }
        for i in range(count)
    ]


def timed(call: Any) -> tuple[Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


def test_a_big_plan_of_instant_steps_leaves_room_for_everything_else(server: ServerThread) -> None:
    client: Client = server.client()
    tag = f"big-{uuid.uuid4().hex[:8]}"
    big = client.create(instant_steps(BIG), name="big", metadata={"tags": [tag]})

    def summary() -> dict[str, Any]:  # the list's row: no 10,000 steps to send
        return client.get(f"/api/executions?tag={tag}").json["executions"][0]

    small_plan = {
        "name": "small",
        "steps": [{"id": "n", "type": "notify", "parameters": {"message": "hi"}}],
    }
    with ThreadPoolExecutor(2) as pool:
        health_call = pool.submit(timed, lambda: client.get("/health"))
        create_call = pool.submit(
            timed, lambda: client.post("/api/executions", {"plan": small_plan, "start": True})
        )
        (health, health_s), (created, create_s) = health_call.result(), create_call.result()
    assert health.status == 200 and health.json["status"] == "healthy", health
    assert health_s < PROMPT
    assert created.status == 201, created
    assert create_s < PROMPT
    small = client.wait_for_status(created.json["execution_id"], timeout=PROMPT)
    assert small["status"] == "completed"
    assert summary()["status"] == "running"  # it really ran meanwhile

    cancelled, cancel_s = timed(lambda: client.post(f"/api/executions/{big}/cancel"))
    assert cancelled.status == 200, cancelled
    assert cancel_s < PROMPT
    assert cancelled.json["status"] == "cancelled"
    wait_until(lambda: summary()["completed_at"])
    steps = client.get(f"/api/executions/{big}/steps").json["steps"]
    statuses = {s["status"] for s in steps}
    assert statuses == {"completed", "cancelled"}, statuses


def test_slow_conditions_share_the_loop_too(server: ServerThread) -> None:
    """A turn is bounded in time as well as in steps: conditions that each cost about
    10 ms (within their budget) leave the health check prompt (each turn also writes
    the 400 KB of variables, so the store is busy too)."""
    client: Client = server.client()
    tag = f"slow-{uuid.uuid4().hex[:8]}"
    pairs = [[i, str(i)] for i in range(30_000)]  # max() over it takes about 10 ms
    steps = [
        {**step, "condition": "max(pairs) != 0", "continue_on_failure": True}
        for step in instant_steps(300)
    ]
    slow = client.create(steps, variables={"pairs": pairs}, metadata={"tags": [tag]})
    probes = [timed(lambda: client.get("/health")) for _ in range(6)]
    still = client.get(f"/api/executions?tag={tag}").json["executions"][0]["status"]
    client.post(f"/api/executions/{slow}/cancel")
    assert all(health.status == 200 for health, _ in probes), probes
    assert max(took for _, took in probes) < PROMPT, probes  # 2 s, and a 503, before
    assert still == "running", "it ended before the probes did: make it longer"
