"""Benchmark a real Synthesis server against the bare spawn rate of this machine.

    python benchmarks/run.py [--scenario throughput|inflight] [--executions N] [--steps M]
        [--concurrency C] [--command CMD] [--database URL] [--runs R]
        [--poll-mode list|id] [--poll-interval S]

Each run measures the bare spawn rate (throughput scenario only), starts a server on a free
loopback port with a fresh data dir, drives one scenario, samples the server's RSS and
threads, stops it with SIGTERM and prints one JSON line. With --runs > 1 a final JSON line
holds the medians. Progress goes to stderr. Exits 1 if any execution was lost or failed,
a request errored, or the server did not exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import profile

TERMINAL = frozenset({"completed", "failed", "cancelled"})
BARE_SECONDS = 2.0  # per bare method
BARE_ASYNCIO_CONCURRENCY = 32
BARE_THREADS = 8
STUCK_SECONDS = 120.0  # an execution not finished this long after its POST counts as lost
INFLIGHT_WAIT_SECONDS = 90.0  # inflight: the least time to wait for all to finish
PROBE_INTERVAL = 0.05  # inflight: seconds between two GETs of the prober
SAMPLE_INTERVAL = 0.1
PROFILE_DELAY = 2.0  # seconds into the scenario before --profile starts sampling
DEFAULTS = {  # scenario -> (executions, steps, concurrency, command)
    "throughput": (1500, 10, 32, "true"),
    "inflight": (1000, 1, 50, "sleep 5"),
}


# --- bare limit ------------------------------------------------------------------------


async def _spawn_asyncio(
    argv: Sequence[str], concurrency: int, seconds: float, capture: bool = False
) -> float:
    """Spawns/s with asyncio subprocesses reaped by a PidfdChildWatcher; with `capture`,
    stdout and stderr are pipes read to the end, as Synthesis must."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    loop = asyncio.get_running_loop()
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.set_child_watcher(watcher)
    done = 0
    start = time.monotonic()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            await proc.communicate()
            done += 1

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        asyncio.set_child_watcher(None)  # closes the watcher
    return done / (time.monotonic() - start)


def _spawn_threads(argv: Sequence[str], threads: int, seconds: float) -> float:
    """Spawns/s with subprocess.run on a pool of threads."""
    counts = [0] * threads
    start = time.monotonic()
    deadline = start + seconds

    def worker(index: int) -> None:
        while time.monotonic() < deadline:
            subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            counts[index] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return sum(counts) / (time.monotonic() - start)


def bare_rates(command: str) -> dict[str, float]:
    """Measure both bare methods (after a short warm-up) and the best of them."""
    argv = ["/bin/sh", "-c", command]
    _spawn_threads(argv, BARE_THREADS, 0.3)
    rates = {
        "asyncio_pidfd": asyncio.run(_spawn_asyncio(argv, BARE_ASYNCIO_CONCURRENCY, BARE_SECONDS)),
        "threads_subprocess_run": _spawn_threads(argv, BARE_THREADS, BARE_SECONDS),
    }
    captured = asyncio.run(
        _spawn_asyncio(argv, BARE_ASYNCIO_CONCURRENCY, BARE_SECONDS, capture=True)
    )
    return {
        **{k: round(v, 1) for k, v in rates.items()},
        "asyncio_pidfd_captured": round(captured, 1),
        "best": round(max(rates.values()), 1),
    }


# --- server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_argv() -> list[str]:
    script = Path(sys.executable).parent / "synthesis"
    return [str(script)] if script.exists() else [sys.executable, "-m", "synthesis"]


@dataclass
class Server:
    """A `synthesis serve` subprocess with its own temp data dir and stderr log file."""

    proc: subprocess.Popen[bytes]
    port: int
    token: str
    data_dir: Path
    log: IO[bytes]

    @classmethod
    def start(
        cls, database: str | None, max_executions: int | None, extra: Sequence[str] = ()
    ) -> Server:
        """`extra`: more `synthesis serve` arguments (`--workers 2`, say)."""
        data_dir = Path(tempfile.mkdtemp(prefix="synthesis-bench-"))
        port, token = free_port(), secrets.token_urlsafe(16)
        argv = [*server_argv(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
        argv += [f"--token={token}"]  # a token may begin with "-"
        if database:
            argv += ["--database", database]
        if max_executions:
            argv += ["--max-executions", str(max_executions)]
        argv += extra
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHESIS_")}
        log = (data_dir / "server.log").open("wb")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        return cls(proc, port, token, data_dir, log)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before ready")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy after {timeout:.0f}s")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait; SIGKILL if it hangs. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)

    def log_lines(self) -> list[str]:
        return (self.data_dir / "server.log").read_text(errors="replace").splitlines()

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Api:
    """One keep-alive HTTP/1.1 connection; use one per thread."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Send a request; a GET is retried once on a broken connection."""
        payload = None if body is None else orjson.dumps(body)
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, payload, self.headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                if attempt or method != "GET":
                    raise
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, raw.decode(errors="replace")


