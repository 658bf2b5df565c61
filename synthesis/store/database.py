"""The store: one SQLAlchemy engine, SQLite (WAL) or PostgreSQL (psycopg 3), same code.

Writes come only from the event bus (`apply`), in one transaction per batch; reads come
from the web layer's read pool and from actors starting up. Every method is thread-safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Column,
    Dialect,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from synthesis.config import ConfigError
from synthesis.engine.event_selector import EVERY_EVENT, EventSelector
from synthesis.engine.events import Event
from synthesis.store import cluster, counts
from synthesis.store.changes import Change
from synthesis.store.idempotency import idempotency_keys
from synthesis.store.lookups import Lookup
from synthesis.store.models import (
    RETIRED_INDEXES,
    events,
    execution_secrets,
    execution_tags,
    executions,
    invocations,
    nodes,
    plan_tags,
    plans,
    step_processes,
    steps,
)
from synthesis.store.paging import Page, Paging, cursor_key, read_page, window
from synthesis.store.writer import BatchWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


SUMMARY_COLUMNS = (
    "id",
    "name",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "created_by",
    "meta",
    "node_id",
)


@dataclass(frozen=True, kw_only=True)
class PlanFilter(Paging):
    """The filters lists of plans and executions share, and the page."""

    tag: str | None = None
    created_by: str | None = None
    from_date: str | None = None
    to_date: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionFilter(PlanFilter):
    status: str | None = None


@dataclass(frozen=True, kw_only=True)
class EventFilter(Paging):
    type: str | None = None
    execution_id: str | None = None
    from_date: str | None = None
    to_date: str | None = None


def _event(row: Any) -> Event:
    return Event(row.type, row.payload, row.execution_id, row.event_id, row.timestamp, row.seq)


@dataclass(frozen=True)
class Batch:
    """What one commit message carries: changes and the events they caused."""

    changes: Sequence[Change] = ()
    events: Sequence[Event] = ()


class SchemaMismatch(RuntimeError):
    """The database holds tables this version cannot use."""


_SCHEMA_LOCK = 0x53594E54  # "SYNT": the advisory lock around creating and upgrading tables


def _add_column(table: str, column: Column[Any], dialect: Dialect) -> str:
    """`ALTER TABLE ... ADD COLUMN` for a column this version added: nullable, or with
    a constant default that fills the rows already there."""
    kind = column.type.compile(dialect=dialect)
    default = column.default.arg if column.default is not None else None
    if column.nullable:
        return f'ALTER TABLE "{table}" ADD COLUMN "{column.name}" {kind}'
    if isinstance(default, bool | int | float | str) and not callable(default):
        literal = column.type.literal_processor(dialect)
        value = literal(default) if literal else repr(default)
        return f'ALTER TABLE "{table}" ADD COLUMN "{column.name}" {kind} NOT NULL DEFAULT {value}'
    raise SchemaMismatch(
        f"table {table!r} in this database lacks column {column.name!r}, which cannot be "
        "added to the rows already there: use a new database"
    )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and make them use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _private_file(path: Path) -> None:
    """The SQLite file (and its WAL files, which SQLite makes with the file's mode) is the
    server's alone: mode 0600, in a directory made 0700 when we make it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):  # not there, or not ours to change
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and for `:memory:`."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_db_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            _private_file(path)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            pool_size=8,
            max_overflow=8,
            hide_parameters=True,  # errors and logs never show values (secrets, outputs)
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=POSTGRES_SESSION,
    )


# A node frozen (SIGSTOP) or cut off in the middle of a transaction must not hold its
# locks (its node row, the events lock) for long: the database ends such a session, so
# the others can fence it and go on; keepalives notice a peer that vanished.
POSTGRES_SESSION: dict[str, Any] = {
    "options": "-c idle_in_transaction_session_timeout=3000",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "connect_timeout": 5,
}


