"""A node dies (kill -9) or is only slow (SIGSTOP past the timeout): the others take its
executions over; no finished step runs again, no event is listed twice, nothing the slow
node commits after it was fenced is kept, and no step runs on two nodes at once."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.cluster.harness import Cluster, Timings, epoch, events_of, post_marked
from tests.support import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timing, pytest.mark.timeout(40)]

TIMINGS = Timings(heartbeat_seconds=0.5, node_timeout_seconds=3.0)
SLACK = 4.0  # after the timeout: the sweep's period, a claim, a restart of the steps


def running_steps(cluster: Cluster) -> list[tuple[str, str]]:
    return [
        (row[0], row[1])
        for row in cluster.sql("SELECT execution_id, step_id FROM steps WHERE status = 'running'")
    ]


def assert_events_once_in_seq_order(cluster: Cluster, execution_id: str) -> None:
    listed = events_of(cluster.any_client(), execution_id)
    ids = [e["event_id"] for e in listed]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    seqs = dict(
        cluster.sql("SELECT event_id, seq FROM events WHERE execution_id = %s", execution_id)
    )
    in_order = [seqs[i] for i in reversed(ids)]  # listed newest first
    assert all(a < b for a, b in itertools.pairwise(in_order)), in_order
    ends = [e for e in listed if e["type"] == "execution_completed"]
    assert len(ends) == 1, ends


def test_kill_9_of_the_busiest_node(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3, max_executions=3, timings=TIMINGS)
    work = [0.2, 2.0, 0.2]  # s1 runs when the node dies; it runs again in 0.5 s
    labels = [f"e{i}" for i in range(6)]
    ids = {
        label: post_marked(cluster, cluster.nodes[i % 3].client, label, work, rerun=0.5)
        for i, label in enumerate(labels)
    }
    label_of = {eid: label for label, eid in ids.items()}

    def all_in_s1() -> bool:
        running = running_steps(cluster)
        return len(running) == len(ids) and {s for _, s in running} == {"s1"}

    wait_until(all_in_s1, timeout=10)
    owners = Counter(cluster.owners(list(ids.values())).values())
    victim = owners.most_common(1)[0][0]
    assert victim is not None
    finished = cluster.completed_steps()  # before the kill, so finished before it
    died = victim.kill()

    records = cluster.wait_all_ended(list(ids.values()), timeout=15)
    bound = TIMINGS.node_timeout_seconds + SLACK + sum(work)
    for eid, record in records.items():
        assert record["status"] == "completed", record
        late = epoch(record["completed_at"]) - died
        assert late <= bound, (label_of[eid], late)

    starts = Counter((a.label, a.step) for a in cluster.attempts())
    again = {(label_of[eid], sid) for eid, sid in finished if starts[(label_of[eid], sid)] != 1}
    assert not again, f"finished before the kill, yet ran again: {again}"
    assert set(starts.values()) <= {1, 2}, starts
    assert len(starts) == len(ids) * len(work)
    victims = [a for a in cluster.attempts() if a.node == victim.name and a.step == "s1"]
    assert victims and all(starts[(a.label, "s1")] == 2 for a in victims)

    for eid in ids.values():
        assert_events_once_in_seq_order(cluster, eid)
    assert cluster.node_status(victim) == "dead"
    assert cluster.fenced_at(victim) - died <= TIMINGS.node_timeout_seconds + SLACK


def test_sigstop_past_the_timeout_then_sigcont(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3, max_executions=2, timings=TIMINGS)
    slow = cluster.nodes[0]
    # s0 of `short` ends while the node is stopped; s0 of `long` outlives the timeout
    short = post_marked(cluster, slow.client, "short", [1.0, 0.2])
    long = post_marked(cluster, slow.client, "long", [8.0, 0.2], rerun=0.5)
    assert cluster.owners([short, long]) == {short: slow, long: slow}
    wait_until(
        lambda: (
            {(a.label, a.node) for a in cluster.attempts()}
            == {("short", slow.name), ("long", slow.name)}
        )
    )
    # outside a transaction (inside one: the next test)
    stopped = cluster.pause(slow, inside_transaction=False)

    wait_until(lambda: cluster.node_status(slow) == "dead", timeout=10)
    fenced = cluster.fenced_at(slow)
    assert fenced - stopped >= TIMINGS.node_timeout_seconds - 0.5

    def taken_over() -> bool:
        by = {(a.label, a.step): a.node for a in cluster.attempts() if a.node != slow.name}
        ended_while_stopped = [
            a for a in cluster.attempts() if a.node == slow.name and a.label == "short" and a.how
        ]
        return ("short", "s0") in by and ("long", "s0") in by and bool(ended_while_stopped)

    wait_until(taken_over, timeout=10)
    resumed = time.time()
    slow.resume()
    assert slow.wait(10) == 3
    said = [line for line in slow.log().splitlines() if "fenced" in line]
    assert len(said) == 1 and "this node is fenced" in said[0], said

    cluster.wait_all_ended([short, long], timeout=15)
    attempts = cluster.attempts()
    mine = [a for a in attempts if a.node == slow.name]
    assert all(a.start < resumed for a in mine), f"a fenced node started a step awake: {mine}"
    short_s0 = next(a for a in mine if a.label == "short" and a.step == "s0")
    assert short_s0.how == "ok" and short_s0.end is not None and short_s0.end < resumed

    client = cluster.any_client()
    for eid in (short, long):
        step = client.get(f"/api/executions/{eid}/steps/s0").json
        assert step["status"] == "completed", step
        assert step["output"].strip() != slow.name, f"a fenced node's result was kept: {step}"
        assert epoch(step["started_at"]) >= fenced - 0.5, step
        listed = events_of(client, eid)
        done = [
            e for e in listed if e["type"] == "step_completed" and e["payload"]["step_id"] == "s0"
        ]
        assert len(done) == 1, done
        assert_events_once_in_seq_order(cluster, eid)

    by_step: dict[tuple[str, str], list] = {}
    for attempt in attempts:
        by_step.setdefault((attempt.label, attempt.step), []).append(attempt)
    for key, runs in by_step.items():
        runs.sort(key=lambda a: a.start)
        for before, after in itertools.pairwise(runs):
            assert before.end is not None and before.end <= after.start, (key, before, after)


def test_a_node_stopped_inside_a_transaction_is_declared_dead(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3, max_executions=2, timings=TIMINGS)
    slow = cluster.nodes[0]
    chatty = "for i in $(seq 200); do echo $i; sleep 0.02; done"
    execution = slow.client.create(
        [{"id": "talk", "type": "command", "parameters": {"command": chatty}}]
    )
    assert cluster.owner(execution) is slow
    slow.client.wait_for_step(execution, "talk", "running")
    cluster.pause(slow, inside_transaction=True)
    try:
        others = cluster.nodes[1:]
        wait_until(  # dead, or (the bug) the others gave up first
            lambda: cluster.node_status(slow) == "dead" or not all(n.running() for n in others),
            timeout=TIMINGS.node_timeout_seconds + SLACK,
        )
        assert all(node.running() for node in others), "the other nodes fenced themselves"
        assert cluster.node_status(slow) == "dead"
        ended = others[0].client.wait_for_status(execution, "completed", "failed", timeout=15)
        assert ended["status"] == "completed", ended
    finally:
        for node in cluster.living():
            node.kill()
