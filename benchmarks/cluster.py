"""Benchmark a Synthesis cluster: several `synthesis serve` nodes on one PostgreSQL.

    python benchmarks/cluster.py [--database postgresql://postgres@127.0.0.1:5432]
        [--only failover,throughput,latency,lock] [--failover-runs 5] [--executions 400]
        [--latency-events 3000] [--lock-writers 1,3,8] [--lock-seconds 3] [--quick]

Every part runs on a new database `synthesis_bench_<random>` on that server (one per run),
dropped afterwards; servers are real subprocesses on loopback (run.py's `Server`).

- failover: 3 nodes with the default heartbeat and timeout; executions of a few `sleep`
  steps are posted to one of them (the victim, which owns what it accepts while it has
  room); once each has run a while, the victim gets SIGKILL. A WebSocket on a surviving
  node times the first `step_started` of one of the victim's executions after the kill
  (`takeover_s`, from the event's timestamp; `takeover_seen_s` from its receipt), the
  survivor's log line declaring the victim dead (`declared_dead_s`) and the last
  `execution_completed` of them (`all_complete_s`). Checked: all completed, no step that
  had completed before the kill started again, no event twice, the victim `dead`.
- throughput: run.py's throughput scenario (`true` steps, 32 executions in flight) in one
  run: the bare spawn rate, one node, then `--workers 2`, each on a fresh database, with
  what the machine did meanwhile: CPU of each server process, of the step processes they
  spawned (their reaped children), of this database's PostgreSQL backends and of all of
  PostgreSQL, of this harness and of the whole machine; time spent waiting for a CPU;
  the database's commits and its backends' wait events; each step's stored timing.
- latency: nodes A and B, one `/ws/events` socket on each; executions of `echo` steps
  posted to A. The commit moment of each event comes from a LISTEN on the nodes' events
  channel (a NOTIFY carries the last seq a transaction stored and arrives at its
  commit): commit to receipt on B, commit to A, A to B, and event timestamp to commit.
- lock: processes committing events through `Store.apply` at once against one database,
  each as a registered node (as nodes' buses do), with the advisory lock that orders
  `seq`, and without it: each process then takes a lock key of its own (the module
  constant patched in the benchmark's processes only), so the statements are the same
  but nothing serializes. Commits/s and commit latency.

Prints one JSON line per run of a part, then one summary line of medians and targets.
Progress goes to stderr. Exits 1 if a check did not hold or a server misbehaved.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.event_store import Database, fresh_database
from benchmarks.events import open_socket
from benchmarks.run import (
    Api,
    Problems,
    Server,
    bare_rates,
    percentiles,
    run_throughput,
)
from benchmarks.run import parse_args as run_args
from synthesis.engine.events import Event
from synthesis.store import Batch, Store
from synthesis.store import cluster as statements

PARTS = ("failover", "throughput", "latency", "lock")
TARGET_TAKEOVER_S = 12.0
TARGET_WORKERS_RATIO = 0.5
TARGET_P99_MS = 100.0
FAILOVER_WAIT_S = 90.0  # after the kill, for all the victim's executions to end
METER_INTERVAL = 0.25


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def epoch(stamp: str) -> float:
    """A stored timestamp (UTC, ms, Z) as a time.time() value."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def log_time(line: str) -> float:
    """The moment of a server log line (`2026-11-29 16:13:24,824 ...`, local time)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def machine_state() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        "mem_available_mib": round(psutil.virtual_memory().available / 2**20),
    }


def steps_body(name: str, command: str, steps: int) -> dict[str, Any]:
    plan = [
        {"id": f"s{i + 1}", "type": "command", "parameters": {"command": command}}
        for i in range(steps)
    ]
    return {"plan": {"name": name, "steps": plan}, "start": True}


# --- nodes -----------------------------------------------------------------------------


class Cluster:
    """`count` servers on one database, started together; stopped (or killed) at the end."""

    def __init__(self, db: Database, count: int, workers: int = 1) -> None:
        extra = ("--workers", str(workers)) if workers > 1 else ()
        self.servers = [Server.start(db.url, None, extra) for _ in range(count)]
        self.workers = workers
        self.killed: set[int] = set()

    def __enter__(self) -> Cluster:
        try:
            for server in self.servers:
                server.wait_ready()
                self.wait_listening(server)
        except RuntimeError as exc:
            tails = [
                server.log_lines()[-3:] for server in self.servers if server.proc.poll() is not None
            ]
            self.__exit__()
            raise RuntimeError(f"{exc}; the log of each server that exited ends: {tails}") from exc
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_listening(self, server: Server, timeout: float = 30.0) -> None:
        """Until every worker listens: the port answers once the first one does, and
        keep-alive connections made before the others listen would all stay on it."""
        deadline = time.monotonic() + timeout
        while sum("listening on" in line for line in server.log_lines()) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {self.workers} workers listen after {timeout:.0f}s")
            time.sleep(0.1)

    def kill(self, server: Server) -> float:
        """SIGKILL; returns the moment it was sent (time.time())."""
        moment = time.time()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        self.killed.add(server.proc.pid)
        return moment

    def __exit__(self, *_: object) -> None:
        self.exit_codes = [server.stop() for server in self.servers]
        self.unusual = [
            line
            for server in self.servers
            for line in server.log_lines()
            if " INFO " not in line and "tokens given with --token" not in line
        ][:20]
        for server in self.servers:
            server.cleanup()

    def clean_exits(self) -> bool:
        return all(
            code == 0
            for server, code in zip(self.servers, self.exit_codes, strict=True)
            if server.proc.pid not in self.killed
        )


def node_id_of(api: Api, server: Server) -> str:
    _, data = api.call("GET", "/api/nodes")
    return next(n["node_id"] for n in data["nodes"] if n["pid"] == server.proc.pid)


@dataclass
class Heard:
    """Every record one /ws/events socket received, with its receipt time (time.time())."""

    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[float]]] = field(
        default_factory=list
    )

    def __call__(self, message: bytes) -> None:
        moment = time.time()
        record = orjson.loads(message)
        self.records.append((moment, record))
        for waiter in [w for w in self.waiters if w[0](record)]:
            self.waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(moment)

    async def first(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> float:
        """Receipt time of the first record (already heard, or to come) that matches."""
        for moment, record in self.records:
            if match(record):
                return moment
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((match, future))
        return await asyncio.wait_for(future, timeout)


async def listen(server: Server, heard: Heard) -> Any:
    url = f"ws://127.0.0.1:{server.port}/ws/events?token={server.token}"
    return await open_socket(url, "raw", heard)


# --- 1. failover -----------------------------------------------------------------------


async def failover_once(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    problems = Problems()
    with Cluster(db, 3) as cluster:
        victim, survivor = cluster.servers[0], cluster.servers[1]
        api, watch = Api(victim.port, victim.token), Api(survivor.port, survivor.token)
        victim_node = node_id_of(watch, victim)
        heard = Heard()
        socket = await listen(survivor, heard)
        body = steps_body("failover", f"sleep {args.failover_sleep}", args.failover_steps)
        ids = []
        for _ in range(args.failover_executions):
            status, data = await asyncio.to_thread(api.call, "POST", "/api/executions", body)
            if status != 201:
                raise RuntimeError(f"POST /api/executions -> {status}: {data}")
            ids.append(data["execution_id"])
        mine = set(ids)
        for eid in ids:
            await heard.first(
                lambda r, e=eid: r["type"] == "step_started" and r["execution_id"] == e, 30
            )
        await asyncio.sleep(args.kill_after)
        owners = [
            (await asyncio.to_thread(watch.call, "GET", f"/api/executions/{eid}"))[1]["node_id"]
            for eid in ids
        ]
        owned = [eid for eid, owner in zip(ids, owners, strict=True) if owner == victim_node]
        completed_before = {
            (r["execution_id"], r["payload"]["step_id"])
            for _, r in heard.records
            if r["type"] == "step_completed" and r["execution_id"] in mine
        }
        killed_at = cluster.kill(victim)
        log(f"  killed the victim owning {len(owned)} of {len(ids)} executions")

        def taken_over(r: dict[str, Any]) -> bool:
            return (
                r["type"] == "step_started"
                and r["execution_id"] in mine
                and epoch(r["timestamp"]) >= killed_at
            )

        seen_at = await heard.first(taken_over, FAILOVER_WAIT_S)
        first = next(r for t, r in heard.records if taken_over(r))
        ended: dict[str, float] = {}
        for eid in ids:
            await heard.first(
                lambda r, e=eid: r["type"] == "execution_completed" and r["execution_id"] == e,
                FAILOVER_WAIT_S,
            )
            ended[eid] = next(
                epoch(r["timestamp"])
                for _, r in heard.records
                if r["type"] == "execution_completed" and r["execution_id"] == eid
            )
        socket.close()

        views = [
            (await asyncio.to_thread(watch.call, "GET", f"/api/executions/{eid}"))[1] for eid in ids
        ]
        not_completed = [v["execution_id"] for v in views if v["status"] != "completed"]
        rerun = sorted(
            f"{r['execution_id'][:8]}/{r['payload']['step_id']}"
            for _, r in heard.records
            if taken_over(r) and (r["execution_id"], r["payload"]["step_id"]) in completed_before
        )
        event_ids = [r["event_id"] for _, r in heard.records]
        duplicates = len(event_ids) - len(set(event_ids))
        _, listed = await asyncio.to_thread(watch.call, "GET", "/api/nodes")
        victim_status = next(
            (n["status"] for n in listed["nodes"] if n["node_id"] == victim_node), None
        )
        for eid in not_completed:
            problems.add(f"execution {eid} did not complete")
        if rerun:
            problems.add(f"steps completed before the kill started again: {rerun}")
        if duplicates:
            problems.add(f"{duplicates} events heard twice")
        if victim_status != "dead":
            problems.add(f"the victim is listed {victim_status!r}, not dead")
        if len(owned) != len(ids):
            problems.add(f"the victim owned only {len(owned)} of {len(ids)} at the kill")
    if not cluster.clean_exits():
        problems.add(f"surviving nodes exited {cluster.exit_codes}")
    declared = next((line for line in cluster.unusual if "declared dead" in line), None)
    return {
        "part": "failover",
        "executions": len(ids),
        "victim_owned": len(owned),
        "steps_completed_before_kill": len(completed_before),
        "takeover_s": round(epoch(first["timestamp"]) - killed_at, 3),
        "takeover_seen_s": round(seen_at - killed_at, 3),
        # the surviving node's log line (local time, ms) that declared the victim dead
        "declared_dead_s": round(log_time(declared) - killed_at, 3) if declared else None,
        "all_complete_s": round(max(ended.values()) - killed_at, 3),
        "completed": len(ids) - len(not_completed),
        "completed_steps_rerun": len(rerun),
        "duplicate_events": duplicates,
        "victim_listed": victim_status,
        "errors": problems.count,
        "error_samples": problems.samples,
        "server_log_unusual": cluster.unusual,
        **machine_state(),
    }


# --- 2. throughput ---------------------------------------------------------------------


def run_queue_wait(pid: int) -> float:
    """Seconds this process's threads spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuMeter(threading.Thread):
    """While it runs, per group of processes: CPU seconds used (`own`), CPU of their reaped
    children (`children`: the step processes a server spawned) and time spent waiting for
    a CPU (`waited`). A process first seen after the first sample started meanwhile, so
    all of its figures count."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[psutil.Process]]]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.halt = threading.Event()
        self.first: dict[tuple[str, int, str], float] = {}
        self.last: dict[tuple[str, int, str], float] = {}
        self.sampled = False
        self.machine_start = psutil.cpu_times()
        self.harness_start = _own_cpu()

    def sample(self) -> None:
        for group, processes in self.groups.items():
            for process in processes():
                try:
                    times = process.cpu_times()
                    waited = run_queue_wait(process.pid)
                except (psutil.Error, OSError):
                    continue
                for kind, value in (
                    ("own", times.user + times.system),
                    ("children", times.children_user + times.children_system),
                    ("waited", waited),
                ):
                    key = (group, process.pid, kind)
                    self.first.setdefault(key, value if not self.sampled else 0.0)
                    self.last[key] = value
        self.sampled = True

    def run(self) -> None:
        self.started = time.monotonic()
        while True:
            self.sample()
            if self.halt.wait(METER_INTERVAL):
                self.sample()
                return

    def stop(self) -> dict[str, Any]:
        """Per group, cores used on average (`cores`) and cores' worth of waiting for a
        CPU (`waiting`); the machine's busy cores, and what others used."""
        self.halt.set()
        self.join()
        wall = time.monotonic() - self.started
        figures: dict[str, dict[str, float]] = {"own": {}, "children": {}, "waited": {}}
        for (group, pid, kind), value in self.last.items():
            into = figures[kind]
            into[group] = into.get(group, 0.0) + value - self.first[(group, pid, kind)]
        machine = psutil.cpu_times()
        total = sum(machine) - sum(self.machine_start)
        idle = machine.idle - self.machine_start.idle
        cores = {name: round(v / wall, 2) for name, v in sorted(figures["own"].items())}
        cores.update(
            {f"{name}_children": round(v / wall, 2) for name, v in figures["children"].items()}
        )
        cores["harness"] = round((_own_cpu() - self.harness_start) / wall, 2)
        cores["machine"] = round((total - idle) / total * (os.cpu_count() or 1), 2)
        return {
            "cores": cores,
            "waiting_for_cpu": {
                name: round(v / wall, 2) for name, v in sorted(figures["waited"].items())
            },
            "iowait_share": round((machine.iowait - self.machine_start.iowait) / total, 3),
        }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_processes(server: Server) -> list[psutil.Process]:
    """The server and, with --workers, its worker processes (not step processes)."""
    parent = psutil.Process(server.proc.pid)
    workers = []
    for child in parent.children():
        try:
            if "serve" in child.cmdline():
                workers.append(child)
        except psutil.Error:
            continue
    return [parent, *workers]


