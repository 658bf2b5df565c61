"""Every list endpoint, and get by id, on a store holding a million events.

    python benchmarks/lists.py [--database postgresql://postgres@127.0.0.1:5432]
        [--reuse PATH_OR_NAME] [--executions 100000] [--events 1000000] [--plans 5000]
        [--deliveries 200000] [--repeat 30] [--passes 3] [--only executions,events,...]

Seeds a store directly, through its tables (bulk inserts, not the API): executions with
steps and tags (statuses, creators and tags with skewed frequencies, created over 90
days), events for them in time order, plans with tags, and webhook subscriptions (paused,
so the server delivers nothing) with deliveries. SQLite: a file in a temp dir; with
`--database postgresql://user@host:port`, a database `synthesis_lists_<random>` there
(created and dropped by the harness).

`--reuse PATH` (SQLite: a file; PostgreSQL: a database name on that server) keeps the
seeded database: seeded when missing, reused as it is otherwise. Each run then works on a
copy of it (a file copy; `CREATE DATABASE ... TEMPLATE`), so the seed stays as the
version that made it left it and every run upgrades a copy at start, as a server of a
newer version does with an older database (`server_start_s` includes that).

Then it starts a real `synthesis serve` on the database (PostgreSQL: `VACUUM (ANALYZE)`
once it has started, what autovacuum does after a bulk load or an upgrade), and times over
one keep-alive loopback connection each query: one warm-up, then `--repeat` calls with
rotating parameters, `--passes` times; each figure (p50, p95, max, ms on the client's
clock) is the median over the passes. The cursors (`after=`, `before=`) are item ids read
from the database at the depth named. A query the server refuses (a version without
cursors) is reported with its status and left out of the verdict.

Prints a table to stderr and one JSON line to stdout. Exits 1 if a request failed (other
than a refused cursor), a check did not hold or the server did not exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.append(str(Path(__file__).resolve().parent.parent))  # benchmarks.*; synthesis as installed

from benchmarks.event_store import Database, plain_pg, quantile
from benchmarks.run import Api, Problems, Server, redact
from synthesis.engine import clock
from synthesis.store import Store

DAYS = 90
TARGET_LIST_MS = 50.0  # p95 of every list
TARGET_GET_MS = 5.0  # p95 of a get by id
STEPS = 5  # step rows per execution
STATUSES = (  # (status, share): no `running`, which a server would claim and run
    ("completed", 0.85),
    ("failed", 0.08),
    ("cancelled", 0.04),
    ("created", 0.025),
    ("paused", 0.005),
)
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
USER_WEIGHTS = (40, 20, 10, 8, 6, 5, 4, 3, 2, 2)
SUBSCRIPTIONS = 3  # the first gets --deliveries, the second 1,000, the third none


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def js(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- the database ----------------------------------------------------------------------


@dataclass
class Place:
    """Where the seed lives and where a run works (a copy of it, or the seed itself)."""

    db: Database
    seeded: bool  # already holds the seed
    keep: bool  # --reuse: keep the seed after the run


def _pg_exists(admin: str, name: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


@contextlib.contextmanager
def seed_place(server_url: str | None, reuse: str | None) -> Iterator[Place]:
    """The seed's database: the `--reuse` one (kept), or a fresh one (removed after)."""
    if server_url is None:
        if reuse:
            path = Path(reuse).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            yield Place(Database(f"sqlite:///{path}", "sqlite", path=path), path.exists(), True)
            return
        folder = Path(tempfile.mkdtemp(prefix="synthesis-lists-"))
        path = folder / "seed.db"
        try:
            yield Place(Database(f"sqlite:///{path}", "sqlite", path=path), False, False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    base = make_url(server_url)
    if not base.drivername.startswith("postgres"):
        raise SystemExit("--database takes a PostgreSQL server URL; omit it for SQLite")
    admin = plain_pg(base.set(database="postgres"))
    name = reuse or f"synthesis_lists_{uuid.uuid4().hex[:12]}"
    db = Database(plain_pg(base.set(database=name)), "postgresql", admin_url=admin, name=name)
    existed = _pg_exists(admin, name)
    if not existed:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Place(db, existed, bool(reuse))
    finally:
        if not reuse:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def working_copy(place: Place) -> Iterator[Database]:
    """A copy of a kept seed for this run (removed after); a fresh seed is used as is."""
    seed = place.db
    if not place.keep:
        yield seed
        return
    if seed.path is not None:
        folder = Path(tempfile.mkdtemp(prefix="synthesis-lists-run-"))
        path = folder / "run.db"
        with sqlite3.connect(seed.path) as source, sqlite3.connect(path) as target:
            source.backup(target)  # consistent, WAL included
        try:
            yield Database(f"sqlite:///{path}", "sqlite", path=path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    assert seed.admin_url is not None and seed.name is not None
    name = f"{seed.name}_run_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(seed.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{seed.name}"')
    url = plain_pg(make_url(seed.url).set(database=name))
    try:
        yield Database(url, "postgresql", admin_url=seed.admin_url, name=name)
    finally:
        with psycopg.connect(seed.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- seeding ---------------------------------------------------------------------------


class Writer:
    """Bulk rows into the store's tables: executemany on SQLite, COPY on PostgreSQL.
    Columns are the table's own (this version's), missing values None."""

    def __init__(self, db: Database) -> None:
        from sqlmodel import SQLModel

        self.tables = SQLModel.metadata.tables
        self.db = db
        if db.path is not None:
            self.sqlite = sqlite3.connect(db.path, isolation_level=None)
            self.sqlite.execute("PRAGMA synchronous=OFF")
            self.sqlite.execute("BEGIN")
            self.pg = None
        else:
            self.sqlite = None
            self.pg = psycopg.connect(db.url)

    def columns(self, table: str, omit: Sequence[str] = ()) -> list[str]:
        return [c.name for c in self.tables[table].columns if c.name not in omit]

    def write(self, table: str, rows: list[dict[str, Any]], omit: Sequence[str] = ()) -> None:
        if not rows:
            return
        names = self.columns(table, omit)
        values = [tuple(row.get(n) for n in names) for row in rows]
        quoted = ", ".join(f'"{n}"' for n in names)
        if self.sqlite is not None:
            marks = ", ".join("?" * len(names))
            self.sqlite.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', values)
            return
        assert self.pg is not None
        with self.pg.cursor() as cur, cur.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
            for value in values:
                copy.write_row(value)

    def commit(self) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("COMMIT")
            self.sqlite.execute("BEGIN")
        else:
            assert self.pg is not None
            self.pg.commit()

    def close(self) -> None:
        self.commit()
        if self.sqlite is not None:
            self.sqlite.execute("COMMIT")
            self.sqlite.close()
        elif self.pg is not None:
            self.pg.close()


def pick_status(rng: random.Random) -> str:
    r, acc = rng.random(), 0.0
    for status, share in STATUSES:
        acc += share
        if r < acc:
            return status
    return STATUSES[0][0]


def tags_for(rng: random.Random, i: int) -> list[str]:
    """env:prod on half, env:staging on 30 %, one of 10 teams each, nightly on 10 %, and a
    rare release tag (one execution in a thousand shares it with ~99 others)."""
    tags = []
    r = rng.random()
    if r < 0.5:
        tags.append("env:prod")
    elif r < 0.8:
        tags.append("env:staging")
    tags.append(f"team:{rng.randrange(10)}")
    if rng.random() < 0.1:
        tags.append("nightly")
    if i % 1000 == 7:
        tags.append(f"release:{i % 100}")
    return tags


def plan_document(name: str, tags: list[str], creator: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "seeded for benchmarks/lists.py",
        "steps": [
            {"id": f"s{k}", "type": "command", "parameters": {"command": f"echo step {k}"}}
            for k in range(STEPS)
        ],
        "metadata": {"tags": tags, "created_by": creator},
    }


def seed(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the store's tables; what was stored, and how long it took."""
    t0 = time.monotonic()
    store = Store(db.url)
    try:
        store.create_tables()
    finally:
        store.close()
    rng = random.Random(args.seed)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=DAYS)
    span = (end - start) / max(1, args.executions)
    per_execution = max(1, args.events // max(1, args.executions))
    out = Writer(db)
    event_count = 0
    sub_ids = [uid(rng) for _ in range(SUBSCRIPTIONS)]
    deliveries_left = [args.deliveries, min(1000, args.deliveries), 0]
    chunk = 10_000
    try:
        # plans first: their events are among the oldest
        plans, plan_tags, plan_events = [], [], []
        for p in range(args.plans):
            moment = start + (end - start) * p / max(1, args.plans) / 10
            pid, creator = uid(rng), rng.choices(USERS, USER_WEIGHTS)[0]
            tags = tags_for(rng, p)
            doc = plan_document(f"plan {p}", tags, creator)
            plans.append(
                {
                    "id": pid,
                    "name": doc["name"],
                    "description": doc["description"],
                    "document": js(doc),
                    "meta": js(doc["metadata"]),
                    "created_by": creator,
                    "created_at": clock.format_time(moment),
                    "updated_at": None,
                }
            )
            plan_tags += [{"plan_id": pid, "tag": t} for t in tags]
            plan_events.append(
                ("plan_created", None, {"plan_id": pid, "name": doc["name"]}, moment)
            )
        out.write("plans", plans)
        out.write("plan_tags", plan_tags)
        delivery_rows: list[dict[str, Any]] = []

        def emit(batch: list[tuple[str, str | None, dict[str, Any], datetime]]) -> None:
            nonlocal event_count
            rows = []
            for kind, execution_id, data, moment in batch:
                event_id = uid(rng)
                event_count += 1
                stamp = clock.format_time(moment)
                rows.append(
                    {
                        "event_id": event_id,
                        "type": kind,
                        "timestamp": stamp,
                        "execution_id": execution_id,
                        "payload": js(data),
                    }
                )
                for s in range(SUBSCRIPTIONS):
                    if deliveries_left[s] > 0:
                        deliveries_left[s] -= 1
                        r = rng.random()
                        status = "delivered" if r < 0.97 else "dead" if r < 0.99 else "failed"
                        delivery_rows.append(
                            {
                                "id": uid(rng),
                                "subscription_id": sub_ids[s],
                                "event_id": event_id,
                                "event_type": kind,
                                "seq": event_count,
                                "status": status,
                                "attempts": 1 if status == "delivered" else 12,
                                "status_code": 200 if status == "delivered" else 500,
                                "error": None if status == "delivered" else "HTTP 500",
                                "created_at": stamp,
                                "completed_at": stamp,
                                "next_attempt_at": None,
                                "redelivery_of": None,
                            }
                        )
            out.write("events", rows, omit=("seq",))

        emit(plan_events)
        executions, tags_rows, steps_rows = [], [], []
        pending: list[tuple[str, str | None, dict[str, Any], datetime]] = []
        for i in range(args.executions):
            created = start + span * i
            eid, creator = uid(rng), rng.choices(USERS, USER_WEIGHTS)[0]
            status, tags = pick_status(rng), tags_for(rng, i)
            started = created + timedelta(milliseconds=5) if status != "created" else None
            done = status in ("completed", "failed", "cancelled")
            completed = created + span * 0.8 if done else None
            name = f"nightly build {i % 500}"
            plan = plan_document(name, tags, creator)
            executions.append(
                {
                    "id": eid,
                    "name": name,
                    "status": status,
                    "plan_id": None,
                    "plan": js(plan),
                    "variables": js({"n": i}),
                    "meta": js({"tags": tags, "created_by": creator}),
                    "created_by": creator,
                    "created_at": clock.format_time(created),
                    "started_at": clock.format_time(started) if started else None,
                    "paused_at": None,
                    "completed_at": clock.format_time(completed) if completed else None,
                    "error": "step s4 failed" if status == "failed" else None,
                    "parent_execution_id": None,
                    "parent_step_id": None,
                    "depth": 0,
                    "node_id": None,
                    "claims": 0,
                }
            )
            stamp = clock.format_time(created)
            tags_rows += [{"execution_id": eid, "tag": t, "created_at": stamp} for t in tags]
            step_status = {"completed": "completed", "failed": "failed"}.get(status, "pending")
            for k in range(STEPS):
                steps_rows.append(
                    {
                        "execution_id": eid,
                        "step_id": f"s{k}",
                        "position": k,
                        "type": "command",
                        "status": step_status,
                        "parameters": js({"command": f"echo step {k}"}),
                        "output": f"step {k}\n" if step_status == "completed" else None,
                        "error": None,
                        "exit_code": 0 if step_status == "completed" else None,
                        "started_at": None,
                        "completed_at": None,
                        "duration_ms": 12 if step_status == "completed" else None,
                        "attempts": None,
                    }
                )
            kinds = ["execution_created", "execution_started"]
            for _ in range((per_execution - 4) // 2):
                kinds += ["step_started", "step_completed"]
            kinds += ["step_output"] * (per_execution - 1 - len(kinds)) + ["execution_completed"]
            tick = span * 0.8 / len(kinds)
            for n, kind in enumerate(kinds):
                data: dict[str, Any] = {"execution_id": eid}
                if kind.startswith("step_"):
                    data["step_id"] = f"s{n % STEPS}"
                if kind == "step_output":
                    data.update(stream="stdout", text=f"line {n} of some output\n")
                pending.append((kind, eid, data, created + tick * n))
            if len(executions) >= chunk or i == args.executions - 1:
                out.write("executions", executions)
                tag_names = out.columns("execution_tags")
                out.write(
                    "execution_tags", [{k: r[k] for k in r if k in tag_names} for r in tags_rows]
                )
                out.write("steps", steps_rows)
                emit(pending)
                out.write("subscription_deliveries", delivery_rows)
                out.commit()
                executions, tags_rows, steps_rows, pending, delivery_rows = [], [], [], [], []
                log(f"  seeded {i + 1:,} executions, {event_count:,} events")
        out.write(
            "subscriptions",
            [
                {
                    "id": sub_ids[s],
                    "types": js([]),
                    "event_filter": js({}),
                    "callback_url": f"http://127.0.0.1:9/hook{s}",
                    "secret": None,
                    "created_at": clock.format_time(start),
                    "expiration": None,
                    "position": event_count,
                    "created_by": "alice",
                    "status": "paused",
                    "paused_at": clock.format_time(end),
                    "paused_reason": "seeded by benchmarks/lists.py",
                    "failures": 0,
                    "node_id": None,
                }
                for s in range(SUBSCRIPTIONS)
            ],
        )
    finally:
        out.close()
    if db.dialect == "postgresql":
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
    return {"seed_s": round(time.monotonic() - t0, 1), "events": event_count}


# --- what to ask -----------------------------------------------------------------------


@dataclass
class Probe:
    """Ids and values read from the database: cursors at depths, samples for gets."""

    counts: dict[str, int] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # samples for get by id
    at: dict[str, str] = field(default_factory=dict)  # cursor id at a named depth
    first_day: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    subscription: str = ""
    small_subscription: str = ""


def probe(db: Database) -> Probe:
    """Read, outside the server, what the queries need (before the server starts)."""
    url = db.url if db.dialect == "sqlite" else "postgresql+psycopg" + db.url[len("postgresql") :]
    engine = create_engine(url)
    p = Probe()
    with engine.connect() as conn:

        def one(sql: str, **params: Any) -> Any:
            return conn.execute(text(sql), params).scalar()

        for table in ("executions", "events", "plans", "subscription_deliveries"):
            p.counts[table] = int(one(f"SELECT count(*) FROM {table}"))
        n, m = p.counts["executions"], p.counts["events"]
        first = one("SELECT min(created_at) FROM executions")
        p.first_day = datetime.fromisoformat(first.replace("Z", "+00:00"))
        order_x = "ORDER BY created_at DESC, id DESC"
        for depth in (1_000, n // 2, n - 100):
            p.at[f"execution@{depth}"] = one(
                f"SELECT id FROM executions {order_x} LIMIT 1 OFFSET :d", d=depth
            )
        p.at["execution@completed"] = one(
            f"SELECT id FROM executions WHERE status = 'completed' {order_x} LIMIT 1 OFFSET :d",
            d=int(n * 0.85) - 100,
        )
        p.at["execution@env:prod"] = one(
            "SELECT e.id FROM executions e JOIN execution_tags t ON t.execution_id = e.id"
            " WHERE t.tag = 'env:prod' ORDER BY e.created_at DESC, e.id DESC LIMIT 1 OFFSET :d",
            d=n // 2 - 100,
        )
        for depth in (1_000, m // 2, m - 100):
            p.at[f"event@{depth}"] = one(
                "SELECT event_id FROM events ORDER BY seq DESC LIMIT 1 OFFSET :d", d=depth
            )
        p.at["event@step_completed"] = one(
            "SELECT event_id FROM events WHERE type = 'step_completed' ORDER BY seq DESC"
            " LIMIT 1 OFFSET :d",
            d=m // 4,
        )
        plans = p.counts["plans"]
        p.at["plan@deep"] = one(
            "SELECT id FROM plans ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET :d",
            d=max(0, plans - 100),
        )
        subs = list(
            conn.execute(
                text(
                    "SELECT s.id, count(d.id) FROM subscriptions s LEFT JOIN"
                    " subscription_deliveries d ON d.subscription_id = s.id"
                    " GROUP BY s.id ORDER BY count(d.id) DESC"
                )
            )
        )
        p.subscription, p.small_subscription = subs[0][0], subs[1][0]
        d = int(subs[0][1])
        p.counts["deliveries"] = d
        p.at["delivery@deep"] = one(
            "SELECT id FROM subscription_deliveries WHERE subscription_id = :s"
            " ORDER BY seq DESC, created_at DESC, id DESC LIMIT 1 OFFSET :d",
            s=p.subscription,
            d=max(0, d - 100),
        )
        rng = random.Random(3)
        for table, column, key in (
            ("executions", "id", "execution"),
            ("events", "event_id", "event"),
            ("plans", "id", "plan"),
        ):
            total = p.counts[table]
            picks = sorted(rng.sample(range(total), min(64, total)))
            p.ids[key] = [
                one(f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET :d", d=k)
                for k in picks[:16]
            ]
            rng.shuffle(p.ids[key])
    engine.dispose()
    return p


Query = tuple[str, str, Callable[[int], str], str | None]  # name, group, path(i), list key


def queries(p: Probe) -> list[Query]:
    n, m, plans, d = (p.counts[k] for k in ("executions", "events", "plans", "deliveries"))
    day0 = p.first_day
    out: list[Query] = []

    def adder(group: str, key: str | None, base: str) -> Callable[[str, Any], None]:
        def add(name: str, path: str | Callable[[int], str]) -> None:
            if isinstance(path, str):
                out.append((name, group, lambda i, q=path: base + q, key))
            else:
                out.append((name, group, lambda i, f=path: base + f(i), key))

        return add

    def window(i: int, days: int) -> str:
        start = day0 + timedelta(days=10 + (i * 7) % (DAYS - days - 11))
        return urllib.parse.urlencode(
            {
                "from_date": clock.format_time(start),
                "to_date": clock.format_time(start + timedelta(days=days)),
            }
        )

    at = p.at
    x = adder("executions", "executions", "/api/executions")
    x("first page", "")
    x("offset 1,000", lambda i: f"?offset={1000 + i}")
    x(f"offset {n // 2:,}", lambda i: f"?offset={n // 2 + i}")
    x(f"offset {n - 50:,} (last page)", f"?offset={n - 50}")
    x("after= at 1,000", f"?after={at['execution@1000']}")
    x(f"after= at {n // 2:,}", f"?after={at[f'execution@{n // 2}']}")
    x(f"after= at {n - 100:,}", f"?after={at[f'execution@{n - 100}']}")
    x(f"before= at {n // 2:,}", f"?before={at[f'execution@{n // 2}']}")
    x("status=completed", "?status=completed")
    x("status=paused (0.5 %)", "?status=paused")
    x("status=failed offset 5,000", "?status=failed&offset=5000")
    x("status=completed after= deep", f"?status=completed&after={at['execution@completed']}")
    x("tag=env:prod (50 %)", "?tag=env:prod")
    x("tag=release:7 (0.1 %)", lambda i: f"?tag=release:{7 + 50 * (i % 2)}")
    x("tag=nightly offset 5,000", "?tag=nightly&offset=5000")
    x("tag=env:prod after= deep", f"?tag=env:prod&after={at['execution@env:prod']}")
    x("created_by=alice (40 %)", "?created_by=alice")
    x("created_by=judy (2 %)", "?created_by=judy")
    x("created_by=judy offset 1,000", "?created_by=judy&offset=1000")
    x("one day", lambda i: f"?{window(i, 1)}")
    x("30 days offset 10,000", lambda i: f"?{window(i, 30)}&offset=10000")
    x("status=failed&tag=env:prod", "?status=failed&tag=env:prod")
    pl = adder("plans", "plans", "/api/plans")
    pl("first page", "")
    pl(f"offset {plans - 50:,} (last page)", f"?offset={max(0, plans - 50)}")
    pl("after= deep", f"?after={at['plan@deep']}")
    pl("tag=nightly", "?tag=nightly")
    pl("created_by=judy", "?created_by=judy")
    e = adder("events", "events", "/api/events")
    e("first page", "")
    e("offset 1,000", lambda i: f"?offset={1000 + i}")
    e("offset 100,000", lambda i: f"?offset={100_000 + i}")
    e(f"offset {m - 50:,} (last page)", f"?offset={m - 50}")
    e("after= at 1,000", f"?after={at['event@1000']}")
    e(f"after= at {m // 2:,}", f"?after={at[f'event@{m // 2}']}")
    e(f"after= at {m - 100:,}", f"?after={at[f'event@{m - 100}']}")
    e(f"before= at {m // 2:,}", f"?before={at[f'event@{m // 2}']}")
    e("type=step_completed", "?type=step_completed")
    e("type=plan_created (rare)", "?type=plan_created")
    e("type=step_completed after= deep", f"?type=step_completed&after={at['event@step_completed']}")
    e("type=execution_created offset 50,000", "?type=execution_created&offset=50000")
    e("execution_id=", lambda i: f"?execution_id={p.ids['execution'][i % 16]}")
    e("one day", lambda i: f"?{window(i, 1)}")
    e("one day offset 5,000", lambda i: f"?{window(i, 1)}&offset=5000")
    e("30 days", lambda i: f"?{window(i, 30)}")
    e("one day&type=execution_completed", lambda i: f"?{window(i, 1)}&type=execution_completed")
    subs = "/api/events/subscriptions"
    adder("subscriptions", "subscriptions", subs)("list", "")
    dl = adder("subscriptions", "deliveries", f"{subs}/{p.subscription}/deliveries")
    dl(f"deliveries ({d:,}) first page", "")
    dl(f"deliveries offset {d - 50:,}", f"?offset={max(0, d - 50)}")
    dl("deliveries status=dead", "?status=dead")
    dl("deliveries after= deep", f"?after={at['delivery@deep']}")
    small = adder("subscriptions", "deliveries", f"{subs}/{p.small_subscription}/deliveries")
    small("deliveries (1,000) first page", "")
    adder("integrations", "integrations", "/api/integrations")("list", "")
    ids = p.ids
    adder("get by id", None, "/api/executions/")("execution", lambda i: ids["execution"][i % 16])
    adder("get by id", None, "/api/events/")("event", lambda i: ids["event"][i % 16])
    adder("get by id", None, "/api/plans/")("plan", lambda i: ids["plan"][i % 16])
    return out


# --- timing ----------------------------------------------------------------------------


@dataclass
class Timing:
    samples: list[list[float]] = field(default_factory=list)  # per pass
    refused: str | None = None  # "400 validation_error on after" (a version without it)
    total: Any = None
    total_exact: Any = None
    rows: int | None = None
    example: str = ""

    def figures(self) -> dict[str, Any]:
        if self.refused:
            return {"refused": self.refused, "example": self.example}
        passes = [s for s in self.samples if s]
        if not passes:
            return {"error": "no answers", "example": self.example}
        return {
            "p50_ms": round(statistics.median(quantile(s, 0.5) for s in passes), 2),
            "p95_ms": round(statistics.median(quantile(s, 0.95) for s in passes), 2),
            "max_ms": round(max(max(s) for s in passes), 2),
            "rows": self.rows,
            "total": self.total,
            "total_exact": self.total_exact,
            "example": self.example,
        }


def time_query(api: Api, q: Query, repeat: int, timing: Timing, problems: Problems) -> None:
    _, _, path, key = q
    timing.example = path(0)
    times: list[float] = []
    for i in range(repeat + 1):
        target = path(i)
        t0 = time.perf_counter()
        try:
            status, body = api.call("GET", target)
        except OSError as exc:
            problems.add(f"GET {target} raised {exc!r}")
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        if status == 400 and ("after=" in target or "before=" in target):
            details = body.get("error", {}).get("details") if isinstance(body, dict) else None
            timing.refused = f"{status}: {details or body}"[:120]
            return
        if status != 200:
            problems.add(f"GET {target}: status {status}: {str(body)[:200]}")
            continue
        if key is not None:
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                problems.add(f"GET {target}: no {key!r} list")
                continue
            timing.rows = len(items)
            timing.total = body.get("total")
            timing.total_exact = body.get("total_exact")
        if i:  # the first is the warm-up
            times.append(elapsed)
    timing.samples.append(times)


def measure(
    server: Server, p: Probe, args: argparse.Namespace, problems: Problems
) -> dict[str, Any]:
    api = Api(server.port, server.token)
    chosen = queries(p)
    if args.only:
        groups = set(args.only.split(","))
        chosen = [q for q in chosen if q[1] in groups]
    timings = {(q[1], q[0]): Timing() for q in chosen}
    for n in range(args.passes):
        log(f"pass {n + 1} of {args.passes}")
        for q in chosen:
            timing = timings[(q[1], q[0])]
            if timing.refused is None:
                time_query(api, q, args.repeat, timing, problems)
    results: dict[str, dict[str, Any]] = {}
    for (group, name), timing in timings.items():
        results.setdefault(group, {})[name] = timing.figures()
    return results


def verdict(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    slow = []
    for group, named in results.items():
        bound = TARGET_GET_MS if group == "get by id" else TARGET_LIST_MS
        for name, f in named.items():
            if "p95_ms" in f and f["p95_ms"] >= bound:
                slow.append(f"{group}: {name} ({f['p95_ms']} ms)")
    return {"met": not slow, "over_target": slow}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| endpoint | query | p50 ms | p95 ms | max ms | rows | total |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, named in results.items():
        for name, f in named.items():
            if "refused" in f:
                lines.append(f"| {group} | {name} | — | — | — | refused | |")
                continue
            if "p95_ms" not in f:
                lines.append(f"| {group} | {name} | error | | | | |")
                continue
            total = f.get("total")
            if total is not None and f.get("total_exact") is False:
                total = f"≥ {total:,}"
            elif isinstance(total, int):
                total = f"{total:,}"
            lines.append(
                f"| {group} | {name} | {f['p50_ms']} | {f['p95_ms']} | {f['max_ms']} "
                f"| {f.get('rows', '')} | {total if total is not None else ''} |"
            )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    problems = Problems()
    result: dict[str, Any] = {"benchmark": "lists"}
    with seed_place(args.database, args.reuse) as place:
        result["database"] = "sqlite" if args.database is None else redact(args.database)
        if not place.seeded:
            log(
                f"seeding {args.executions:,} executions, {args.events:,} events"
                f" into {place.db.dialect}"
            )
            result["seed"] = seed(place.db, args)
            log(f"seeded in {result['seed']['seed_s']} s")
        else:
            log(f"reusing the seed in {place.db.path or place.db.name}")
        with working_copy(place) as db:
            p = probe(db)
            result["counts"] = p.counts
            result["database_mib_before"] = db.size_mib()
            t0 = time.monotonic()
            server = Server.start(db.url, None)
            try:
                server.wait_ready(1800)
                result["server_start_s"] = round(time.monotonic() - t0, 1)
                log(f"server ready in {result['server_start_s']} s")
                if db.dialect == "postgresql":
                    t1 = time.monotonic()
                    with psycopg.connect(db.url, autocommit=True) as conn:
                        conn.execute("VACUUM (ANALYZE)")
                    result["vacuum_analyze_s"] = round(time.monotonic() - t1, 1)
                result["database_mib"] = db.size_mib()
                load = os.getloadavg()[0]
                result["queries"] = measure(server, p, args, problems)
                result["load_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            except Exception as exc:
                problems.add(f"aborted: {exc!r}")
                result["error"] = repr(exc)
            finally:
                result["server_exit_code"] = server.stop()
                unusual = [
                    line
                    for line in server.log_lines()
                    if " INFO " not in line and "tornado.access: 400" not in line
                ]
                if unusual or result["server_exit_code"] != 0:
                    result["server_log_unusual"] = unusual[:20]
                server.cleanup()
    if "queries" in result:
        result["verdict"] = verdict(result["queries"])
        log(table(result["queries"]))
    result["errors"] = problems.count
    if problems.samples:
        result["error_samples"] = problems.samples
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        help="PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432 (default SQLite)",
    )
    parser.add_argument(
        "--reuse",
        help="keep the seed: SQLite a file path, PostgreSQL a database name (seeded if missing)",
    )
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--plans", type=int, default=5_000)
    parser.add_argument("--deliveries", type=int, default=200_000, help="for one subscription")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per query and pass")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--only", help="groups: executions,plans,events,subscriptions,...")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.executions, args.events, args.plans, args.repeat, args.passes) < 1:
        parser.error("counts, --repeat and --passes must be positive")
    if args.events < args.executions * 5:
        parser.error("--events must be at least 5 per execution")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    result = run(parse_args(argv))
    print(orjson.dumps(result).decode(), flush=True)
    ok = "error" not in result and result["errors"] == 0 and result["server_exit_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