@dataclass
class Problems:
    """Counts client-side errors and keeps the first few verbatim."""

    count: int = 0
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, text: str) -> None:
        with self.lock:
            self.count += 1
            if len(self.samples) < 10:
                self.samples.append(text[:500])


def runqueue_wait_s(pid: int) -> float:
    """Seconds the threads of `pid` spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(task.read_text().split()[1])
    return total / 1e9


class Sampler(threading.Thread):
    """Samples the server process (not its children) every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.halt = threading.Event()
        self.peak_rss = 0
        self.peak_threads = 0
        self.peak_fds = 0
        times = self.process.cpu_times()
        self.cpu_first = (times.user, times.system)  # start-up is not the scenario's
        self.cpu_user = self.cpu_system = 0.0
        self.waited_first = runqueue_wait_s(pid)  # threads that end are not counted
        self.waited = self.waited_first

    def run(self) -> None:
        while True:
            try:
                with self.process.oneshot():
                    self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
                    self.peak_threads = max(self.peak_threads, self.process.num_threads())
                    self.peak_fds = max(self.peak_fds, self.process.num_fds())
                    times = self.process.cpu_times()
                    self.cpu_user = times.user - self.cpu_first[0]
                    self.cpu_system = times.system - self.cpu_first[1]
                self.waited = max(self.waited, runqueue_wait_s(self.process.pid))
            except psutil.Error:
                return
            if self.halt.wait(SAMPLE_INTERVAL):
                return

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_user + self.cpu_system


# --- scenarios -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a scenario observed, per execution and overall."""

    wall_s: float
    completed: int = 0
    failed: int = 0
    lost: int = 0
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def plan_body(args: argparse.Namespace, tag: str) -> dict[str, Any]:
    steps = [
        {"id": f"s{i + 1}", "type": "command", "parameters": {"command": args.command}}
        for i in range(args.steps)
    ]
    return {
        "plan": {"name": f"bench-{args.scenario}", "steps": steps},
        "metadata": {"tags": [tag]},
        "start": True,
    }


def server_ms(view: dict[str, Any]) -> float | None:
    start, end = view.get("created_at"), view.get("completed_at")
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return delta.total_seconds() * 1000


def expect(
    api: Api, method: str, path: str, status: int, problems: Problems, body: object = None
) -> dict[str, Any] | None:
    """One request that should answer `status` with a JSON object; anything else is
    recorded as a problem and gives None."""
    try:
        got, data = api.call(method, path, body)
    except (http.client.HTTPException, OSError) as exc:
        problems.add(f"{method} {path} raised {exc!r}")
        return None
    if got != status or not isinstance(data, dict):
        problems.add(f"{method} {path} -> {got}: {data}")
        return None
    return data


def create(api: Api, body: dict[str, Any], problems: Problems) -> dict[str, Any] | None:
    """POST one execution; returns the 201 body, or None (recorded as a problem)."""
    return expect(api, "POST", "/api/executions", 201, problems, body)


def fetch(api: Api, execution_id: str, problems: Problems) -> dict[str, Any] | None:
    return expect(api, "GET", f"/api/executions/{execution_id}", 200, problems)


@dataclass
class InFlight:
    """One execution between its POST and the moment its end was observed."""

    sent: float
    created_at: str
    done: threading.Event = field(default_factory=threading.Event)
    view: dict[str, Any] | None = None
    seen: float = 0.0