def postgres_processes(db: Database | None) -> Callable[[], list[psutil.Process]]:
    """The backends serving `db` (all of PostgreSQL's processes with None)."""

    def find() -> list[psutil.Process]:
        if db is None:
            return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        assert db.admin_url is not None
        with psycopg.connect(db.admin_url, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db.name,)
            ).fetchall()
        found = []
        for (pid,) in pids:
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:
                continue
        return found

    return find


class DatabaseWatch(threading.Thread):
    """What this database's backends do while it runs: samples pg_stat_activity every
    50 ms (backends per wait event, the advisory lock among them) and counts the
    transactions committed and events stored."""

    def __init__(self, db: Database) -> None:
        super().__init__(daemon=True)
        assert db.admin_url is not None
        self.db = db
        self.conn = psycopg.connect(db.admin_url, autocommit=True)
        self.halt = threading.Event()
        self.samples = 0
        self.waits: dict[str, int] = {}
        self.start_commits, self.start_events = self.counts()

    def counts(self) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.db.name,)
        ).fetchone()
        with psycopg.connect(self.db.url) as conn:
            events = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(row[0]) if row else 0, int(events[0]) if events else 0

    def run(self) -> None:
        self.started = time.monotonic()
        while not self.halt.wait(0.05):
            rows = self.conn.execute(
                "SELECT coalesce(wait_event_type || ':' || wait_event, 'on cpu'), count(*)"
                " FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
                " AND pid <> pg_backend_pid() GROUP BY 1",
                (self.db.name,),
            ).fetchall()
            self.samples += 1
            for name, count in rows:
                self.waits[name] = self.waits.get(name, 0) + int(count)

    def stop(self) -> dict[str, Any]:
        """Commits/s, events per commit, and the average number of active backends in
        each state (`Lock:advisory`: waiting for the events lock)."""
        self.halt.set()
        self.join()
        wall = time.monotonic() - self.started
        commits, events = self.counts()
        self.conn.close()
        commits -= self.start_commits
        events -= self.start_events
        top = sorted(self.waits.items(), key=lambda kv: -kv[1])[:6]
        return {
            "commits_per_s": round(commits / wall, 1),
            "events_per_commit": round(events / max(commits, 1), 2),
            "active_backends": {name: round(n / max(self.samples, 1), 2) for name, n in top},
        }


