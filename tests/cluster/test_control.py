"""Control from any node: cancel, pause and resume sent to a node that does not own the
execution answer as the owner does, and change the state; an owner that cannot answer
(SIGSTOP) makes them `unavailable` (503) in about 5 s, never a hang."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.harness import Cluster, Timings, post_marked
from tests.support import Response, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(30)]

# the owner stays alive while it is stopped for the 5 s a request may wait: it fences
# itself at 80 % of the timeout after its last acknowledged heartbeat (up to 2 s before the
# stop), so the timeout leaves room for a loaded machine
TIMINGS = Timings(heartbeat_seconds=2.0, node_timeout_seconds=16.0)


def same_answer(other: Response, owner: Response, other_id: str, owner_id: str) -> None:
    """Status and body alike, but for the execution id and the moment."""

    def shape(response: Response, execution_id: str) -> dict[str, Any]:
        body = dict(response.json)
        if body.get("execution_id") == execution_id:
            body["execution_id"] = "ID"
        return {k: ("AT" if k.endswith("_at") else v) for k, v in body.items()}

    assert other.status == owner.status, (other, owner)
    assert shape(other, other_id) == shape(owner, owner_id), (other, owner)


def test_cancel_pause_resume_through_a_node_that_does_not_own_it(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, max_executions=4, timings=TIMINGS)
    owner, other = cluster.nodes
    there = post_marked(cluster, owner.client, "there", [1.0, 1.0, 1.0])  # controlled via other
    here = post_marked(cluster, owner.client, "here", [1.0, 1.0, 1.0])  # controlled via owner
    assert cluster.owners([there, here]) == {there: owner, here: owner}

    # an error the owner answers comes back as it is (resuming a running execution)
    refused = other.client.post(f"/api/executions/{there}/resume")
    same_answer(refused, owner.client.post(f"/api/executions/{here}/resume"), there, here)
    assert refused.status == 409 and refused.json["error"]["code"] == "invalid_state", refused

    for action, status in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        via_other = other.client.post(f"/api/executions/{there}/{action}")
        via_owner = owner.client.post(f"/api/executions/{here}/{action}")
        same_answer(via_other, via_owner, there, here)
        assert via_other.status == 200 and via_other.json["status"] == status, via_other
        for client in (other.client, owner.client):
            assert client.execution(there)["status"] == status

    again = other.client.post(f"/api/executions/{there}/cancel")  # an error, as on one node
    same_answer(again, owner.client.post(f"/api/executions/{here}/cancel"), there, here)
    assert again.status == 409 and again.json["error"]["code"] == "invalid_state", again
    starts = [a for a in cluster.attempts() if a.label == "there"]
    assert [a.step for a in starts] == ["s0"] and starts[0].how == "killed", starts


def test_control_answers_unavailable_when_the_owner_is_stopped(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(2, max_executions=4, timings=TIMINGS)
    owner, other = cluster.nodes
    execution = post_marked(cluster, owner.client, "stuck", [20.0])
    wait_until(lambda: cluster.attempts())
    owner.pause()
    try:
        sent = time.monotonic()
        answer = other.client.post(f"/api/executions/{execution}/cancel")
        took = time.monotonic() - sent
    finally:
        owner.resume()
    assert answer.status == 503 and answer.json["error"]["code"] == "unavailable", answer
    assert 4.5 <= took <= 6.5, took
    assert cluster.node_status(owner) == "alive"
    # the request that was answered 503 did nothing: the owner, back, takes a new one
    later = other.client.post(f"/api/executions/{execution}/cancel")
    assert later.status == 200 and later.json["status"] == "cancelled", later