class Tracker:
    """Shared state of the throughput scenario: in-flight executions, results, poll count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, InFlight] = {}
        self.outcome = Outcome(wall_s=0.0)
        self.recent: deque[float] = deque(maxlen=64)  # recent client latencies, seconds
        self.polls = 0

    def settle(self, execution_id: str, view: dict[str, Any], seen: float) -> bool:
        """Mark an execution ended (once); False if someone else already did."""
        with self.lock:
            flight = self.pending.pop(execution_id, None)
        if flight is None:
            return False
        flight.view, flight.seen = view, seen
        flight.done.set()
        return True

    def record(self, flight: InFlight | None) -> None:
        with self.lock:
            status = flight.view["status"] if flight and flight.view else None
            if flight is None or flight.view is None or status not in TERMINAL:
                self.outcome.lost += 1
                return
            if status == "completed":
                self.outcome.completed += 1
            else:
                self.outcome.failed += 1
            client_s = flight.seen - flight.sent
            self.outcome.client_ms.append(client_s * 1000)
            self.recent.append(client_s)
            ms = server_ms(flight.view)
            if ms is not None:
                self.outcome.server_ms.append(ms)

    def first_poll_delay(self, interval: float) -> float:
        with self.lock:
            typical = statistics.median(self.recent) if self.recent else 0.0
        return max(interval, typical / 2)


def watch_list(
    server: Server,
    tag: str,
    tracker: Tracker,
    interval: float,
    stop: threading.Event,
    problems: Problems,
) -> None:
    """List mode: each interval, one GET /api/executions?tag=..&from_date=<oldest in
    flight> settles every in-flight execution that has ended."""
    api = Api(server.port, server.token)
    while not stop.wait(interval):
        with tracker.lock:
            oldest = min((f.created_at for f in tracker.pending.values()), default=None)
        if oldest is None:
            continue
        query = urllib.parse.urlencode({"tag": tag, "from_date": oldest, "limit": 1000})
        try:
            status, data = api.call("GET", f"/api/executions?{query}")
        except (http.client.HTTPException, OSError) as exc:
            problems.add(f"GET /api/executions?{query} raised {exc!r}")
            continue
        seen = time.monotonic()
        with tracker.lock:
            tracker.polls += 1
        if status != 200 or not isinstance(data, dict):
            problems.add(f"GET /api/executions?{query} -> {status}: {data}")
            continue
        for row in data["executions"]:
            if row["status"] in TERMINAL:
                tracker.settle(row["execution_id"], row, seen)


def await_end(
    api: Api,
    execution_id: str,
    flight: InFlight,
    tracker: Tracker,
    args: argparse.Namespace,
    problems: Problems,
) -> InFlight | None:
    """Wait for an execution's end: polled by id (id mode), or settled by the list watcher
    with a by-id check once a second after 5 s as a fallback (list mode)."""
    by_id = args.poll_mode == "id"
    if by_id:
        delay = tracker.first_poll_delay(args.poll_interval)
        time.sleep(max(0.0, delay - (time.monotonic() - flight.sent)))
    while not flight.done.wait(0 if by_id else 1.0):
        age = time.monotonic() - flight.sent
        if by_id or age > 5.0:
            view = fetch(api, execution_id, problems)
            with tracker.lock:
                tracker.polls += 1
            if view is not None and view["status"] in TERMINAL:
                tracker.settle(execution_id, view, time.monotonic())
                continue
        if age > STUCK_SECONDS:
            with tracker.lock:
                stuck = tracker.pending.pop(execution_id, None) is not None
            if stuck:
                problems.add(f"execution {execution_id} not ended after {STUCK_SECONDS:.0f}s")
                return None
        if by_id:
            time.sleep(args.poll_interval)
    return flight


def run_throughput(server: Server, args: argparse.Namespace, problems: Problems) -> Outcome:
    """Keep `concurrency` executions in flight until `executions` have ended."""
    tag = f"bench-{uuid.uuid4().hex[:12]}"
    body = plan_body(args, tag)
    tracker = Tracker()
    issued = 0

    def worker() -> None:
        nonlocal issued
        api = Api(server.port, server.token)
        while True:
            with tracker.lock:
                if issued >= args.executions:
                    return
                issued += 1
            sent = time.monotonic()
            created = create(api, body, problems)
            if created is None:
                tracker.record(None)
                continue
            execution_id = str(created["execution_id"])
            flight = InFlight(sent, str(created["created_at"]))
            with tracker.lock:
                tracker.pending[execution_id] = flight
            tracker.record(await_end(api, execution_id, flight, tracker, args, problems))

    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_list,
        args=(server, tag, tracker, args.poll_interval, stop, problems),
        daemon=True,
    )
    if args.poll_mode == "list":
        watcher.start()
    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome = tracker.outcome
    outcome.wall_s = time.monotonic() - start
    stop.set()
    if watcher.is_alive():
        watcher.join()
    polls_per_s = round(tracker.polls / outcome.wall_s, 1)
    outcome.extra = {"poll_mode": args.poll_mode, "polls_per_s": polls_per_s}
    return outcome


class Prober(threading.Thread):
    """Inflight: GET /api/executions/{id} of a random execution created so far, every
    PROBE_INTERVAL, one at a time, until halted; keeps each answer's latency."""

    def __init__(self, server: Server, ids: list[str], problems: Problems) -> None:
        super().__init__(daemon=True)
        self.api = Api(server.port, server.token)
        self.ids = ids  # appended to by the creating threads
        self.problems = problems
        self.halt = threading.Event()
        self.ms: list[float] = []
        self.rng = random.Random(7)

        self.creating = True  # cleared once every POST is answered
        self.ms_creating: list[float] = []

    def run(self) -> None:
        while not self.halt.wait(PROBE_INTERVAL):
            if not self.ids:
                continue
            execution_id = self.ids[self.rng.randrange(len(self.ids))]
            creating, sent = self.creating, time.perf_counter()
            if fetch(self.api, execution_id, self.problems) is not None:
                ms = (time.perf_counter() - sent) * 1000
                self.ms.append(ms)
                if creating:
                    self.ms_creating.append(ms)