def step_timing(api: Api, sample: int = 40) -> dict[str, float | None]:
    """Where an execution's time goes, from the stored step times of the newest `sample`
    executions: each step's run (started to completed) and the gaps between steps (the
    previous step's end to the next one's start), p50 in ms."""
    _, listed = api.call("GET", f"/api/executions?limit={sample}")
    runs: list[float] = []
    gaps: list[float] = []
    for row in listed["executions"]:
        _, view = api.call("GET", f"/api/executions/{row['execution_id']}")
        marks = [view["started_at"]]
        for step in view["steps"]:
            runs.append((epoch(step["completed_at"]) - epoch(step["started_at"])) * 1000)
            gaps.append((epoch(step["started_at"]) - epoch(marks[-1])) * 1000)
            marks.append(step["completed_at"])
    return {
        "step_run_p50": percentiles(runs)["p50"],
        "gap_before_step_p50": percentiles(gaps)["p50"],
        "gap_before_step_p95": percentiles(gaps)["p95"],
    }


def throughput_config(
    args: argparse.Namespace, label: str, workers: int, bare: float
) -> dict[str, Any]:
    """run.py's throughput scenario against a fresh database, with CPU figures."""
    scenario = run_args(
        [
            "--executions",
            str(args.executions),
            "--concurrency",
            str(args.concurrency),
            "--steps",
            str(args.steps),
            "--command",
            "true",
        ]
    )
    problems = Problems()
    with fresh_database(args.database) as db, Cluster(db, 1, workers) as cluster:
        server = cluster.servers[0]
        processes = server_processes(server)
        names = (
            ["server"]
            if workers == 1
            else ["parent"] + [f"worker_{i}" for i in range(1, 1 + workers)]
        )
        meter = CpuMeter(
            {
                **{name: (lambda p=p: [p]) for name, p in zip(names, processes, strict=True)},
                "postgres_backends": postgres_processes(db),
                "postgres_all": postgres_processes(None),
            }
        )
        log(f"  {label}: {len(processes)} server process(es)")
        watch = DatabaseWatch(db)
        meter.start()
        watch.start()
        outcome = run_throughput(server, scenario, problems)
        usage = meter.stop()
        database = watch.stop()
        timing = step_timing(Api(server.port, server.token))
    if not cluster.clean_exits():
        problems.add(f"server exited {cluster.exit_codes}")
    steps_per_s = outcome.completed * args.steps / outcome.wall_s
    cores = usage["cores"]
    if workers > 1:
        cores["server"] = round(sum(cores[name] for name in names), 2)
        usage["waiting_for_cpu"]["server"] = round(
            sum(usage["waiting_for_cpu"].pop(name) for name in names), 2
        )
    # a server's reaped children are its step processes (the parent's: nothing yet)
    cores["spawned_steps"] = round(sum(cores.pop(f"{name}_children") for name in names), 2)
    for name in [n for n in cores if n.endswith("_children")]:
        del cores[name]  # PostgreSQL's postmaster reaping backends: not a figure
    ours = ("server", "spawned_steps", "postgres_backends", "harness")
    cores["others"] = round(cores["machine"] - sum(cores.get(k, 0.0) for k in ours), 2)
    return {
        "config": label,
        "steps_per_s": round(steps_per_s, 1),
        "ratio_to_bare": round(steps_per_s / bare, 3),
        "wall_s": round(outcome.wall_s, 2),
        "completed": outcome.completed,
        "failed": outcome.failed,
        "lost": outcome.lost,
        "latency_ms": percentiles(outcome.client_ms),
        "cores": cores,
        "waiting_for_cpu": usage["waiting_for_cpu"],
        "step_timing_ms": timing,
        "database": database,
        "iowait_share": usage["iowait_share"],
        "errors": problems.count,
        "error_samples": problems.samples,
        "server_log_unusual": cluster.unusual,
        **machine_state(),
    }


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    log("throughput: bare spawn rate")
    state = machine_state()
    meter = CpuMeter({})
    meter.start()
    bare = bare_rates("true")
    bare_cores = meter.stop()["cores"]
    results = {}
    for label, workers in (("one_node", 1), ("workers_2", 2)):
        log(f"throughput: {label}")
        results[label] = throughput_config(args, label, workers, bare["best"])
    return {
        "part": "throughput",
        "executions": args.executions,
        "steps_per_execution": args.steps,
        "concurrency": args.concurrency,
        "bare": bare,
        "bare_cores": bare_cores,
        **results,
        "before": state,
    }


