"""A cluster of real `synthesis serve` processes on one fresh PostgreSQL database.

Each node is a subprocess on a free loopback port with its own data directory and log
file; the test may kill -9, SIGSTOP, SIGCONT or SIGTERM it. The environment variable
`SYNTHESIS_TEST_NODE` (n0, n1, ...) is each node's marker: step processes inherit it, so
a step can write which node ran it (`marked_step`) to the cluster's marks file.

Who owns an execution and whether a node is dead are read from the database
(`Cluster.owner`, `Cluster.node_status`): the one place to switch to `GET /api/nodes` and
`node_id` on execution records once they exist.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import multiprocessing.context
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from tests.support import TOKEN, Client, wait_until

TERMINAL = ("completed", "failed", "cancelled")
NODE_MARKER = "SYNTHESIS_TEST_NODE"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(argv: list[str], env: dict[str, str], log_path: str) -> None:
    """A node's process: `synthesis serve` with this environment, its output to its log."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(env)
    from synthesis.cli import main

    raise SystemExit(main(argv))


@functools.cache
def _launcher() -> multiprocessing.context.ForkServerContext:
    """Nodes are forked from a server that imported Synthesis once (importing it takes
    seconds on this machine, three nodes at once longer still): each is still a process
    of its own running `synthesis serve`, started from a single-threaded parent."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["synthesis.cli", "synthesis.runtime", "tests.cluster.harness"])
    return context


@dataclass(frozen=True)
class Timings:
    """Short liveness timings, for tests about semantics rather than the defaults."""

    heartbeat_seconds: float = 0.5
    node_timeout_seconds: float = 3.0


class Node:
    """One `synthesis serve` process."""

    def __init__(self, index: int, cluster: Cluster) -> None:
        self.index = index
        self.name = f"n{index}"  # the marker its steps write
        self.port = free_port()
        self.data_dir = cluster.directory / self.name
        self.data_dir.mkdir()
        self.log_path = cluster.directory / f"{self.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHESIS_")}
        env.update(
            {
                "SYNTHESIS_TOKENS": TOKEN,
                "SYNTHESIS_HEARTBEAT_SECONDS": str(cluster.timings.heartbeat_seconds),
                "SYNTHESIS_NODE_TIMEOUT_SECONDS": str(cluster.timings.node_timeout_seconds),
                NODE_MARKER: self.name,
                **cluster.env,
            }
        )
        argv = [
            "serve",
            "--port",
            str(self.port),
            "--database",
            cluster.url,
            "--data-dir",
            str(self.data_dir),
            "--max-executions",
            str(cluster.max_executions),
            "--shutdown-grace",
            "0",
            *cluster.args,
        ]
        self.process = _launcher().Process(
            target=serve, args=(argv, env, str(self.log_path)), name=self.name, daemon=False
        )
        self.process.start()
        assert self.process.pid is not None
        self.pid: int = self.process.pid
        self.client = Client(self.port)

    def __repr__(self) -> str:
        return f"<Node {self.name} pid={self.pid} port={self.port}>"

    def healthy(self) -> bool:
        assert self.running(), f"{self} exited: {self.log()}"
        try:
            return self.client.get("/health").status == 200
        except OSError:
            return False

    def running(self) -> bool:
        return self.process.exitcode is None

    @property
    def exit_status(self) -> int | None:
        """The exit status; -N after signal N; None while it runs."""
        return self.process.exitcode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.running():
            # gone already: the forkserver reaped it and has not told its exit code yet
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> float:
        """kill -9; returns the moment (time.time()) it was sent."""
        moment = time.time()
        self.signal(signal.SIGKILL)
        self.wait(10)
        return moment

    def pause(self) -> float:
        """SIGSTOP; returns the moment it was sent."""
        moment = time.time()
        self.signal(signal.SIGSTOP)
        return moment

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def wait(self, timeout: float = 15) -> int:
        """Its exit status, once it exited within `timeout` seconds."""
        self.process.join(timeout)
        assert self.exit_status is not None, f"{self} still runs after {timeout}s"
        return self.exit_status

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (after SIGCONT, should it be stopped), then kill -9 if it lingers."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        self.process.join(timeout)
        if self.running():
            self.signal(signal.SIGKILL)
        return self.wait(10)


class Cluster:
    """N nodes on the database at `url` (a SQLAlchemy URL), started together."""

    def __init__(
        self,
        url: str,
        directory: Path,
        size: int = 3,
        *,
        max_executions: int = 2,
        timings: Timings | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.directory = directory
        self.max_executions = max_executions
        self.timings = timings or Timings()
        self.env = env or {}
        self.args = args
        self.marks = directory / "marks"
        self.marks.touch()
        self.nodes: list[Node] = []
        for _ in range(size):
            self.add()

    def wait_healthy(self) -> Cluster:
        for node in self.nodes:
            wait_until(node.healthy, timeout=30, interval=0.05)
        return self

    def add(self) -> Node:
        node = Node(len(self.nodes), self)
        self.nodes.append(node)
        return node

    def stop(self) -> dict[str, int]:
        """SIGTERM every node still running; the exit status of each (a clean stop is 0)."""
        running = self.living()
        for node in running:
            node.signal(signal.SIGCONT)
            node.signal(signal.SIGTERM)
        return {node.name: node.stop() for node in running}

    def logs(self) -> str:
        return "\n".join(f"===== {node} =====\n{node.log()}" for node in self.nodes)

    def living(self) -> list[Node]:
        return [node for node in self.nodes if node.running()]

    # ---- the database, read directly ------------------------------------------------

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def node_ids(self) -> dict[str, Node]:
        """Node id -> Node, matched by pid (a node id is new at every start)."""
        by_pid = {node.pid: node for node in self.nodes}
        return {row[0]: by_pid[row[1]] for row in self.sql("SELECT id, pid FROM nodes")}

    def owner(self, execution_id: str) -> Node | None:
        """The node running `execution_id` now, if any."""
        rows = self.sql("SELECT node_id FROM executions WHERE id = %s", execution_id)
        if not rows or rows[0][0] is None:
            return None
        return self.node_ids().get(rows[0][0])

    def owners(self, execution_ids: list[str]) -> dict[str, Node | None]:
        return {eid: self.owner(eid) for eid in execution_ids}

    def node_status(self, node: Node) -> str:
        """`alive` or `dead` (fenced), as GET /api/nodes will list it."""
        rows = self.sql("SELECT fenced FROM nodes WHERE pid = %s", node.pid)
        assert rows, f"{node} has no row in nodes"
        return "dead" if rows[0][0] else "alive"

    def fenced_at(self, node: Node) -> float:
        """When the cluster declared `node` dead (time.time() scale, database clock)."""
        rows = self.sql(
            "SELECT extract(epoch FROM fenced_at::timestamptz) FROM nodes WHERE pid = %s",
            node.pid,
        )
        return float(rows[0][0])

    def in_transaction(self, node: Node, conn: psycopg.Connection[Any]) -> bool:
        """Whether `node` holds its own row (every bus transaction does, FOR SHARE, from
        its first statement to its commit): a lock `conn` cannot take at once."""
        try:
            conn.execute(
                "SELECT 1 FROM nodes WHERE pid = %s FOR UPDATE NOWAIT", (node.pid,)
            ).fetchall()
        except psycopg.errors.LockNotAvailable:
            return True
        finally:
            conn.rollback()
        return False

    def pause(self, node: Node, *, inside_transaction: bool) -> float:
        """SIGSTOP `node` at a moment it is (or is not) inside a bus transaction, trying
        again after SIGCONT until it is; returns the moment of the stop that held. Each
        try costs one query on one connection, so a busy node is caught within seconds."""
        with psycopg.connect(self.dsn) as conn:
            for _ in range(400):
                moment = node.pause()
                if self.in_transaction(node, conn) == inside_transaction:
                    return moment
                node.resume()
                time.sleep(0.002 * (len(self.nodes) % 3 + 1))  # land elsewhere in its work
        raise AssertionError(f"could not stop {node} {'in' if inside_transaction else 'out'}side")

    def claims(self, execution_id: str) -> int:
        return self.sql("SELECT claims FROM executions WHERE id = %s", execution_id)[0][0]

    def completed_steps(self) -> set[tuple[str, str]]:
        rows = self.sql("SELECT execution_id, step_id FROM steps WHERE status = 'completed'")
        return {(eid, sid) for eid, sid in rows}

    # ---- waiting ---------------------------------------------------------------------

    def any_client(self) -> Client:
        return self.living()[0].client

    def wait_all_ended(self, execution_ids: list[str], timeout: float) -> dict[str, dict]:
        client = self.any_client()

        def ended() -> dict[str, dict] | None:
            records = {eid: client.execution(eid) for eid in execution_ids}
            if all(r["status"] in TERMINAL for r in records.values()):
                return records
            return None

        return wait_until(ended, timeout=timeout, interval=0.1)

    # ---- marks: what step attempts ran where ------------------------------------------

    def read_marks(self) -> list[Mark]:
        return [Mark.parse(line) for line in self.marks.read_text().splitlines() if line]

    def attempts(self) -> list[Attempt]:
        """Each step attempt (one shell) with its start, and its end if it wrote one."""
        found: dict[int, Attempt] = {}
        for mark in self.read_marks():
            if mark.kind == "start":
                found[mark.shell] = Attempt(mark.label, mark.step, mark.node, mark.at)
            else:
                found[mark.shell].end = mark.at
                found[mark.shell].how = mark.how
        return list(found.values())


@dataclass
class Mark:
    kind: str  # start | end
    label: str  # the test's name for the execution
    step: str
    node: str  # the marker of the node that ran it
    shell: int  # the attempt's shell pid
    at: float
    how: str  # end only: ok | killed

    @classmethod
    def parse(cls, line: str) -> Mark:
        kind, label, step, node, shell, at, *how = line.split()
        return cls(kind, label, step, node, int(shell), float(at), how[0] if how else "")


@dataclass
class Attempt:
    label: str
    step: str
    node: str
    start: float
    end: float | None = None
    how: str = ""


def marked_step(
    cluster: Cluster, label: str, step_id: str, seconds: float, rerun: float | None = None
) -> dict[str, Any]:
    """A command step that sleeps `seconds` (`rerun` seconds if an earlier attempt of it
    started), writing its start and end (also when it is stopped with SIGTERM) to the marks
    file, and printing the marker of the node that ran it."""
    me = f"{label} {step_id} ${NODE_MARKER} $$"
    now = "$(date +%s.%N)"
    marks = str(cluster.marks)
    pause = f"{seconds}"
    if rerun is not None:
        again = f"grep -q '^start {label} {step_id} ' '{marks}'"
        pause = f"$({again} && echo {rerun} || echo {seconds})"
    script = (
        f"t={pause}; "
        f"echo \"start {me} {now}\" >> '{marks}'; "
        # the trap ignores TERM first: a second SIGTERM (two nodes may stop a dead node's
        # groups) would kill `date` midway, and an ignored signal is inherited
        f'trap \'trap "" TERM; echo "end {me} {now} killed" >> "{marks}"; exit 143\' TERM; '
        f"sleep $t; "
        f"echo \"end {me} {now} ok\" >> '{marks}'; "
        f"echo ${NODE_MARKER}"
    )
    return {"id": step_id, "type": "command", "parameters": {"command": script}}


def post_marked(
    cluster: Cluster,
    client: Client,
    label: str,
    seconds: list[float],
    rerun: float | None = None,
) -> str:
    """An execution of marked steps s0, s1, ... one after the other, started at once."""
    steps = [marked_step(cluster, label, f"s{i}", s, rerun) for i, s in enumerate(seconds)]
    for before, step in itertools.pairwise(steps):
        step["depends_on"] = [before["id"]]
    return client.create(steps, name=label)


def events_of(client: Client, execution_id: str) -> list[dict[str, Any]]:
    """Every event of one execution, as GET /api/events lists them (newest first)."""
    events: list[dict[str, Any]] = []
    while True:
        page = client.get(
            f"/api/events?execution_id={execution_id}&limit=500&offset={len(events)}"
        ).json
        events.extend(page["events"])
        if len(events) >= page["total"]:
            return events


def epoch(timestamp: str) -> float:
    """A stored timestamp (`2025-01-01T00:00:00.000Z`) on the time.time() scale."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
