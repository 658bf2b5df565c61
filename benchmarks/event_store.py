"""Benchmark the Events API on a store that holds many events.

    python benchmarks/event_store.py [--events 1000000] [--database URL] [--repeat 7]
        [--executions 10000] [--batch 5000] [--seed 1]

Fills a fresh database through `Store.apply` (batches of `--batch` events, one transaction
each): SQLite in a temp dir, or with `--database postgresql://user@host:port` a new database
`synthesis_bench_<random>` on that server, dropped at the end. Events spread over
`--executions` execution ids and every event type, with timestamps rising over the last 30
days. On PostgreSQL the fill is followed by `VACUUM (ANALYZE) events`, which autovacuum
would do on its own shortly after such a load; SQLite gets nothing (Synthesis runs no
ANALYZE there).

Then starts a real `synthesis serve` on that database (see run.py) and times, over one
keep-alive HTTP connection, each query 1 + `--repeat` times: the first call is reported as
`first_ms`, the others give `median_ms` and `p95_ms`. Parameters rotate between repeats (other
types, execution ids, days, event ids). The WebSocket figure is connect → last replayed
message of `/ws/events?since=<the event 10,000 from the end>`. `load_1m` is the machine's
1-minute load average before and after the timed part (others' work skews the figures).
Prints one JSON line; progress goes to stderr. Exits 1 if a request failed, a check did not
hold or the server did not exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import tornado.websocket
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import Api, Problems, Server, redact
from synthesis.engine import clock
from synthesis.engine.events import EVENT_TYPES, Event
from synthesis.store import Batch, Store

DAYS = 30
REPLAY_TAIL = 10_000  # the WebSocket replay starts this many events from the end
DEEP_OFFSET = 100_000
FAST_MS = 50.0  # a query is "fast" when its median is below this
SAMPLES = 64  # event ids kept for GET /api/events/{id}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the database ----------------------------------------------------------------------


@dataclass
class Database:
    """Where the events go: its URL for the server, and how to measure and drop it."""

    url: str
    dialect: str
    path: Path | None = None  # SQLite file
    admin_url: str | None = None  # PostgreSQL maintenance database
    name: str | None = None

    def size_mib(self) -> float:
        if self.path is not None:
            files = [self.path, *self.path.parent.glob(self.path.name + "-*")]
            return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 1)
        assert self.admin_url is not None
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (self.name,)).fetchone()
        return round(int(row[0]) / 2**20, 1) if row else 0.0


def plain_pg(url: URL) -> str:
    """A libpq URL (psycopg.connect does not take SQLAlchemy's driver suffix)."""
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


@contextmanager
def fresh_database(server_url: str | None) -> Iterator[Database]:
    """A new empty database, removed afterwards: SQLite in a temp dir, or a
    `synthesis_bench_<random>` database on the PostgreSQL server at `server_url`."""
    if server_url is None:
        folder = Path(tempfile.mkdtemp(prefix="synthesis-events-"))
        path = folder / "events.db"
        try:
            yield Database(f"sqlite:///{path}", "sqlite", path=path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    base = make_url(server_url)
    if not base.drivername.startswith("postgres"):
        raise SystemExit("--database takes a PostgreSQL server URL; omit it for SQLite")
    name = f"synthesis_bench_{uuid.uuid4().hex[:12]}"
    admin = plain_pg(base.set(database="postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(plain_pg(base.set(database=name)), "postgresql", admin_url=admin, name=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- filling ---------------------------------------------------------------------------


@dataclass
class Filled:
    """What the queries need to know about the stored events."""

    count: int
    apply_s: float
    wall_s: float
    first_time: datetime
    execution_ids: list[str]
    sample_ids: list[str] = field(default_factory=list)
    since_id: str = ""
    last_id: str = ""
    expected_replay: int = 0


def payload(kind: str, execution_id: str, rng: random.Random) -> dict[str, Any]:
    """A small payload shaped like the engine's own for that type."""
    data: dict[str, Any] = {"execution_id": execution_id}
    if kind.startswith("step_"):
        data["step_id"] = f"s{rng.randrange(1, 11)}"
        if kind == "step_output":
            data["stream"] = "stdout"
            data["text"] = f"line {rng.randrange(10**6)} of some command output\n"
        elif kind == "step_completed":
            data.update(status="completed", exit_code=0, duration_ms=rng.randrange(5, 5000))
    elif kind.startswith("plan_"):
        data["plan_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    elif kind == "invocation_completed":
        data.update(integration_id="http", capability_id="request", status="completed")
    elif kind == "notification":
        data["message"] = "deploy finished"
    else:
        data["status"] = kind.removeprefix("execution_")
    return data


def fill(store: Store, total: int, executions: int, batch_size: int, seed: int) -> Filled:
    """Store `total` events through Store.apply, `batch_size` per transaction."""
    rng = random.Random(seed)
    execution_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(executions)]
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / max(1, total)
    samples = set(rng.sample(range(total), min(SAMPLES, total)))
    since_index = max(0, total - REPLAY_TAIL - 1)
    filled = Filled(total, 0.0, 0.0, start, execution_ids)
    filled.expected_replay = total - since_index - 1
    began = time.monotonic()
    reported = began
    for offset in range(0, total, batch_size):
        chunk = []
        for index in range(offset, min(total, offset + batch_size)):
            kind = EVENT_TYPES[rng.randrange(len(EVENT_TYPES))]
            execution_id = execution_ids[rng.randrange(executions)]
            event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            moment = clock.format_time(start + step * index)
            chunk.append(
                Event(kind, payload(kind, execution_id, rng), execution_id, event_id, moment)
            )
            if index in samples:
                filled.sample_ids.append(event_id)
            if index == since_index:
                filled.since_id = event_id
        filled.last_id = chunk[-1].event_id
        t0 = time.monotonic()
        store.apply([Batch((), chunk)])
        filled.apply_s += time.monotonic() - t0
        if time.monotonic() - reported > 10:
            reported = time.monotonic()
            done = offset + len(chunk)
            log(f"  {done:,} events, {done / filled.apply_s:,.0f}/s in apply")
    filled.wall_s = time.monotonic() - began
    rng.shuffle(filled.sample_ids)
    return filled


def vacuum_analyze(db: Database) -> float:
    """PostgreSQL only: what autovacuum does after a bulk load (visibility map, stats)."""
    t0 = time.monotonic()
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) events")
    return time.monotonic() - t0


# --- timing ----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def figures(first: float, rest: list[float]) -> dict[str, float]:
    return {
        "first_ms": round(first, 2),
        "median_ms": round(statistics.median(rest), 2),
        "p95_ms": round(quantile(rest, 0.95), 2),
    }


Check = Callable[[Any], str | None]  # a response body -> a problem, or None


def time_get(
    api: Api, paths: Callable[[int], str], repeat: int, check: Check, problems: Problems
) -> dict[str, Any]:
    """GET paths(0..repeat) in turn; the first is the warm-up."""
    times: list[float] = []
    for i in range(repeat + 1):
        path = paths(i)
        t0 = time.perf_counter()
        try:
            status, body = api.call("GET", path)
        except (http.client.HTTPException, OSError) as exc:
            problems.add(f"GET {path} raised {exc!r}")
            continue
        times.append((time.perf_counter() - t0) * 1000)
        problem = f"status {status}" if status != 200 else check(body)
        if problem:
            problems.add(f"GET {path}: {problem}: {str(body)[:200]}")
    if len(times) < 2:
        return {"error": "no answers"}
    return {**figures(times[0], times[1:]), "example": paths(0)}


def page_check(expect_total: int | None = None, expect_rows: int | None = None) -> Check:
    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or "events" not in body:
            return "not a page"
        if expect_total is not None and body["total"] != expect_total:
            return f"total {body['total']} != {expect_total}"
        if expect_rows is not None and len(body["events"]) != expect_rows:
            return f"{len(body['events'])} rows != {expect_rows}"
        if not body["events"]:
            return "empty page"
        return None

    return check


async def replay_once(url: str, expected: int, last_id: str) -> float:
    """Connect, wait for the `expected`-th message; ms from connect to it."""
    done = asyncio.get_running_loop().create_future()
    count = 0

    def heard(message: str | bytes | None) -> None:
        nonlocal count
        if done.done():
            return
        if message is None:
            done.set_exception(RuntimeError(f"socket closed after {count} of {expected}"))
            return
        count += 1
        if count == expected:
            got = orjson.loads(message)["event_id"]
            if got != last_id:
                done.set_exception(RuntimeError(f"last message {got}, expected {last_id}"))
            else:
                done.set_result(None)

    t0 = time.perf_counter()
    conn = await tornado.websocket.websocket_connect(
        url, on_message_callback=heard, connect_timeout=30, max_message_size=2**24
    )
    try:
        await asyncio.wait_for(done, 120)
    finally:
        conn.close()
    return (time.perf_counter() - t0) * 1000


async def time_replay(
    url: str, expected: int, last_id: str, repeat: int, problems: Problems
) -> dict[str, Any]:
    times = []
    for _ in range(repeat + 1):
        try:
            times.append(await replay_once(url, expected, last_id))
        except Exception as exc:
            problems.add(f"replay: {exc!r}")
    if len(times) < 2:
        return {"error": "no replays"}
    rest = statistics.median(times[1:])
    return {
        **figures(times[0], times[1:]),
        "messages": expected,
        "messages_per_s": round(expected / rest * 1000),
    }


def measure(server: Server, filled: Filled, repeat: int, problems: Problems) -> dict[str, Any]:
    """Every timed query against the running server."""
    api = Api(server.port, server.token)
    pick = random.Random(7)
    executions = pick.sample(filled.execution_ids, min(len(filled.execution_ids), repeat + 1))
    n = filled.count

    def day(i: int) -> str:
        start = filled.first_time + timedelta(days=1 + (i * 3) % (DAYS - 2))
        window = {
            "from_date": clock.format_time(start),
            "to_date": clock.format_time(start + timedelta(days=1)),
        }
        return "/api/events?" + urllib.parse.urlencode(window)

    def by_id(body: Any) -> str | None:
        return None if isinstance(body, dict) and "event_id" in body else "not an event"

    ids = filled.sample_ids
    queries: dict[str, tuple[Callable[[int], str], Check]] = {
        "list_first_page": (lambda i: "/api/events", page_check(n, min(50, n))),
        "list_by_type": (
            lambda i: f"/api/events?type={EVENT_TYPES[i % len(EVENT_TYPES)]}",
            page_check(),
        ),
        "list_by_execution": (
            lambda i: f"/api/events?execution_id={executions[i % len(executions)]}",
            page_check(),
        ),
        "list_one_day": (day, page_check()),
        "list_deep_page": (
            lambda i: f"/api/events?offset={DEEP_OFFSET}",
            page_check(n, 50) if n >= DEEP_OFFSET + 50 else (lambda body: None),
        ),
        "get_by_id": (lambda i: f"/api/events/{ids[i % len(ids)]}", by_id),
    }
    results: dict[str, Any] = {}
    for name, (paths, check) in queries.items():
        log(f"timing {name}")
        results[name] = time_get(api, paths, repeat, check, problems)
    log("timing ws_replay")
    query = urllib.parse.urlencode({"token": server.token, "since": filled.since_id})
    url = f"ws://127.0.0.1:{server.port}/ws/events?{query}"
    results["ws_replay"] = asyncio.run(
        time_replay(url, filled.expected_replay, filled.last_id, repeat, problems)
    )
    return results


# --- main ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fill, serve, time; returns the result line."""
    problems = Problems()
    result: dict[str, Any] = {"benchmark": "event_store", "events": args.events}
    with fresh_database(args.database) as db:
        result["database"] = db.dialect if args.database is None else redact(db.url)
        store = Store(db.url)
        try:
            store.create_tables()
            log(f"filling {args.events:,} events into {db.dialect}")
            filled = fill(store, args.events, args.executions, args.batch, args.seed)
        finally:
            store.close()
        result.update(
            executions=args.executions,
            batch=args.batch,
            fill_events_per_s=round(filled.count / filled.apply_s),
            fill_apply_s=round(filled.apply_s, 1),
            fill_wall_s=round(filled.wall_s, 1),
        )
        log(f"filled in {filled.wall_s:.1f}s ({result['fill_events_per_s']:,}/s in apply)")
        if db.dialect == "postgresql":
            result["vacuum_analyze_s"] = round(vacuum_analyze(db), 1)
        result["database_mib"] = db.size_mib()
        server = Server.start(db.url, None)
        try:
            server.wait_ready(120)
            load_before = os.getloadavg()[0]
            result["queries"] = measure(server, filled, args.repeat, problems)
            result["load_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        except Exception as exc:
            problems.add(f"aborted: {exc!r}")
            result["error"] = repr(exc)
        finally:
            result["server_exit_code"] = server.stop()
            lines = server.log_lines()
            unusual = [line for line in lines if " INFO " not in line]
            if unusual or result["server_exit_code"] != 0:
                result["server_log_unusual"] = unusual[:20]
            server.cleanup()
    queries = {k: v for k, v in result.get("queries", {}).items() if k != "ws_replay"}
    result["fast"] = sorted(
        k for k, v in queries.items() if v.get("median_ms", float("inf")) < FAST_MS
    )
    result["slow"] = sorted(set(queries) - set(result["fast"]))
    result["errors"] = problems.count
    if problems.samples:
        result["error_samples"] = problems.samples
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to store (1e6)")
    parser.add_argument(
        "--database",
        help="PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432; a fresh"
        " database is created there and dropped at the end (default: SQLite in a temp dir)",
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per query (7)")
    parser.add_argument("--executions", type=int, default=10_000, help="execution ids (10000)")
    parser.add_argument("--batch", type=int, default=5_000, help="events per Store.apply (5000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.executions < 1 or args.batch < 1:
        parser.error("--events, --repeat, --executions and --batch must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    result = run(parse_args(argv))
    print(orjson.dumps(result).decode(), flush=True)
    ok = "error" not in result and result["errors"] == 0 and result["server_exit_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