# --- 3. cross-node socket latency ------------------------------------------------------


class CommitClock(threading.Thread):
    """LISTENs on the nodes' events channel, as a node's tail does: each notification
    carries the last `seq` a transaction stored and arrives when it commits, so its receipt
    time (time.time(), on a thread of its own) is that transaction's commit on the
    harness's clock."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"LISTEN {statements.EVENTS_CHANNEL}")
        self.halt = threading.Event()
        self.commits: list[tuple[int, float]] = []  # (last seq, receipt), in commit order

    def run(self) -> None:
        while not self.halt.is_set():
            for note in self.conn.notifies(timeout=0.2):
                self.commits.append((int(note.payload), time.time()))

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.conn.close()

    def committed_at(self, url: str) -> dict[str, float]:
        """Each stored event's commit moment, by event id."""
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT event_id, seq FROM events ORDER BY seq").fetchall()
        seqs = [seq for seq, _ in self.commits]
        moments: dict[str, float] = {}
        for event_id, seq in rows:
            index = bisect.bisect_left(seqs, seq)
            if index < len(seqs):
                moments[str(event_id)] = self.commits[index][1]
        return moments


async def latency_once(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    problems = Problems()
    with Cluster(db, 2) as cluster:
        a, b = cluster.servers
        on_a, on_b = Heard(), Heard()
        sockets = [await listen(a, on_a), await listen(b, on_b)]
        commits = CommitClock(db.url)
        commits.start()
        body = steps_body("latency", "echo x", args.latency_steps)
        slots = asyncio.Semaphore(args.latency_inflight)
        started = time.monotonic()
        posted: list[str] = []

        async def one() -> None:
            async with slots:
                api = Api(a.port, a.token)  # one connection per thread
                status, data = await asyncio.to_thread(api.call, "POST", "/api/executions", body)
                if status != 201:
                    problems.add(f"POST -> {status}: {data}")
                    return
                posted.append(data["execution_id"])
                await on_a.first(
                    lambda r, e=data["execution_id"]: (
                        r["type"] == "execution_completed" and r["execution_id"] == e
                    ),
                    60,
                )

        async def owners() -> dict[str, int]:
            """Running executions per node, a second in: all on A."""
            await asyncio.sleep(1.0)
            _, data = await asyncio.to_thread(Api(b.port, b.token).call, "GET", "/api/nodes")
            return {"a" if n["pid"] == a.proc.pid else "b": n["executions"] for n in data["nodes"]}

        per_execution = args.latency_steps * 3 + 3  # started, output, completed per step
        count = -(-args.latency_events // per_execution)
        sampled, *_ = await asyncio.gather(owners(), *(one() for _ in range(count)))
        wall = time.monotonic() - started
        last = on_a.records[-1][1]["event_id"]
        await on_b.first(lambda r: r["event_id"] == last, 10)
        commits.stop()
        for socket in sockets:
            socket.close()
        _, listed = Api(a.port, a.token).call("GET", "/api/nodes")
    if not cluster.clean_exits():
        problems.add(f"servers exited {cluster.exit_codes}")

    committed = commits.committed_at(db.url)
    at_a = {r["event_id"]: t for t, r in on_a.records}
    at_b = {r["event_id"]: t for t, r in on_b.records}
    stamps = {r["event_id"]: epoch(r["timestamp"]) for _, r in on_a.records}

    def ms(later: dict[str, float], earlier: dict[str, float]) -> dict[str, float | None]:
        values = [(later[e] - earlier[e]) * 1000 for e in later if e in earlier]
        return {**percentiles(values), "max": round(max(values), 1) if values else None}

    missing = len(set(at_a) ^ set(at_b))
    same_order = [r["event_id"] for _, r in on_a.records] == [
        r["event_id"] for _, r in on_b.records
    ]
    if missing:
        problems.add(f"{missing} events heard on one socket only")
    if not same_order:
        problems.add("the sockets heard the events in different orders")
    if len(committed) < len(at_b):
        problems.add(f"commit moments for {len(committed)} of {len(at_b)} events only")
    failed = sum(
        1
        for _, r in on_a.records
        if r["type"] == "execution_completed" and r["payload"]["status"] != "completed"
    )
    return {
        "part": "latency",
        "executions": len(posted),
        "failed": failed,
        "events": len(at_b),
        "events_per_s": round(len(on_a.records) / wall, 1),
        "commits": len(commits.commits),
        "commit_to_b_ms": ms(at_b, committed),
        "commit_to_a_ms": ms(at_a, committed),
        "a_to_b_ms": ms(at_b, at_a),
        "stamp_to_commit_ms": ms(committed, stamps),
        "missing": missing,
        "same_order": same_order,
        "nodes": len(listed["nodes"]),
        "running_per_node_at_1s": sampled,
        "errors": problems.count,
        "error_samples": problems.samples,
        "server_log_unusual": cluster.unusual,
        **machine_state(),
    }


# --- 4. the event-order lock -----------------------------------------------------------


def lock_writer(
    url: str, locked: bool, start_at: float, seconds: float, events: int
) -> tuple[int, list[float], float]:
    """One process as one node's bus: commits of `events` events each through Store.apply
    from `start_at` for `seconds`; returns (commits, latencies in ms, lateness in s)."""
    store = Store(url)
    node = str(uuid.uuid4())
    with store.engine.begin() as conn:
        statements.register_node(
            conn, store.dialect, {"id": node, "host": "bench", "port": 0, "pid": os.getpid()}
        )
    store.node_id = node
    if not locked:  # a key of its own: the same statements, but nothing serializes
        statements.EVENTS_LOCK = int.from_bytes(os.urandom(4), "big")
    execution = str(uuid.uuid4())

    def batch() -> Batch:
        return Batch(
            (), [Event("notification", {"message": "x"}, execution) for _ in range(events)]
        )

    store.apply([batch()])  # connect, warm up
    late = max(0.0, time.time() - start_at)
    time.sleep(max(0.0, start_at - time.time()))
    latencies: list[float] = []
    end = start_at + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        store.apply([batch()])
        latencies.append((time.perf_counter() - t0) * 1000)
    store.engine.dispose()
    return len(latencies), latencies, late


def lock_config(
    pool: ProcessPoolExecutor, url: str, writers: int, locked: bool, args: argparse.Namespace
) -> dict[str, Any]:
    start_at = time.time() + 2.0
    futures = [
        pool.submit(lock_writer, url, locked, start_at, args.lock_seconds, args.lock_events)
        for _ in range(writers)
    ]
    results = [f.result() for f in futures]
    commits = sum(r[0] for r in results)
    latencies = [ms for r in results for ms in r[1]]
    return {
        "writers": writers,
        "lock": locked,
        "commits_per_s": round(commits / args.lock_seconds, 1),
        "events_per_s": round(commits * args.lock_events / args.lock_seconds, 1),
        "commit_ms": {**percentiles(latencies), "max": round(max(latencies), 1)},
        "late_start_s": round(max(r[2] for r in results), 2),
    }


def lock(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    state = machine_state()
    writer_counts = [int(n) for n in args.lock_writers.split(",")]
    with ProcessPoolExecutor(
        max(writer_counts), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        # every process started and importing before any window opens (a late writer
        # would shorten its own window and leave the others uncontended meanwhile)
        list(pool.map(time.sleep, [1.0] * max(writer_counts)))
        for writers in writer_counts:
            for locked in (True, False):
                with fresh_database(args.database) as db:
                    store = Store(db.url)
                    store.create_tables()
                    store.engine.dispose()
                    log(f"lock: {writers} writer(s), lock {'on' if locked else 'off'}")
                    results.append(lock_config(pool, db.url, writers, locked, args))
    return {
        "part": "lock",
        "events_per_commit": args.lock_events,
        "seconds": args.lock_seconds,
        "configs": results,
        "before": state,
        **machine_state(),
    }


# --- main ------------------------------------------------------------------------------


def on_fresh_database(
    once: Callable[[argparse.Namespace, Database], Awaitable[dict[str, Any]]],
) -> Callable[[argparse.Namespace], dict[str, Any]]:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        with fresh_database(args.database) as db:
            return asyncio.run(once(args, db))

    return run


PART_RUNS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]], str | None]] = {
    "failover": (on_fresh_database(failover_once), "failover_runs"),
    "throughput": (throughput, None),  # one run: its ratios are measured together
    "latency": (on_fresh_database(latency_once), "latency_runs"),
    "lock": (lock, "lock_runs"),
}


