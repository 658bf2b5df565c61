"""Counts kept as rows change, so a list's `total` never counts a whole table.

`row_counts` holds one row per (table, key): executions by status, events by type, and
plans (key ''). The store changes them in the same transaction as the rows they count
(`add`, called last in a transaction, after the events lock on PostgreSQL), so they are
exact whatever crashes. A table made by an older version has no counts: `rebuild` fills
them from the tables when `row_counts` is empty, at start (Store.create_tables).

Lists with other filters count their matches up to a bound instead (`bounded`): a total
past it is a lower bound, said as `total_exact: false` (docs/architecture.md, "Lists").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, delete, func, insert, literal, select
from sqlmodel import Field, SQLModel

from synthesis.store.models import events, executions, plans

BOUND = 10_000  # a filtered list counts at most this many matches (and one more)

Deltas = Counter[tuple[str, str]]  # (table, key) -> rows added (negative: removed)


class RowCountRow(SQLModel, table=True):
    __tablename__ = "row_counts"

    name: str = Field(primary_key=True, max_length=32)  # the table counted
    key: str = Field(primary_key=True, max_length=32)  # its status, its type, or ''
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


row_counts = RowCountRow.__table__

# What is counted: each table, and the column whose values are the keys (None: one row).
COUNTED: dict[str, Any] = {
    "executions": executions.c.status,
    "events": events.c.type,
    "plans": None,
}
_TABLES = {"executions": executions, "events": events, "plans": plans}


def add(conn: Connection, deltas: Deltas) -> None:
    """Apply `deltas` in one statement, rows in key order (so two transactions never
    wait on each other's count rows in opposite orders). It runs in every bus
    transaction, so it is the driver's own SQL (SQLAlchemy's statement machinery cost more
    than the statement), and on PostgreSQL one text whatever the number of rows (arrays),
    which psycopg prepares once."""
    rows = sorted((n, k, d) for (n, k), d in deltas.items() if d)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        names, keys, changes = (list(column) for column in zip(*rows, strict=True))
        conn.exec_driver_sql(_PG_UPSERT, (names, keys, changes))
        return
    values = ", ".join(["(?, ?, ?)"] * len(rows))
    conn.exec_driver_sql(_UPSERT.format(values), tuple(v for row in rows for v in row))


_UPSERT = (
    "INSERT INTO row_counts (name, key, n) VALUES {} "
    "ON CONFLICT (name, key) DO UPDATE SET n = row_counts.n + excluded.n"
)
_PG_UPSERT = (
    "INSERT INTO row_counts (name, key, n) SELECT * FROM "
    "unnest(%s::varchar[], %s::varchar[], %s::bigint[]) AS u (name, key, n) ORDER BY 1, 2 "
    "ON CONFLICT (name, key) DO UPDATE SET n = row_counts.n + excluded.n"
)


def stored_statuses(conn: Connection, execution_ids: list[str]) -> list[tuple[str, str]]:
    """(id, status) of those executions as stored now: what a status change moves the
    counts from (BatchWriter). The driver's SQL, as in `add`."""
    if conn.dialect.name == "postgresql":
        query = "SELECT id, status FROM executions WHERE id = ANY(%s)"
        return list(conn.exec_driver_sql(query, (execution_ids,)))
    marks = ", ".join(["?"] * len(execution_ids))
    query = f"SELECT id, status FROM executions WHERE id IN ({marks})"
    return list(conn.exec_driver_sql(query, tuple(execution_ids)))


def is_empty(conn: Connection) -> bool:
    return conn.execute(select(row_counts.c.name).limit(1)).first() is None


def rebuild(conn: Connection) -> None:
    """Count every counted table again (an upgrade from a version that kept no counts)."""
    conn.execute(delete(row_counts))
    for name, column in COUNTED.items():
        table = _TABLES[name]
        key = literal("") if column is None else column
        counted = select(literal(name), key, func.count()).select_from(table)
        if column is not None:
            counted = counted.group_by(column)
        conn.execute(
            insert(row_counts).from_select(["name", "key", "n"], counted.having(func.count() > 0))
        )


def read(conn: Connection, name: str, key: str | None = None) -> int:
    """The kept count of `name` (with `key`: of that status or type only)."""
    query = select(func.coalesce(func.sum(row_counts.c.n), 0)).where(row_counts.c.name == name)
    if key is not None:
        query = query.where(row_counts.c.key == key)
    return int(conn.execute(query).scalar_one())


def by_key(conn: Connection, name: str) -> dict[str, int]:
    """The kept counts of `name` by key (executions by status), those above zero."""
    query = select(row_counts.c.key, row_counts.c.n).where(row_counts.c.name == name)
    return {key: int(n) for key, n in conn.execute(query) if n}


def bounded(conn: Connection, matching: Any) -> tuple[int, bool]:
    """How many rows `matching` (a SELECT) gives, counting at most BOUND + 1 of them:
    (count, exact); past BOUND the count is a lower bound."""
    inner = matching.limit(BOUND + 1).subquery()
    n = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    return n, n <= BOUND
