"""What every handler shares: authentication, the JSON error format, body and query
parsing, and the read pool that keeps store reads off the IOLoop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import tornado.web

from synthesis.auth import Principal, require_scope
from synthesis.engine import clock
from synthesis.engine.errors import ApiError, FieldError, validation_error

if TYPE_CHECKING:
    from synthesis.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

_HTTP_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class BaseHandler(tornado.web.RequestHandler):
    """JSON in, JSON out, errors in the contract's format. No authentication."""

    runtime: Runtime

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code in _HTTP_CODES:
            error = ApiError(_HTTP_CODES[exc.status_code], exc.log_message or self._reason)
        elif status_code in _HTTP_CODES:
            error = ApiError(_HTTP_CODES[status_code], self._reason)
        else:
            error = ApiError("internal_error", "internal server error")
        self.set_status(error.http_status)
        self.set_header("Content-Type", "application/json")
        if error.code == "unauthenticated":
            self.set_header("WWW-Authenticate", "Bearer")
        elif error.code == "method_not_allowed":
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        self.finish(dumps(error.to_json()))

    def _allowed_methods(self) -> list[str]:
        base = tornado.web.RequestHandler
        return [
            m
            for m in ("GET", "POST", "PUT", "DELETE")
            if getattr(type(self), m.lower()) is not getattr(base, m.lower())
        ]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            if value.http_status >= 500:
                log.warning("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)


class ApiHandler(BaseHandler):
    """Every /api route: a token with `read` for GET, `write` for everything else."""

    principal: Principal

    def prepare(self) -> None:
        self.principal = self.runtime.auth.authenticate(self.request.headers.get("Authorization"))
        scope = "read" if self.request.method in ("GET", "HEAD") else "write"
        require_scope(self.principal, scope)
        if len(self.request.body) > self.runtime.settings.max_body_bytes:
            raise ApiError(
                "payload_too_large",
                f"request body is over {self.runtime.settings.max_body_bytes} bytes",
            )

    def json_body(self, allowed: Collection[str]) -> dict[str, Any]:
        """The body as a JSON object whose keys are all in `allowed`."""
        if not self.request.body:
            return {}
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            raise ApiError("validation_error", f"malformed JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise validation_error([FieldError("body", "must be a JSON object")])
        unknown = [FieldError(k, f"unknown field {k!r}") for k in body if k not in allowed]
        if unknown:
            raise validation_error(unknown)
        return body

    def query(self, allowed: Collection[str]) -> dict[str, str]:
        """Query parameters, each given at most once and all of them known."""
        errors = []
        values: dict[str, str] = {}
        for name, given in self.request.query_arguments.items():
            if name not in allowed:
                errors.append(
                    FieldError(name, f"unknown query parameter; known: {', '.join(allowed)}")
                )
            elif len(given) > 1:
                errors.append(FieldError(name, "given more than once"))
            else:
                values[name] = given[0].decode("utf-8", errors="replace")
        if errors:
            raise validation_error(errors)
        return values

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store read on the read pool, never on the IOLoop (rule 1)."""
        return await self.runtime.read(fn, *args)


MAX_OFFSET = 1_000_000_000


def page_params(query: dict[str, str], errors: list[FieldError] | None = None) -> tuple[int, int]:
    """`limit` and `offset`. With an `errors` list, problems are added to it (so one answer
    names every bad parameter); without, they are raised."""
    found: list[FieldError] = [] if errors is None else errors
    limit = _int_param(query, "limit", 50, 1, 1000, found)
    offset = _int_param(query, "offset", 0, 0, MAX_OFFSET, found)
    if errors is None and found:
        raise validation_error(found)
    return limit, offset


def choice_param(
    query: dict[str, str], name: str, choices: Collection[str], errors: list[FieldError]
) -> str | None:
    value = query.get(name)
    if value is not None and value not in choices:
        errors.append(FieldError(name, f"must be one of: {', '.join(choices)}"))
    return value


def _int_param(
    query: dict[str, str],
    name: str,
    default: int,
    low: int,
    high: int | None,
    errors: list[FieldError],
) -> int:
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        errors.append(FieldError(name, "must be an integer"))
        return default
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        errors.append(FieldError(name, f"must be {bounds}"))
    return value


def date_params(
    query: dict[str, str], errors: list[FieldError] | None = None
) -> tuple[str | None, str | None]:
    """`from_date` and `to_date`, errors handled as in `page_params`."""
    found: list[FieldError] = [] if errors is None else errors
    bounds: list[str | None] = []
    for name in ("from_date", "to_date"):
        try:
            bounds.append(clock.parse_time(query[name]) if name in query else None)
        except ValueError:
            found.append(FieldError(name, "must be an ISO 8601 date or date-time"))
            bounds.append(None)
    if errors is None and found:
        raise validation_error(found)
    return bounds[0], bounds[1]


class NotFoundHandler(BaseHandler):
    """Any path no route matches."""

    def prepare(self) -> None:
        raise ApiError("not_found", f"no route for {self.request.path}")