def run_part(
    part: str, args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    once, runs_option = PART_RUNS[part]
    count = getattr(args, runs_option) if runs_option else 1
    runs: list[dict[str, Any]] = []
    for index in range(count):
        log(f"{part}: run {index + 1}/{count}")
        try:
            result = once(args)
        except Exception as exc:
            result = {"part": part, "error": repr(exc), "errors": 1}
        result["run"] = index + 1
        emit(result)
        runs.append(result)
    return runs


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"summary": True}
    if runs := results.get("failover"):
        takeover = median(r.get("takeover_s") for r in runs)
        summary["failover"] = {
            "runs": len(runs),
            "takeover_s": [r.get("takeover_s") for r in runs],
            "median_takeover_s": takeover,
            "median_takeover_seen_s": median(r.get("takeover_seen_s") for r in runs),
            "median_declared_dead_s": median(r.get("declared_dead_s") for r in runs),
            "median_all_complete_s": median(r.get("all_complete_s") for r in runs),
            "target_met": takeover is not None and takeover <= TARGET_TAKEOVER_S,
        }
    if runs := results.get("throughput"):
        run = runs[0]
        if "workers_2" in run:
            summary["throughput"] = {
                "bare": run["bare"]["best"],
                **{
                    label: {
                        "steps_per_s": run[label]["steps_per_s"],
                        "ratio": run[label]["ratio_to_bare"],
                    }
                    for label in ("one_node", "workers_2")
                },
                "target_met": run["workers_2"]["ratio_to_bare"] >= TARGET_WORKERS_RATIO,
            }
    if runs := results.get("latency"):
        good = [r for r in runs if "commit_to_b_ms" in r]

        def figure(key: str, p: str) -> float | None:
            return median(r[key][p] for r in good)

        p99 = figure("commit_to_b_ms", "p99")
        summary["latency"] = {
            "runs": len(runs),
            **{
                f"{key}_{p}": figure(f"{key}_ms", p)
                for key in ("commit_to_b", "commit_to_a", "a_to_b")
                for p in ("p50", "p99")
            },
            "target_met": p99 is not None and p99 < TARGET_P99_MS,
        }
    if runs := results.get("lock"):
        good = [r for r in runs if "configs" in r]
        keys = [(c["writers"], c["lock"]) for c in good[0]["configs"]] if good else []

        def config(run: dict[str, Any], key: tuple[int, bool]) -> dict[str, Any]:
            return next(c for c in run["configs"] if (c["writers"], c["lock"]) == key)

        summary["lock"] = {
            f"{writers}w_{'lock' if locked else 'nolock'}": {
                "commits_per_s": median(
                    config(r, (writers, locked))["commits_per_s"] for r in good
                ),
                "p50_ms": median(config(r, (writers, locked))["commit_ms"]["p50"] for r in good),
                "p99_ms": median(config(r, (writers, locked))["commit_ms"]["p99"] for r in good),
            }
            for writers, locked in keys
        }
    return summary


