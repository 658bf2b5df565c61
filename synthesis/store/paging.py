"""One page of a list, newest first, by offset or by keyset (docs/architecture.md, "Lists").

Every list is ordered by a key whose last column is unique (`created_at, id`; `seq`;
`timestamp, seq`; ...), newest first, and each list has an index that is its filter then
that key. A page asked `after=<item id>` is the items that follow that item in the list
(older), `before=<item id>` the items that precede it (newer, still newest first): the
store reads the item's key and the page is one index range, however deep. An offset
walks the key's index to its place first, reading only the key's columns (the covering
index), then reads the page's rows. Each page fetches one row more than its limit to
know whether another page follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, tuple_


@dataclass(frozen=True)
class Paging:
    """What a page asks: `limit` rows, `offset` rows in, or after / before an item id
    (never both, and never with an offset: the web layer refuses those)."""

    limit: int = 50
    offset: int = 0
    after: str | None = None
    before: str | None = None

    @property
    def cursor(self) -> str | None:
        return self.after or self.before


@dataclass(frozen=True)
class Page:
    """Rows, the total that matches, and the item ids the pages beside it start from:
    `next` (ask `after=` it) and `previous` (ask `before=` it), None where there are none
    or the page is empty. `total_exact` is False when `total` is a lower bound."""

    rows: list[Any]
    total: int
    total_exact: bool
    next: str | None
    previous: str | None


class CursorNotFound(LookupError):
    """`after=` or `before=` names no item of this list; `field` says which."""

    def __init__(self, field: str, what: str) -> None:
        super().__init__(f"no {what} with this id")
        self.field = field
        self.message = f"no {what} with this id"


def cursor_key(conn: Connection, paging: Paging, query: Any, what: str) -> tuple[Any, ...] | None:
    """The key of the item `after=` or `before=` names (`query` reads it: a SELECT of the
    key's columns for the given id), or None when the page has no cursor."""
    if paging.cursor is None:
        return None
    row = conn.execute(query).first()
    if row is None:
        raise CursorNotFound("after" if paging.after else "before", what)
    return tuple(row)


def window(
    column: Any,
    from_date: str | None,
    to_date: str | None,
    paging: Paging | None = None,
    cursor: tuple[Any, ...] | None = None,
) -> list[Any]:
    """A date filter on the key's first column. With the page's `paging` and `cursor`, the
    bound the cursor already implies is left out (`after` an item is at or before its
    time), so the database starts the index range at the cursor, not at the window's end."""
    after = cursor is not None and paging is not None and paging.after is not None
    before = cursor is not None and paging is not None and paging.before is not None
    bounds = []
    if from_date and not (before and cursor is not None and cursor[0] >= from_date):
        bounds.append(column >= from_date)
    if to_date and not (after and cursor is not None and cursor[0] <= to_date):
        bounds.append(column <= to_date)
    return bounds


def _beyond(key: Sequence[Any], values: Sequence[Any], older: bool) -> Any:
    if len(key) == 1:
        return key[0] < values[0] if older else key[0] > values[0]
    return tuple_(*key) < tuple_(*values) if older else tuple_(*key) > tuple_(*values)


def read_page(
    conn: Connection,
    query: Any,
    key: Sequence[Any],
    paging: Paging,
    cursor: tuple[Any, ...] | None,
    ident: Callable[[Any], str],
    count: Callable[[], tuple[int, bool]],
    walk: Any = None,
) -> Page:
    """One page of `query` (a SELECT with the list's columns, source and filters) in `key`
    order, newest first; `ident` gives a row's item id; `count` the total and whether it
    is exact (a kept count, or counts.bounded); `walk`, a SELECT of the same rows' last key
    column that reads less (a tag's rows alone), to walk to an offset."""
    limit = paging.limit + 1
    if cursor is not None and paging.before is not None:
        ordered = query.where(_beyond(key, cursor, older=False)).order_by(*(c.asc() for c in key))
        rows = list(conn.execute(ordered.limit(limit)))
        more = len(rows) == limit
        rows = rows[: paging.limit][::-1]
        previous = ident(rows[0]) if more and rows else None
        after = ident(rows[-1]) if rows else None
    else:
        newest_first = [c.desc() for c in key]
        if cursor is not None:
            query = query.where(_beyond(key, cursor, older=True))
        elif paging.offset:
            # walk to the offset on the key's columns alone (an index-only walk), then read
            # the page's rows
            place = (
                (query.with_only_columns(key[-1]) if walk is None else walk)
                .order_by(*newest_first)
                .offset(paging.offset)
                .limit(limit)
            )
            query = query.where(key[-1].in_(place.scalar_subquery()))
        rows = list(conn.execute(query.order_by(*newest_first).limit(limit)))
        more = len(rows) == limit
        rows = rows[: paging.limit]
        after = ident(rows[-1]) if more else None
        previous = ident(rows[0]) if rows and (cursor is not None or paging.offset) else None
    total, exact = count()
    if cursor is None and not exact and rows:
        # the page itself proves how many there are at least, and all of them at its end
        total = max(total, paging.offset + len(rows) + more)
        exact = not more
    return Page(rows, total, exact, after, previous)