class Store:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = create_db_engine(self.url)
        # Lists and gets by id read through this: on PostgreSQL in autocommit, which
        # spares each read its BEGIN and ROLLBACK round trips (under READ COMMITTED each
        # statement sees its own snapshot either way); on SQLite the engine itself.
        self.reader = self.engine
        if self.engine.dialect.name == "postgresql":
            self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Set once this server is a node: every write transaction then proves the node
        # is not fenced (store/cluster.py), and stored events wake the other nodes.
        self.node_id: str | None = None
        self._lock: Any = None  # the open lock file while this store holds a SQLite file
        dialect = self.engine.dialect
        self._execution_by_id = Lookup(executions, ("id",), dialect)
        self._steps_of = Lookup(steps, ("execution_id",), dialect, order_by="position")
        # unordered: the primary key's index stops after the limit; sorted when kept
        self._some_steps_of = Lookup(steps, ("execution_id",), dialect, limited=True)

    def hold(self) -> None:
        """Claim a SQLite file for this store alone until close(): an exclusive lock on
        `<file>.lock`, which the kernel drops when the process ends (kill -9 too). A
        second server on the file gets a ConfigError; PostgreSQL (shared by a cluster's
        nodes) and `:memory:` need no lock. Called by Runtime.start, on the IOLoop."""
        path = sqlite_file(self.url)
        if path is None or self._lock is not None:
            return
        handle = os.fdopen(os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip()
            handle.close()
            raise ConfigError(
                f"the SQLite database {path} is in use by another server"
                + (f" (pid {holder})" if holder else "")
                + ": one server per SQLite database; a cluster needs PostgreSQL"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        """Create missing tables and add the columns and indexes a newer version added, so
        an older database is upgraded in place; refuse one whose missing columns cannot be
        added. Then drop the indexes this version retired, fill in the tags' `created_at`
        an older version left empty, and count the counted tables when no counts are kept
        yet (store/counts.py). On PostgreSQL an advisory lock serializes servers that
        start at the same moment."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            SQLModel.metadata.create_all(conn)
            found = inspect(conn)
            for table in SQLModel.metadata.sorted_tables:
                have = {column["name"] for column in found.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have:
                        conn.execute(text(_add_column(table.name, column, self.engine.dialect)))
                indexes = {index["name"] for index in found.get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in indexes:
                        index.create(conn, checkfirst=True)
                for name in RETIRED_INDEXES:
                    if name in indexes:
                        conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
            for tags, owner, column in (
                (execution_tags, executions, execution_tags.c.execution_id),
                (plan_tags, plans, plan_tags.c.plan_id),
            ):
                created = select(owner.c.created_at).where(owner.c.id == column)
                conn.execute(
                    update(tags)
                    .where(tags.c.created_at.is_(None))
                    .values(created_at=created.scalar_subquery())
                )
            if counts.is_empty(conn):
                counts.rebuild(conn)

    def close(self) -> None:
        self.engine.dispose()
        if self._lock is not None:
            self._lock.close()  # releases the SQLite file for the next server
            self._lock = None

    def ping(self) -> None:
        """A real round trip that reads a table, in O(1) (one row of the kept counts, not
        a count of a table): raises if the database does not answer."""
        with self.reader.connect() as conn:
            conn.exec_driver_sql("SELECT n FROM row_counts LIMIT 1").first()

    # ---- writes (event bus thread) -------------------------------------------------

    def apply(self, batches: Sequence[Batch]) -> list[list[Event]]:
        """Apply every batch in one transaction; return each batch's events, numbered."""
        with self.engine.begin() as conn:
            if self.node_id is not None:
                cluster.prove_alive(conn, self.dialect, self.node_id)
            writer = BatchWriter(conn)
            told: list[list[Event]] = []  # each batch's: those its changes caused, then its own
            for batch in batches:
                for change in batch.changes:
                    writer.add(change)
                told.append([*writer.caused, *batch.events])
                writer.caused.clear()
            writer.flush()
            every = [e for t in told for e in t]
            numbered = cluster.insert_events(conn, self.dialect, every, writer.counted)
        out: list[list[Event]] = []
        position = 0
        for batch_told in told:
            out.append(numbered[position : position + len(batch_told)])
            position += len(batch_told)
        return out

    # ---- reads (web read pool, actors starting) ------------------------------------

    def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
            return dict(row._mapping) if row else None

    def execution_and_steps(
        self, execution_id: str, most: int | None = None
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
        """The execution's row and its steps in position order, on one connection (a get
        by id is two statements, not two connections), in the driver's SQL
        (store/lookups.py). With `most`: None for the steps when there are more than that
        (a quick read that turns out long, left for the caller to make elsewhere)."""
        with self.reader.connect() as conn:
            found = self._execution_by_id.rows(conn, execution_id)
            if not found:
                return None, []
            if most is None:
                return found[0], self._steps_of.rows(conn, execution_id)
            some = self._some_steps_of.rows(conn, execution_id, most + 1)
            if len(some) > most:
                return found[0], None
            return found[0], sorted(some, key=lambda step: step["position"])

    def get_execution_secrets(self, execution_id: str) -> dict[str, Any] | None:
        """`{names, variables}`: the execution's secret variables, to run it again."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(execution_secrets.c.names, execution_secrets.c.variables).where(
                    execution_secrets.c.execution_id == execution_id
                )
            ).first()
            return dict(row._mapping) if row else None

    def execution_status(self, execution_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(executions.c.status).where(executions.c.id == execution_id)
            ).scalar_one_or_none()

    def list_steps(self, execution_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.execution_id == execution_id).order_by(steps.c.position)
            )
            return [dict(r._mapping) for r in rows]

    def step_ids_in(self, execution_id: str, status: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(steps.c.step_id)
                    .where(steps.c.execution_id == execution_id, steps.c.status == status)
                    .order_by(steps.c.position)
                ).scalars()
            )

    def get_step(self, execution_id: str, step_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(steps).where(
                    and_(steps.c.execution_id == execution_id, steps.c.step_id == step_id)
                )
            ).first()
            return dict(row._mapping) if row else None

    def list_executions(self, flt: ExecutionFilter) -> Page:
        """Newest first; each row has SUMMARY_COLUMNS only (no plan, no variables)."""
        kept = None
        if not (flt.tag or flt.created_by or flt.from_date or flt.to_date):
            kept = flt.status or ""  # executions by status are counted as they change
        conditions = [executions.c.status == flt.status] if flt.status else []
        return self._listing(
            executions,
            execution_tags,
            execution_tags.c.execution_id,
            flt,
            conditions,
            SUMMARY_COLUMNS,
            "execution",
            kept,
        )

    def list_plans(self, flt: PlanFilter) -> Page:
        """Newest first, whole rows."""
        kept = None if (flt.tag or flt.created_by or flt.from_date or flt.to_date) else ""
        return self._listing(
            plans, plan_tags, plan_tags.c.plan_id, flt, [], tuple(plans.c.keys()), "plan", kept
        )

    def _listing(
        self,
        table: Any,
        tags: Any,
        owner: Any,
        flt: PlanFilter,
        conditions: list[Any],
        columns: tuple[str, ...],
        what: str,
        kept: str | None,
    ) -> Page:
        """One page of `table` (executions or plans) with the filters both share, newest
        first by (created_at, id); a tag's rows carry their owner's created_at, so a list
        by tag is one walk of the tag's index. `kept`: the key of the kept count that is
        the total ('' for all), None when the filters need a bounded count."""
        own = list(conditions)  # on the table's own columns
        if flt.created_by:
            own.append(table.c.created_by == flt.created_by)
        if flt.tag:
            # the tag's rows alone when nothing else is asked of the table's rows
            key = (tags.c.created_at, owner)
            source = tags.join(table, table.c.id == owner) if own else tags
            found = [tags.c.tag == flt.tag, *own]
        else:
            key, source, found = (table.c.created_at, table.c.id), table, own
        keyed = select(table.c.created_at, table.c.id).where(table.c.id == flt.cursor)

        def total() -> tuple[int, bool]:
            if kept is not None:
                return counts.read(conn, table.name, kept or None), True
            matching = [*found, *window(key[0], flt.from_date, flt.to_date)]
            return counts.bounded(conn, select(key[-1]).select_from(source).where(*matching))

        with self.reader.connect() as conn:
            cursor = cursor_key(conn, flt, keyed, what)
            bounds = window(key[0], flt.from_date, flt.to_date, flt, cursor)
            walk = select(key[-1]).select_from(source).where(*found, *bounds)
            query = select(*(table.c[name] for name in columns))
            if flt.tag:
                query = query.select_from(tags.join(table, table.c.id == owner))
            query = query.where(*found, *bounds)
            page = read_page(conn, query, key, flt, cursor, lambda r: r.id, total, walk)
        return replace(page, rows=[dict(r._mapping) for r in page.rows])

    def get_plan(self, plan_id: str) -> dict[str, Any] | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(plans).where(plans.c.id == plan_id)).first()
            return dict(row._mapping) if row else None

    def plan_documents(self, plan_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """The stored documents of those of `plan_ids` that exist."""
        if not plan_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(plans.c.id, plans.c.document).where(plans.c.id.in_(list(plan_ids)))
            )
            return {r.id: r.document for r in rows}

    def get_invocation(self, invocation_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(invocations).where(invocations.c.id == invocation_id)).first()
            return dict(row._mapping) if row else None

    def invocation_ids_in(self, *statuses: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(invocations.c.id).where(invocations.c.status.in_(statuses))
                ).scalars()
            )

    def process_groups(self, host: str) -> list[dict[str, Any]]:
        """The step process groups recorded on `host` (integrations/processes.py), each
        with `fenced`: whether the node that started it was declared dead."""
        query = (
            select(step_processes, func.coalesce(nodes.c.fenced, False).label("fenced"))
            .outerjoin(nodes, nodes.c.id == step_processes.c.node_id)
            .where(step_processes.c.host == host)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def next_position(self, execution_id: str) -> int:
        with self.engine.connect() as conn:
            top = conn.execute(
                select(func.max(steps.c.position)).where(steps.c.execution_id == execution_id)
            ).scalar_one_or_none()
            return 0 if top is None else top + 1

    def execution_ids_in(self, *statuses: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(executions.c.id)
                    .where(executions.c.status.in_(statuses))
                    .order_by(executions.c.created_at)
                ).scalars()
            )

    def events_after(
        self, after_seq: int = 0, selector: EventSelector = EVERY_EVENT, *, limit: int = 1000
    ) -> list[Event]:
        """Stored events with `seq` above `after_seq`, oldest first: a replay's page (see
        engine/cursor.py). Narrowed in SQL by the selector's types and execution only: its
        payload keys are the cursor's to check."""
        query = select(events).where(events.c.seq > after_seq)
        if selector.types is not None:
            query = query.where(events.c.type.in_(sorted(selector.types)))
        if selector.execution_id is not None:
            query = query.where(events.c.execution_id == selector.execution_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.seq).limit(limit))
            return [_event(r) for r in rows]

    def event_seq(self, event_id: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(events.c.seq).where(events.c.event_id == event_id)
            ).scalar_one_or_none()

    def last_event_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(events.c.seq))).scalar_one_or_none() or 0

    def get_event(self, event_id: str) -> Event | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(events).where(events.c.event_id == event_id)).first()
            return _event(row) if row else None

    def list_events(self, flt: EventFilter) -> Page:
        """Newest first: by `seq`, or with dates by (timestamp, seq), so the window is one
        range of the timestamp index."""
        conditions = []
        if flt.type:
            conditions.append(events.c.type == flt.type)
        if flt.execution_id:
            conditions.append(events.c.execution_id == flt.execution_id)
        dated = bool(flt.from_date or flt.to_date)
        key = (events.c.timestamp, events.c.seq) if dated else (events.c.seq,)
        keyed = select(*key).where(events.c.event_id == flt.cursor)
        kept = not (flt.execution_id or dated)  # events by type are counted as stored

        def total() -> tuple[int, bool]:
            if kept:
                return counts.read(conn, "events", flt.type), True
            matching = [*conditions, *window(events.c.timestamp, flt.from_date, flt.to_date)]
            return counts.bounded(conn, select(events.c.seq).where(*matching))

        with self.reader.connect() as conn:
            cursor = cursor_key(conn, flt, keyed, "event")
            bounds = window(events.c.timestamp, flt.from_date, flt.to_date, flt, cursor)
            query = select(events).where(*conditions, *bounds)
            page = read_page(conn, query, key, flt, cursor, lambda r: r.event_id, total)
        return replace(page, rows=[_event(r) for r in page.rows])

    # ---- the cluster (store/cluster.py): coordination outside the bus ------------------

    def coordinate(self, statement: Callable[..., T], *args: Any) -> T:
        """Run one of store/cluster.py's statements, `statement(conn, dialect, *args)`, in
        a transaction of its own."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":  # never wait long behind another node's lock
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            return statement(conn, self.dialect, *args)

    def register_node(self, node: dict[str, Any]) -> None:
        """`node`: id, host, port, pid (store/cluster.py)."""
        with self.engine.begin() as conn:
            cluster.register_node(conn, self.dialect, node)

    def list_nodes(self) -> list[dict[str, Any]]:
        """GET /api/nodes: see store/cluster.py."""
        with self.engine.connect() as conn:
            return cluster.list_nodes(conn, self.dialect)

    def events_for(self, execution_id: str) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.execution_id == execution_id).order_by(events.c.seq)
            )
            return [_event(r) for r in rows]

    def delete_everything(self) -> None:
        """Tests only: empty every table."""
        with self.engine.begin() as conn:
            for table in (
                events,
                steps,
                execution_tags,
                execution_secrets,
                executions,
                plan_tags,
                plans,
                invocations,
                step_processes,
                counts.row_counts,
            ):
                conn.execute(delete(table))
            conn.execute(delete(idempotency_keys))