def healthy(result: dict[str, Any]) -> bool:
    if "error" in result or result.get("errors"):
        return False
    configs = [result[k] for k in ("one_node", "workers_2") if k in result]
    return all(not c["errors"] and not c["lost"] and not c["failed"] for c in configs)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL; each run creates and drops a database there",
    )
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, comma separated")
    parser.add_argument("--quick", action="store_true", help="fewer runs and events (a smoke)")
    group = parser.add_argument_group("failover")
    group.add_argument("--failover-runs", type=int, default=5)
    group.add_argument("--failover-executions", type=int, default=6)
    group.add_argument("--failover-steps", type=int, default=3)
    group.add_argument("--failover-sleep", type=float, default=2.0, help="seconds per step")
    group.add_argument(
        "--kill-after",
        type=float,
        default=3.0,
        help="seconds after every execution started a step, before the kill",
    )
    group = parser.add_argument_group("throughput")
    group.add_argument("--executions", type=int, default=400, help="per configuration")
    group.add_argument("--steps", type=int, default=10)
    group.add_argument("--concurrency", type=int, default=32)
    group = parser.add_argument_group("latency")
    group.add_argument("--latency-runs", type=int, default=1)
    group.add_argument("--latency-events", type=int, default=3000)
    group.add_argument("--latency-steps", type=int, default=25, help="echo steps per execution")
    group.add_argument("--latency-inflight", type=int, default=8)
    group = parser.add_argument_group("lock")
    group.add_argument("--lock-writers", default="1,3,8")
    group.add_argument("--lock-runs", type=int, default=3)
    group.add_argument("--lock-seconds", type=float, default=2.0, help="per configuration")
    group.add_argument("--lock-events", type=int, default=3, help="events per commit")
    args = parser.parse_args(argv)
    if args.quick:
        args.failover_runs, args.executions, args.latency_events = 1, 100, 600
        args.lock_writers, args.lock_seconds, args.lock_runs = "1,3", 1.0, 1
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    print(orjson.dumps({"commit": commit, **machine_state()}).decode(), flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    ok = True

    def emit(result: dict[str, Any]) -> None:
        nonlocal ok
        ok = ok and healthy(result)
        print(orjson.dumps(result).decode(), flush=True)

    for part in PARTS:
        if part in args.only.split(","):
            results[part] = run_part(part, args, emit)
    summary = summarize(results)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    print(orjson.dumps(summary).decode(), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
