"""Rows by key through the driver's own cursor, for the hottest reads (GET
/api/executions/{id}, asked thousands of times a second by pollers).

SQLAlchemy's statement building and result processing cost several times the query
itself here (on SQLite about 100 µs a statement against 13 µs for the query: the profile
in benchmarks/README.md, "REST reads and creates"). A `Lookup` is the table's SELECT in
the driver's own SQL, made once from the table's columns (so it follows the models), and
turns each row into the same dict SQLAlchemy gives: JSON columns decoded with orjson (on
PostgreSQL psycopg decodes them, with the engine's orjson loader).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Dialect, Table


class Lookup:
    """`SELECT <every column> FROM table WHERE <keys> = ... [ORDER BY order_by]`, and
    `LIMIT ?` after the keys' values when `limited`."""

    def __init__(
        self,
        table: Table,
        keys: Sequence[str],
        dialect: Dialect,
        order_by: str | None = None,
        limited: bool = False,
    ) -> None:
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.names = tuple(column.name for column in table.columns)
        where = " AND ".join(f"{quote(key)} = {mark}" for key in keys)
        self.sql = f"SELECT {', '.join(map(quote, self.names))} FROM {quote(table.name)}"
        self.sql += f" WHERE {where}" + (f" ORDER BY {quote(order_by)}" if order_by else "")
        self.sql += f" LIMIT {mark}" if limited else ""
        decodes = dialect.name == "sqlite"  # psycopg decodes JSON itself
        self.json = tuple(
            i for i, column in enumerate(table.columns) if decodes and isinstance(column.type, JSON)
        )

    def rows(self, conn: Connection, *values: Any) -> list[dict[str, Any]]:
        """Any thread, on a connection of the caller's (its transaction and isolation)."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, values)
            found = cursor.fetchall()
        finally:
            cursor.close()
        return [self._dict(row) for row in found]

    def _dict(self, row: Sequence[Any]) -> dict[str, Any]:
        values = list(row)
        for i in self.json:
            if values[i] is not None:
                values[i] = orjson.loads(values[i])
        return dict(zip(self.names, values, strict=True))
