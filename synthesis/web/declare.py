"""Each endpoint declared once, next to its handler: its path parameters, its query
parameters, its request body and its answer. The handler parses and checks its request
from that declaration (`ApiHandler.query`, `ApiHandler.json_body`), and web/openapi.py
builds the document from the same objects, so the two cannot drift apart.

A query parameter is a `Query`: a JSON Schema for the document and a `parse` for the
server, side by side. Bodies and answers are JSON Schemas (components of the document);
what a body's fields must hold beyond their names is checked by the handler's own
validators (engine/plan.py for plans), whose messages the API promises. See
docs/architecture.md ("One declaration per endpoint") for why this is not Pydantic."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthesis.engine import clock
from synthesis.engine.errors import FieldError, validation_error
from synthesis.store.counts import BOUND
from synthesis.store.paging import Paging

JSON = "application/json"
MAX_OFFSET = 1_000_000_000
DIGITS = re.compile(r"[0-9]+")

# ---- JSON Schema vocabulary ------------------------------------------------------------


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def shape(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An answer object: every key present unless named optional; more keys may come."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def page(key: str, item: str) -> dict[str, Any]:
    """A page of a list: `total`, `offset`, `limit` and the items under `key` (the
    reference's), then `total_exact`, `next` and `previous` (docs/architecture.md, "Lists")."""
    link = {
        "type": ["string", "null"],
        "description": "The path and query of the {} page (null: none, or an empty page)",
    }
    return shape(
        {
            "total": {
                "type": "integer",
                "minimum": 0,
                "description": "How many items match; a lower bound when `total_exact` is false",
            },
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "limit": {"type": "integer", "minimum": 1},
            key: {"type": "array", "items": ref(item)},
            "total_exact": {
                "type": "boolean",
                "description": "False when `total` is a lower bound. Executions (all, or "
                "by status), events (all, or by type) and plans (all) are counted exactly; "
                f"other lists count their matches up to {BOUND + 1:,}",
            },
            "next": {**link, "description": link["description"].format("next (older)")},
            "previous": {**link, "description": link["description"].format("previous (newer)")},
        }
    )


TEXT: dict[str, Any] = {"type": "string"}
TEXT_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
TIMESTAMP: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "description": "UTC ISO 8601 with millisecond precision, ending in Z",
}
TIME_OR_NULL: dict[str, Any] = {**TIMESTAMP, "type": ["string", "null"]}
MS_OR_NULL: dict[str, Any] = {"type": ["integer", "null"], "description": "Milliseconds"}
OBJECT: dict[str, Any] = {"type": "object"}
DATE_QUERY: dict[str, Any] = {
    "type": "string",
    "description": "An ISO 8601 date (midnight UTC) or date-time (UTC when it has no offset)",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
}

# ---- path and query parameters -----------------------------------------------------------


def path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """A path parameter, as the document shows it (the route's group parses it)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, **schema},
    }


Parse = Callable[[str], Any]  # the value, or raises ValueError with the message to show


@dataclass(frozen=True)
class Query:
    """One query parameter: its schema and description for the document, and how the
    server reads it (`parse` raises ValueError with the message of the field's error)."""

    name: str
    schema: dict[str, Any]
    description: str | None = None
    parse: Parse = str
    default: Any = None

    def to_openapi(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "in": "query"}
        if self.description is not None:
            spec["description"] = self.description
        spec["schema"] = self.schema
        return spec


def text(name: str, description: str) -> Query:
    return Query(name, {"type": "string"}, description)


def choice(name: str, choices: Collection[str], description: str) -> Query:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of: {', '.join(choices)}")
        return value

    return Query(name, {"enum": list(choices)}, description, parse)


def whole(name: str, low: int, high: int, default: int) -> Query:
    """A whole number in ASCII digits, `low` to `high`."""

    def parse(value: str) -> int:
        if not DIGITS.fullmatch(value):  # int() would take "٣", " 5", "1_0" and "-1"
            raise ValueError("must be a whole number written with the digits 0-9")
        number = int(value) if len(value) <= 18 else sys.maxsize  # int() refuses 4301 digits
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    return Query(name, schema, None, parse, default)


def date(name: str, description: str) -> Query:
    def parse(value: str) -> str:
        try:
            return clock.parse_time(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date or date-time") from None

    return Query(name, DATE_QUERY, description, parse)


def cursor(name: str, description: str) -> Query:
    def parse(value: str) -> str:
        if not value or len(value) > 255:
            raise ValueError("must be the id of an item of this list")
        return value

    return Query(name, {"type": "string", "minLength": 1, "maxLength": 255}, description, parse)


LIMIT = whole("limit", 1, 1000, 50)
OFFSET = whole("offset", 0, MAX_OFFSET, 0)
AFTER = cursor(
    "after",
    "The page of items that follow this item id in the list (older); not with `before` or `offset`",
)
BEFORE = cursor(
    "before",
    "The page of items that precede this item id in the list (newer, still newest "
    "first); not with `after` or `offset`",
)
PAGE = (LIMIT, OFFSET, AFTER, BEFORE)


def paging(values: Mapping[str, Any]) -> Paging:
    """The page a list's parsed query asks for; a cursor with an offset, or both cursors,
    is a validation_error naming the parameter that cannot be combined."""
    after, before, offset = values["after"], values["before"], values["offset"]
    if after is not None and before is not None:
        raise validation_error([FieldError("before", "cannot be combined with after")])
    if (after is not None or before is not None) and offset:
        raise validation_error([FieldError("offset", "cannot be combined with after or before")])
    return Paging(limit=values["limit"], offset=offset, after=after, before=before)


def dates(what: str) -> tuple[Query, Query]:
    return date("from_date", f"{what} at or after"), date("to_date", f"{what} at or before")


# ---- bodies and endpoints ----------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """A request body: the component `name` whose `schema` (an object) lists its fields;
    a body naming any other field is refused."""

    name: str
    schema: dict[str, Any]
    required: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.schema.get("properties", {}))


EMPTY = Body("", {"type": "object", "additionalProperties": False}, required=False)


@dataclass(frozen=True)
class Endpoint:
    """One operation. `ok` is (status, description, answer's component name); `errors`
    are the error statuses besides those every route can answer (see openapi.operation);
    `responses` adds other answers (status: (description, component)); `text` describes
    a text/plain form of the `ok` answer."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    ok: tuple[int, str, str]
    errors: tuple[int, ...] = ()
    params: tuple[dict[str, Any], ...] = ()  # path parameters, in the path's order
    query: tuple[Query, ...] = ()
    body: Body | None = None
    idempotent: bool = False
    secured: bool = True
    responses: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    text: str | None = None


def parse_query(
    declared: tuple[Query, ...], given: Mapping[str, list[bytes]]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The declared parameters' values (defaults for those not given) and the problems,
    as (field, message): unknown names, repeats, values `parse` refuses."""
    known = {q.name: q for q in declared}
    problems = [
        (name, f"unknown query parameter; known: {', '.join(known)}")
        if name not in known
        else (name, "given more than once")
        for name, raw in given.items()
        if name not in known or len(raw) > 1
    ]
    values = {q.name: q.default for q in declared}
    if problems:  # names first: values are read once every name is right
        return values, problems
    for name, raw in given.items():
        try:
            values[name] = known[name].parse(raw[0].decode("utf-8", errors="replace"))
        except ValueError as exc:
            problems.append((name, str(exc)))
    return values, problems
