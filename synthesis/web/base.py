"""What every handler shares: authentication, the JSON error format, body and query
parsing, and the read pool that keeps store reads off the IOLoop."""

from __future__ import annotations

import logging
import sys
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson
import tornado.httputil
import tornado.web

from synthesis.auth import Principal, require_scope
from synthesis.engine.errors import ApiError, FieldError, validation_error
from synthesis.engine.nesting import too_deep, too_deep_message
from synthesis.store.paging import CursorNotFound, Page
from synthesis.web.declare import DIGITS, Endpoint, parse_query

if TYPE_CHECKING:
    from synthesis.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

HTTP_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
}

MAX_URI_BYTES = 8 * 1024  # longer request targets are refused with 414
MAX_HEADER_BYTES = 1024 * 1024  # what the server reads of a request line and headers
DRAIN_BYTES = 16 * 1024 * 1024  # of a refused body, read and dropped so the client hears why
_UNLIMITED = sys.maxsize  # the connection's own body limit: the handler counts, in bytes
CORS_METHODS = "GET, POST, PUT, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key"


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def declared_length(headers: tornado.httputil.HTTPHeaders) -> int | None:
    """The body length a request declares; None when it declares none (no body, or
    chunked). A value that is not digits is a validation_error."""
    text = headers.get("Content-Length")
    if text is None:
        return None
    values = {v.strip() for v in text.split(",")}  # proxies may repeat it
    if len(values) != 1 or not DIGITS.fullmatch(value := values.pop()):
        raise validation_error([FieldError("Content-Length", "must be one whole number")])
    return int(value)


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """JSON in, JSON out, errors in the contract's format. No authentication.

    The body is streamed (IOLoop thread): `prepare` sees only the request line and the
    headers, and refuses there (a URI over MAX_URI_BYTES, a declared length over
    `max_body_bytes`, and in ApiHandler a bad token or scope) before any of the body is
    read. What is accepted is collected in `data_received`, counted in bytes, so a chunked
    body over the limit is refused as it grows."""

    runtime: Runtime
    endpoints: ClassVar[tuple[Endpoint, ...]] = ()  # what each method takes and answers

    @property
    def endpoint(self) -> Endpoint | None:
        """This request's declaration (web/declare.py). Endpoints of one handler that share
        a method (one per action of a route's alternatives) share their query and body."""
        method = self.request.method.lower() if self.request.method else ""
        return next((e for e in self.endpoints if e.method == method), None)

    def initialize(self, runtime: Runtime, prefix: str = "") -> None:
        self.runtime = runtime
        self.prefix = prefix  # where Synthesis is mounted (web/app.py `handlers`)
        self.body = bytearray()
        self._to_drain: int | None = None  # bytes of a refused body still to drop
        self.set_default_headers()

    def set_default_headers(self) -> None:
        """CORS headers for an allowed Origin (set again when an error clears headers)."""
        runtime = getattr(self, "runtime", None)  # None while Tornado builds the handler
        if runtime is None or not runtime.settings.cors_origins:
            return
        self.set_header("Vary", "Origin")
        origin = self._allowed_origin()
        if origin is not None:
            self.set_header("Access-Control-Allow-Origin", origin)

    def _allowed_origin(self) -> str | None:
        """The request's Origin when `--cors-origin` names it exactly."""
        origin = self.request.headers.get("Origin")
        return origin if origin in self.runtime.settings.cors_origins else None

    def prepare(self) -> None:
        connection = self.request.connection
        if hasattr(connection, "set_max_body_size"):  # HTTP1Connection; data_received counts
            connection.set_max_body_size(_UNLIMITED)
        if self._preflight():
            return
        try:
            self.admit()
        except ApiError as exc:
            self._refuse(exc)

    def admit(self) -> None:
        """Everything checked on the request line and headers alone, before the body."""
        if len(self.request.uri or "") > MAX_URI_BYTES:
            raise ApiError("uri_too_long", f"the URL is over {MAX_URI_BYTES} bytes")
        self.authorize()
        if self.request.method not in self._allowed_methods():
            raise ApiError("method_not_allowed", f"{self.request.method} is not allowed here")
        limit = self.runtime.settings.max_body_bytes
        declared = declared_length(self.request.headers)
        if declared is not None and declared > limit:
            raise _too_large(limit)

    def authorize(self) -> None:
        """Who may call: everyone here; ApiHandler checks the token and its scope."""

    def _preflight(self) -> bool:
        """A CORS preflight from an allowed origin: answered at once, without a token."""
        if (
            self.request.method != "OPTIONS"
            or "Access-Control-Request-Method" not in self.request.headers
            or self._allowed_origin() is None
        ):
            return False
        self.set_status(204)
        self.set_header("Access-Control-Allow-Methods", CORS_METHODS)
        self.set_header("Access-Control-Allow-Headers", CORS_HEADERS)
        self.set_header("Access-Control-Max-Age", "600")
        self.finish()
        return True

    def _refuse(self, error: ApiError) -> None:
        """Answer `error` before reading the body. A client already sending the body it
        declared (up to DRAIN_BYTES) gets the answer at once, and that body is read and
        dropped, so it hears the answer instead of a reset; otherwise the connection
        closes after the answer."""
        try:
            declared = declared_length(self.request.headers)
        except ApiError:
            declared = None
        expects = self.request.headers.get("Expect", "").lower() == "100-continue"
        if not declared or declared > DRAIN_BYTES or expects:
            raise error
        body = self._render(error)
        self._to_drain = declared
        self.set_header("Connection", "close")
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        self.flush()

    def data_received(self, chunk: bytes) -> None:
        """IOLoop thread: a piece of the body, kept, dropped (refused) or too much."""
        if self._to_drain is not None:
            self._to_drain -= len(chunk)
            if self._to_drain <= 0:
                self.finish()
            return
        limit = self.runtime.settings.max_body_bytes
        if len(self.body) + len(chunk) > limit:
            error = _too_large(limit)
            self.send_error(error.http_status, exc_info=(ApiError, error, None))
            return
        self.body += chunk

    def send(self, body: Any, status: int = 200) -> None:
        self.send_encoded(dumps(body), status)

    def send_encoded(self, body: bytes, status: int = 200) -> None:
        """`send` of a body already encoded (off the IOLoop, for a big one)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code in HTTP_CODES:
            error = ApiError(HTTP_CODES[exc.status_code], exc.log_message or self._reason)
        elif status_code in HTTP_CODES:
            error = ApiError(HTTP_CODES[status_code], self._reason)
        else:
            error = ApiError("internal_error", "internal server error")
        self.finish(self._render(error))

    def _render(self, error: ApiError) -> bytes:
        """Status and headers for `error`; returns its body."""
        self.set_status(error.http_status)
        self.set_header("Content-Type", "application/json")
        if error.code == "unauthenticated":
            self.set_header("WWW-Authenticate", "Bearer")
        elif error.code == "method_not_allowed":
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        return dumps(error.to_json())

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


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"request body is over {limit} bytes")


class ApiHandler(BaseHandler):
    """Every /api route: a token with `read` for GET, `write` for everything else."""

    principal: Principal

    def authorize(self) -> None:
        self.principal = self.runtime.auth.authenticate(self.request.headers.get("Authorization"))
        scope = "read" if self.request.method in ("GET", "HEAD") else "write"
        require_scope(self.principal, scope)

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object whose keys are all fields of the declared body."""
        declared = self.endpoint
        allowed = declared.body.fields if declared and declared.body else ()
        if not self.body:
            return {}
        try:
            body = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):
                raise validation_error([FieldError("body", too_deep_message())]) from None
            raise ApiError("validation_error", f"malformed JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise validation_error([FieldError("body", "must be a JSON object")])
        deep = too_deep(body)
        if deep is not None:
            raise validation_error([FieldError(deep, too_deep_message())])
        unknown = [FieldError(k, f"unknown field {k!r}") for k in body if k not in allowed]
        if unknown:
            raise validation_error(unknown)
        return body

    def query(self) -> dict[str, Any]:
        """The declared query parameters, parsed (defaults for those not given); a
        validation_error naming every unknown, repeated or bad one."""
        declared = self.endpoint
        values, problems = parse_query(
            declared.query if declared else (), self.request.query_arguments
        )
        if problems:
            raise validation_error([FieldError(name, message) for name, message in problems])
        return values

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store read on the read pool, never on the IOLoop (rule 1 of
        docs/architecture.md)."""
        return await self.runtime.read(fn, *args)

    async def read_page(self, fn: Callable[..., Page], *args: Any) -> Page:
        """`read` for a list: a cursor naming no item is a validation_error on its field."""
        try:
            return await self.read(fn, *args)
        except CursorNotFound as exc:
            raise validation_error([FieldError(exc.field, exc.message)]) from None

    def send_page(self, page: Page, key: str, items: list[Any], **also: Any) -> None:
        """A list's answer: `also` (a subscription's id), the reference's `total`,
        `offset`, `limit` and items, then `total_exact` and the links to the pages beside
        this one, made of this request's path and query with the cursor swapped in."""
        q = self.query()
        self.send(
            {
                **also,
                "total": page.total,
                "offset": q["offset"],
                "limit": q["limit"],
                key: items,
                "total_exact": page.total_exact,
                "next": self._link("after", page.next),
                "previous": self._link("before", page.previous),
            }
        )

    def _link(self, name: str, item_id: str | None) -> str | None:
        if item_id is None:
            return None
        kept = [
            (k, v.decode("utf-8", errors="replace"))
            for k, values in self.request.query_arguments.items()
            if k not in ("offset", "after", "before")
            for v in values
        ]
        return f"{self.request.path}?{urllib.parse.urlencode([*kept, (name, item_id)])}"


class NotFoundHandler(BaseHandler):
    """Any path no route matches."""

    def authorize(self) -> None:
        raise ApiError("not_found", f"no route for {self.request.path}")