def run_inflight(server: Server, args: argparse.Namespace, problems: Problems) -> Outcome:
    """Create all executions at once, wait for all to finish (GETting random ones by id
    meanwhile), then check every one."""
    tag = f"bench-{uuid.uuid4().hex[:12]}"
    body = plan_body(args, tag)
    local = threading.local()
    ids: list[str] = []

    def api() -> Api:
        if not hasattr(local, "api"):
            local.api = Api(server.port, server.token)
        connection: Api = local.api
        return connection

    def create_one(_: int) -> str | None:
        created = create(api(), body, problems)
        if created is None:
            return None
        ids.append(str(created["execution_id"]))
        return ids[-1]

    prober = Prober(server, ids, problems)
    prober.start()
    start = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        created = list(pool.map(create_one, range(args.executions)))
    create_s = time.monotonic() - start
    prober.creating = False
    print(f"  created {len(ids)} in {create_s:.2f}s; waiting", file=sys.stderr, flush=True)

    watcher = Api(server.port, server.token)

    def count(status: str) -> int:
        try:
            code, data = watcher.call("GET", f"/api/executions?tag={tag}&status={status}&limit=1")
        except (http.client.HTTPException, OSError) as exc:
            problems.add(f"GET /api/executions?status={status} raised {exc!r}")
            return 0
        if code != 200 or not isinstance(data, dict):
            problems.add(f"GET /api/executions?status={status} -> {code}: {data}")
            return 0
        return int(data["total"])

    wait_s = args.wait_seconds or max(INFLIGHT_WAIT_SECONDS, args.executions / 50)
    # Each count reads every execution of the run: at 10,000 a poll costs the server more
    # than the GETs it measures, so it polls less often the more there are.
    interval = max(0.1, args.executions / 10_000)
    deadline = time.monotonic() + wait_s
    ticks = ended = 0
    while time.monotonic() < deadline:
        ended = count("completed")
        if ended < len(ids) and (ticks % 10 == 9 or interval >= 1):
            ended += count("failed") + count("cancelled")
        if ended >= len(ids):
            break
        ticks += 1
        time.sleep(interval)
    wall_s = time.monotonic() - start
    prober.halt.set()
    prober.join()

    outcome = Outcome(wall_s=wall_s, lost=sum(1 for c in created if c is None))
    with ThreadPoolExecutor(args.concurrency) as pool:
        views = list(pool.map(lambda i: fetch(api(), i, problems), ids))
    reasons: Counter[str] = Counter()
    for view in views:
        status = view["status"] if view else None
        if status == "completed":
            outcome.completed += 1
        elif status in TERMINAL:
            outcome.failed += 1
            for step in (view or {}).get("steps", ()):
                if step.get("status") in ("failed", "cancelled"):
                    reasons[str(step.get("error"))[:120]] += 1
        else:
            outcome.lost += 1
        ms = server_ms(view or {})
        if ms is not None:
            outcome.server_ms.append(ms)
    if ended < len(ids):
        problems.add(f"only {ended} of {len(ids)} ended within {wait_s:.0f}s")
    outcome.extra = {
        "create_s": round(create_s, 2),
        "all_complete_s": round(wall_s, 2),
        "drain_s": round(wall_s - create_s, 2),
        "get_ms": percentiles(prober.ms),
        "get_ms_while_creating": percentiles(prober.ms_creating),
        "get_ms_after_creating": percentiles(prober.ms[len(prober.ms_creating) :]),
        "gets": len(prober.ms),
        **({"failure_reasons": dict(reasons.most_common(5))} if reasons else {}),
    }
    return outcome


