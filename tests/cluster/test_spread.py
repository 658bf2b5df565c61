"""Three nodes share one queue: executions posted to one node run on all three."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cluster.harness import Cluster, post_marked

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(30)]


def test_executions_posted_to_one_node_run_on_all_three(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3, max_executions=2)
    entry = cluster.nodes[0].client
    ids = {f"e{i}": post_marked(cluster, entry, f"e{i}", [0.5]) for i in range(9)}
    records = cluster.wait_all_ended(list(ids.values()), timeout=15)
    assert {r["status"] for r in records.values()} == {"completed"}
    ran_on = {a.node for a in cluster.attempts()}
    assert ran_on == {"n0", "n1", "n2"}, cluster.attempts()
    for label, eid in ids.items():
        step = entry.get(f"/api/executions/{eid}/steps/s0").json
        assert step["output"].strip() in ran_on, (label, step)
