"""Webhooks across nodes: one node at a time delivers a subscription (a lease), so events
from executions on every node arrive exactly once; when the lessee dies (kill -9) another
node goes on from the stored position, repeating only what was in flight."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from tests.cluster.harness import Cluster, Node, Timings, post_marked
from tests.receiver import Receiver
from tests.support import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(40)]

TIMINGS = Timings(heartbeat_seconds=0.5, node_timeout_seconds=3.0)


def lessee(cluster: Cluster, subscription_id: str) -> Node | None:
    rows = cluster.sql("SELECT node_id FROM subscriptions WHERE id = %s", subscription_id)
    return cluster.node_ids().get(rows[0][0]) if rows[0][0] else None


def stored_after(cluster: Cluster, position: int) -> dict[str, int]:
    """Event id -> seq of every event stored after `position`."""
    return dict(cluster.sql("SELECT event_id, seq FROM events WHERE seq > %s", position))


def test_each_event_once_from_three_nodes_and_delivery_survives_its_node(
    make_cluster: Callable[..., Cluster], receiver: Receiver
) -> None:
    cluster = make_cluster(3, max_executions=1, timings=TIMINGS)
    hook = f"hook-{uuid.uuid4().hex[:12]}"
    created = cluster.nodes[0].client.post(
        "/api/events/subscriptions", {"callback_url": receiver.url(hook)}
    )
    assert created.status == 201, created
    sid = created.json["subscription_id"]
    start = cluster.sql("SELECT position FROM subscriptions WHERE id = %s", sid)[0][0]
    holder = wait_until(lambda: lessee(cluster, sid))

    first = [post_marked(cluster, cluster.nodes[0].client, f"a{i}", [0.5]) for i in range(3)]
    cluster.wait_all_ended(first, timeout=15)
    assert {a.node for a in cluster.attempts()} == {"n0", "n1", "n2"}
    expected = stored_after(cluster, start)
    wait_until(lambda: set(receiver.event_ids(hook)) >= set(expected))
    arrived = Counter(receiver.event_ids(hook))
    assert set(arrived) == set(expected) and set(arrived.values()) == {1}, arrived

    receiver.slow(hook, 0.5, 3)  # so a delivery is in flight when its node dies
    entry = next(node for node in cluster.nodes if node is not holder)
    second = [post_marked(cluster, entry.client, f"b{i}", [0.3]) for i in range(3)]
    before = receiver.arrived[hook]
    wait_until(lambda: receiver.arrived[hook] > before)
    holder.kill()
    position = cluster.sql("SELECT position FROM subscriptions WHERE id = %s", sid)[0][0]
    with receiver.lock:  # what the dead node sent: answered, or still held by the receiver
        sent_by_the_dead = len(receiver.received[hook]) + (
            receiver.arrived[hook] - receiver.attempts[hook]
        )

    cluster.wait_all_ended(second, timeout=20)
    expected = stored_after(cluster, start)
    wait_until(lambda: set(receiver.event_ids(hook)) >= set(expected), timeout=15)
    successor = lessee(cluster, sid)
    assert successor is not None and successor is not holder
    received = receiver.event_ids(hook)
    delivered_by_the_dead = set(received[:sent_by_the_dead])  # the held ones end in 0.5 s
    arrived = Counter(received)
    assert set(arrived) == set(expected)
    after_the_kill = {e for e, seq in expected.items() if seq > position}
    assert after_the_kill - delivered_by_the_dead, "nothing was delivered after the kill"
    twice = {e for e, n in arrived.items() if n > 1}
    assert set(arrived.values()) <= {1, 2}, arrived
    assert twice <= after_the_kill & delivered_by_the_dead, (twice, position)