# --- reporting -------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def at(p: float) -> float:
        rank = p / 100 * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)

    return {"p50": at(50), "p95": at(95), "p99": at(99)}


def redact(url: str | None) -> str:
    if not url:
        return "sqlite (temp data dir)"
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Profiler:
    """py-spy on the server for `seconds`, from PROFILE_DELAY into the scenario."""

    def __init__(self, server: Server, seconds: float) -> None:
        self._raw = server.data_dir / "profile.raw"
        self._recorder: subprocess.Popen[bytes] | None = None
        self._timer = threading.Timer(PROFILE_DELAY, self._start, (server.proc.pid, seconds))
        if seconds > 0:
            self._timer.start()

    def _start(self, pid: int, seconds: float) -> None:
        self._recorder = profile.record(pid, seconds, self._raw)

    def summary(self) -> dict[str, Any]:
        self._timer.join()
        if self._recorder is None or self._recorder.wait() != 0 or not self._raw.exists():
            return {"error": "py-spy did not record (is the scenario shorter than the delay?)"}
        return profile.summarize(self._raw)


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One full run: bare limit, server, scenario, shutdown. Returns the result line."""
    bare: dict[str, float] | None = None
    if args.scenario == "throughput":
        print("measuring bare spawn rate", file=sys.stderr, flush=True)
        bare = bare_rates(args.command)
    max_executions = max(1000, args.executions) if args.scenario == "inflight" else None
    server = Server.start(args.database, max_executions)
    problems = Problems()
    result: dict[str, Any] = {}
    try:
        server.wait_ready()
        sampler = Sampler(server.proc.pid)
        sampler.start()
        nofile = list(sampler.process.rlimit(psutil.RLIMIT_NOFILE))  # [soft, hard] after start
        scenario = run_throughput if args.scenario == "throughput" else run_inflight
        print(f"running {args.scenario}", file=sys.stderr, flush=True)
        profiler = Profiler(server, args.profile)
        client_cpu = cpu_seconds()
        outcome = scenario(server, args, problems)
        client_cpu = cpu_seconds() - client_cpu
        sampler.halt.set()
        sampler.join()
        steps_per_s = outcome.completed * args.steps / outcome.wall_s
        steps_done = outcome.completed * args.steps
        result = {
            "scenario": args.scenario,
            "executions": args.executions,
            "steps_per_execution": args.steps,
            "concurrency": args.concurrency,
            "command": args.command,
            "database": redact(args.database),
            "executions_per_s": round(outcome.completed / outcome.wall_s, 2),
            "steps_per_s": round(steps_per_s, 1),
            "bare_rate": bare["best"] if bare else None,
            "bare_rates": bare,
            "ratio_to_bare": round(steps_per_s / bare["best"], 3) if bare else None,
            "ratio_to_captured": (
                round(steps_per_s / bare["asyncio_pidfd_captured"], 3) if bare else None
            ),
            "latency_ms": percentiles(outcome.client_ms),
            "server_latency_ms": percentiles(outcome.server_ms),
            "peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
            "peak_threads": sampler.peak_threads,
            "peak_fds": sampler.peak_fds,
            "server_nofile": nofile,
            "lost": outcome.lost,
            "failed": outcome.failed,
            "wall_s": round(outcome.wall_s, 2),
            **outcome.extra,
            "server_cpu_s": round(sampler.cpu_seconds, 1),
            "server_cpu_user_s": round(sampler.cpu_user, 1),
            "server_cpu_system_s": round(sampler.cpu_system, 1),
            "server_cpu_ms_per_step": (
                round(1000 * sampler.cpu_seconds / steps_done, 3) if steps_done else None
            ),
            "server_waiting_for_cpu_s": round(sampler.waited - sampler.waited_first, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "client_cpu_s": round(client_cpu, 1),
        }
        if args.profile:
            result["profile"] = profiler.summary()
    except Exception as exc:
        problems.add(f"run aborted: {exc!r}")
        result = {"scenario": args.scenario, "error": repr(exc)}
    finally:
        result["server_exit_code"] = server.stop()
        lines = server.log_lines()
        result["errors"] = problems.count
        if problems.samples:
            result["error_samples"] = problems.samples
        unusual = [line for line in lines if " INFO " not in line]
        if unusual or result["server_exit_code"] != 0:
            result["server_log_unusual"] = unusual[:20]
            result["server_stderr_tail"] = lines[-15:]
        if args.keep:
            result["data_dir"] = str(server.data_dir)
        else:
            server.cleanup()
    return result


def healthy(result: dict[str, Any]) -> bool:
    return (
        "error" not in result
        and result["lost"] == 0
        and result["failed"] == 0
        and result["errors"] == 0
        and result["server_exit_code"] == 0
    )


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the key figures over the successful runs."""
    good = [r for r in results if "error" not in r]

    def median(get: Callable[[dict[str, Any]], Any]) -> float | None:
        values = [v for v in map(get, good) if v is not None]
        return round(statistics.median(values), 3) if values else None

    summary: dict[str, Any] = {"summary": True, "runs": len(results), "good_runs": len(good)}
    for key in (
        "executions_per_s",
        "steps_per_s",
        "bare_rate",
        "ratio_to_bare",
        "ratio_to_captured",
        "server_cpu_ms_per_step",
    ):
        summary[key] = median(lambda r, k=key: r[k])
    for key in ("latency_ms", "server_latency_ms"):
        summary[key] = {p: median(lambda r, k=key, p=p: r[k][p]) for p in ("p50", "p95", "p99")}
    for key in ("get_ms",):
        if any(key in r for r in good):
            summary[key] = {
                p: median(lambda r, k=key, p=p: r.get(k, {}).get(p)) for p in ("p50", "p95", "p99")
            }
    for key in (
        "peak_rss_mib",
        "peak_threads",
        "peak_fds",
        "wall_s",
        "create_s",
        "all_complete_s",
        "drain_s",
    ):
        summary[key] = median(lambda r, k=key: r.get(k))
    summary["max_peak_rss_mib"] = max((r["peak_rss_mib"] for r in good), default=None)
    summary["lost_total"] = sum(r["lost"] for r in good)
    summary["failed_total"] = sum(r["failed"] for r in good)
    summary["server_exit_codes"] = [r["server_exit_code"] for r in results]
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(DEFAULTS), default="throughput")
    parser.add_argument("--executions", type=int, help="executions to run (1500; inflight 1000)")
    parser.add_argument("--steps", type=int, help="command steps per execution (10; inflight 1)")
    parser.add_argument(
        "--concurrency", type=int, help="executions in flight (32); inflight: parallel POSTs (50)"
    )
    parser.add_argument("--command", help="the step command (true; inflight 'sleep 5')")
    parser.add_argument("--database", help="server database URL (default: SQLite in a temp dir)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole run R times")
    parser.add_argument(
        "--keep", action="store_true", help="keep the server's data dir (log, SQLite file)"
    )
    parser.add_argument(
        "--wait-seconds",
        type=float,
        help="inflight: how long to wait for all to end after the last POST"
        " (default: 90, or executions / 50 when more)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.05, help="seconds between status polls (0.05)"
    )
    parser.add_argument(
        "--poll-mode",
        choices=("list", "id"),
        default="list",
        help="throughput: detect ends with one shared list query per interval (list) or a"
        " GET /api/executions/{id} per in-flight execution per interval (id)",
    )
    parser.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="S",
        help="sample the server with py-spy for S seconds, from 2 s into the scenario, and"
        " add where its busy time went to the result (benchmarks/profile.py)",
    )
    args = parser.parse_args(argv)
    executions, steps, concurrency, command = DEFAULTS[args.scenario]
    args.executions = args.executions or executions
    args.steps = args.steps or steps
    args.concurrency = args.concurrency or concurrency
    args.command = args.command or command
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for run in range(args.runs):
        if args.runs > 1:
            print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        result = run_once(args)
        print(orjson.dumps(result).decode(), flush=True)
        results.append(result)
    if args.runs > 1:
        print(orjson.dumps(summarize(results)).decode(), flush=True)
    return 0 if all(healthy(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
