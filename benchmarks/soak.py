"""Soak: minutes of mixed load on a real server that is killed with SIGKILL and restarted.

    python benchmarks/soak.py [--minutes M] [--kill-every S] [--clients C] [--database URL]

Clients create executions of four kinds (sleeping commands that spawn a grandchild,
hundreds of instant steps, failing commands, chatty output), each POST with an
`Idempotency-Key` and retried with the same key until the server answers, across the
restarts. Every `--kill-every` seconds the server gets SIGKILL and is started again on the
same data directory and port. After each restart the step processes the old server had
started must be gone within `--orphan-seconds`. At the end every accepted execution must
exist, have ended, and have ended as its kind says; the run tag must list exactly one
execution per idempotency key; the server's RSS is sampled through every life.

Prints one JSON line (progress on stderr); exits 1 on any lost, duplicated or wrongly
ended execution, any orphan process, or any 5xx answer other than 503 while restarting.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import Api, Problems, free_port, server_argv

TERMINAL = frozenset({"completed", "failed", "cancelled"})
EXPECTED = {
    "sleepy": "completed",
    "instant": "completed",
    "failing": "failed",
    "chatty": "completed",
}


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def plan(kind: str, tag: str, rng: random.Random) -> dict[str, Any]:
    """An execution body of one kind; every process it starts carries SOAK_TAG=tag."""
    env = {"SOAK_TAG": tag}
    if kind == "sleepy":
        seconds = rng.choice([0.2, 1, 3, 8])
        command = f"sleep {seconds * 2} & sleep {seconds}; wait"  # a grandchild in the group
        steps = [
            {"id": f"s{i}", "type": "command", "parameters": {"command": command, "env": env}}
            for i in range(rng.randint(1, 3))
        ]
    elif kind == "instant":
        steps = [
            {
                "id": f"v{i}",
                "type": "variable",
                "parameters": {"operation": "increment", "name": "n", "value": 1},
            }
            for i in range(rng.randint(50, 400))
        ]
    elif kind == "failing":
        steps = [
            {
                "id": "fail",
                "type": "command",
                "parameters": {"command": "echo no >&2; exit 3", "env": env},
            }
        ]
    else:  # chatty
        steps = [
            {
                "id": "talk",
                "type": "command",
                "parameters": {"command": "head -c 300000 /dev/zero | tr '\\0' x", "env": env},
            }
        ]
    return {
        "plan": {"name": f"soak-{kind}", "steps": steps},
        "variables": {"n": 0},
        "metadata": {"tags": [tag, f"kind-{kind}"]},
        "start": True,
    }


@dataclass
class Life:
    """One server process: its pid and the RSS samples taken while it lived."""

    pid: int
    rss: list[int] = field(default_factory=list)


class Node:
    """One `synthesis serve` on a fixed data dir and port, restarted after each kill."""

    def __init__(self, database: str | None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="synthesis-soak-"))
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.database = database
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives: list[Life] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        argv = [
            *server_argv(),
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--token",
            self.token,
        ]
        if self.database:
            argv += ["--database", self.database]
        logfile = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=logfile)
        self.lives.append(Life(self.proc.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = Api(self.port, self.token).call("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} at start")
            time.sleep(0.1)
        raise RuntimeError("server not healthy after 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def sample(self) -> None:
        life = self.lives[-1]
        with contextlib.suppress(psutil.Error):
            life.rss.append(psutil.Process(life.pid).memory_info().rss)


def tagged_processes(tag: str) -> set[tuple[int, float]]:
    """(pid, create_time) of every live process started by a step of this run."""
    found = set()
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if proc.environ().get("SOAK_TAG") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.add((proc.info["pid"], proc.info["create_time"]))
        except psutil.Error:
            continue
    return found


def still_alive(processes: set[tuple[int, float]]) -> set[tuple[int, float]]:
    alive = set()
    for pid, created in processes:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.add((pid, created))
        except psutil.Error:
            continue
    return alive


class Load:
    """Client threads that create executions until told to stop."""

    def __init__(self, node: Node, tag: str, clients: int, seed: int) -> None:
        self.node, self.tag = node, tag
        self.accepted: dict[str, tuple[str, str]] = {}  # key -> (execution id, kind)
        self.unanswered_retries = 0
        self.problems = Problems()
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.client, args=(random.Random(seed + i),), daemon=True)
            for i in range(clients)
        ]

    def client(self, rng: random.Random) -> None:
        while not self.halt.is_set():
            kind = rng.choice(list(EXPECTED))
            key = uuid.uuid4().hex
            body = plan(kind, self.tag, rng)
            while not self.halt.is_set():  # the same key until the server answers
                try:
                    api = Api(self.node.port, self.node.token)
                    api.headers["Idempotency-Key"] = key
                    status, answer = api.call("POST", "/api/executions", body)
                except OSError:
                    with self.lock:
                        self.unanswered_retries += 1
                    time.sleep(0.2)
                    continue
                if status == 201:
                    with self.lock:
                        self.accepted[key] = (answer["execution_id"], kind)
                    break
                if status == 503:
                    time.sleep(0.2)
                    continue
                self.problems.add(f"POST {status}: {answer!r}")
                break
            time.sleep(rng.uniform(0.0, 0.2))


def finish(node: Node, load: Load, timeout: float) -> dict[str, Any]:
    """Wait for every accepted execution to end; count the lost and the wrongly ended."""
    api = Api(node.port, node.token)
    pending = dict(load.accepted)
    wrong: Counter[str] = Counter()
    ended = 0
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, (execution_id, kind) in list(pending.items()):
            status, view = api.call("GET", f"/api/executions/{execution_id}")
            if status != 200:
                continue
            if view["status"] in TERMINAL:
                del pending[key]
                ended += 1
                if view["status"] != EXPECTED[kind]:
                    wrong[f"{kind}:{view['status']}"] += 1
        if pending:
            time.sleep(0.5)
    _, listed = api.call("GET", f"/api/executions?tag={load.tag}&limit=1")
    return {
        "accepted": len(load.accepted),
        "ended": ended,
        "lost": len(pending),
        "wrongly_ended": dict(wrong),
        "listed_for_tag": listed.get("total") if isinstance(listed, dict) else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = f"soak-{uuid.uuid4().hex[:8]}"
    node = Node(args.database)
    node.start()
    load = Load(node, tag, args.clients, args.seed)
    for thread in load.threads:
        thread.start()
    orphans: list[int] = []
    restarts: list[float] = []
    deadline = time.monotonic() + args.minutes * 60
    next_kill = time.monotonic() + args.kill_every
    while time.monotonic() < deadline:
        node.sample()
        if time.monotonic() >= next_kill:
            before = tagged_processes(tag)
            log(f"kill -9 with {len(before)} step processes running")
            node.kill()
            began = time.monotonic()
            node.start()
            restarts.append(time.monotonic() - began)
            settle = time.monotonic() + args.orphan_seconds
            left = still_alive(before)
            while left and time.monotonic() < settle:
                time.sleep(0.2)
                left = still_alive(before)
            orphans.append(len(left))
            log(f"restarted in {restarts[-1]:.1f}s; {len(left)} old step processes still alive")
            next_kill = time.monotonic() + args.kill_every
        time.sleep(0.5)
    load.halt.set()
    for thread in load.threads:
        thread.join(60)
    outcome = finish(node, load, args.drain_seconds)
    exit_code = node.stop()
    first, last = node.lives[0].rss, node.lives[-1].rss
    result = {
        "tag": tag,
        "minutes": args.minutes,
        "kills": len(restarts),
        "restart_s_median": round(statistics.median(restarts), 2) if restarts else None,
        "orphans_after_restart": orphans,
        **outcome,
        "duplicates": (outcome["listed_for_tag"] or 0) - outcome["accepted"],
        "unanswered_posts_retried": load.unanswered_retries,
        "client_problems": load.problems.count,
        "problem_samples": load.problems.samples,
        "rss_mib_first_life_median": _mib(statistics.median(first)) if first else None,
        "rss_mib_last_life_median": _mib(statistics.median(last)) if last else None,
        "rss_mib_peak": _mib(max(max(life.rss, default=0) for life in node.lives)),
        "server_exit_code": exit_code,
    }
    result["ok"] = (
        not any(orphans)
        and outcome["lost"] == 0
        and not outcome["wrongly_ended"]
        and result["duplicates"] == 0
        and load.problems.count == 0
        and exit_code == 0
    )
    return result


def _mib(value: float) -> float:
    return round(value / 2**20, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", help="SQLAlchemy URL (default: SQLite in the data dir)")
    parser.add_argument(
        "--orphan-seconds",
        type=float,
        default=10.0,
        help="how long old step processes may outlive a restart",
    )
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    import orjson

    result = run(args)
    print(orjson.dumps(result).decode(), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
