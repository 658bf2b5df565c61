"""The Python client of the Synthesis API: one async method per endpoint, plus
`execute_plan`, `wait_for_execution`, `subscribe_to_execution`, `subscribe_to_events`
and `close`. Built on Tornado's own HTTP and WebSocket clients; nothing blocks.

    async with SynthesisClient("http://127.0.0.1:8009", token="...") as client:
        execution_id = await client.execute_plan({"name": "hi", "steps": [...]})
        result = await client.wait_for_execution(execution_id, timeout=60)

The token comes from `token=` or, failing that, the `SYNTHESIS_TOKEN` environment
variable. Every error the API answers, and every network failure, is raised as a
`SynthesisError` carrying the API's `code`, `message` and `details`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = [
    "TERMINAL_STATUSES",
    "Subscription",
    "SynthesisClient",
    "SynthesisError",
    "SynthesisTimeout",
]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
DEFAULT_BASE_URL = "http://localhost:8009"
TOKEN_ENV = "SYNTHESIS_TOKEN"
POLL_INTERVAL = 0.2
SOCKET_CLOSE_WAIT = 1.0

# Close codes the server's WebSockets use, and the API error each stands for.
_CLOSE_CODES = {
    4404: ("not_found", 404),
    4400: ("validation_error", 400),
    1013: ("unavailable", 503),
}


class SynthesisError(Exception):
    """An error from the API (`status` is its HTTP status) or from the network on the way
    to it (`status` None, code `unavailable` or `timeout`). `details` lists
    `{"field", "message"}` objects, as the API sends them."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details: list[dict[str, Any]] = list(details or [])

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.status is not None:
            text = f"{self.status} {text}"
        for detail in self.details:
            text += f"\n  {detail.get('field')}: {detail.get('message')}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, status={self.status!r})"


class SynthesisTimeout(SynthesisError, TimeoutError):
    """A request, or a wait, that ran out of time. Also an `asyncio.TimeoutError`."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


def _time(value: str | datetime) -> str:
    """A datetime as ISO 8601 UTC (naive ones are taken as UTC); strings pass unchanged."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _list_query(
    from_date: str | datetime | None,
    to_date: str | datetime | None,
    limit: int | None,
    offset: int | None,
    after: str | None,
    before: str | None,
    **filters: Any,
) -> dict[str, Any]:
    """The query of a list endpoint: its filters, the date window and the page (by
    offset, or after / before an item id: docs/clients.md, "Lists")."""
    return {
        **filters,
        "from_date": None if from_date is None else _time(from_date),
        "to_date": None if to_date is None else _time(to_date),
        "limit": limit,
        "offset": offset,
        "after": after,
        "before": before,
    }


def _idempotency(key: str | None) -> dict[str, str] | None:
    """The Idempotency-Key header, when a key is given."""
    return None if key is None else {"Idempotency-Key": key}


def _segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


async def _close_socket(ws: WebSocketClientConnection, wait: float = SOCKET_CLOSE_WAIT) -> None:
    """Close `ws` with the closing handshake, and wait (at most `wait` seconds, then drop
    the connection) until it is really closed, so no socket outlives its event loop."""
    protocol = ws.protocol
    ws.close()
    stream = getattr(protocol, "stream", None)
    if stream is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not stream.closed() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    if not stream.closed():
        stream.close()


def _close_when_connected(connecting: asyncio.Future[WebSocketClientConnection]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result().close()


def _error_from_response(status: int, reason: str | None, body: bytes | None) -> SynthesisError:
    """The API's `{"error": {...}}` body as a SynthesisError; anything else as best we can."""
    try:
        error = orjson.loads(body or b"null")["error"]
        return SynthesisError(
            str(error["code"]), str(error.get("message", "")), status, error.get("details")
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = (body or b"").decode("utf-8", errors="replace").strip()[:500]
        code = "internal_error" if status >= 500 else "http_error"
        return SynthesisError(code, text or reason or f"HTTP {status}", status)


class SynthesisClient:
    """An asynchronous client of one Synthesis server.

    `base_url` is the server's root (the API lives under `/api`, sockets under `/ws`);
    `timeout` bounds each HTTP request and each WebSocket connect, in seconds."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.timeout = timeout
        self._http: AsyncHTTPClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._sockets: set[WebSocketClientConnection] = set()

    # ---- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> SynthesisClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every open WebSocket and the HTTP client. The client may be used again
        afterwards: it reconnects on demand."""
        sockets, self._sockets = self._sockets, set()
        await asyncio.gather(*(_close_socket(ws) for ws in sockets))
        http, self._http, self._http_loop = self._http, None, None
        if http is not None:
            http.close()

    def _client(self) -> AsyncHTTPClient:
        """The HTTP client of the running loop, made on first use (Tornado's clients belong
        to one IOLoop, so a client used from a new loop gets a new one)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            if self._http is not None:  # made on a loop that has gone
                with contextlib.suppress(Exception):
                    self._http.close()
            self._http = AsyncHTTPClient(force_instance=True)
            self._http_loop = loop
        return self._http

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        return url

    # ---- HTTP -----------------------------------------------------------------------

    async def _fetch(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        accept_statuses: Iterable[int] = (),
    ) -> HTTPResponse:
        payload: bytes | None = None
        sent = self._headers(headers)
        if body is not None:
            payload = orjson.dumps(body)
            sent["Content-Type"] = "application/json"
        elif method in ("POST", "PUT"):
            payload = b""
        url = self._url(path, query)
        request = HTTPRequest(
            url,
            method=method,
            headers=sent,
            body=payload,
            connect_timeout=timeout or self.timeout,
            request_timeout=timeout or self.timeout,
            follow_redirects=False,
        )
        try:
            response = await self._client().fetch(request, raise_error=False)
        except HTTPClientError as exc:  # 599: timeouts and closed streams
            if "timeout" in str(exc).lower():
                raise SynthesisTimeout(f"{method} {url} timed out") from exc
            raise SynthesisError("unavailable", f"{method} {url}: {exc}") from exc
        except OSError as exc:  # refused, unreachable, unknown host
            raise SynthesisError("unavailable", f"{method} {url}: {exc}") from exc
        if response.code >= 400 and response.code not in accept_statuses:
            raise _error_from_response(response.code, response.reason, response.body)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._fetch(method, path, **kwargs)
        return orjson.loads(response.body) if response.body else None

    # ---- executions -----------------------------------------------------------------

    async def create_execution(
        self,
        plan: Mapping[str, Any],
        variables: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        start: bool = False,
        secret_variables: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/executions: an execution of an inline plan (started if `start`);
        `secret_variables` are shown as `***` wherever they would show. With an
        `idempotency_key`, sending the same call again (after a timeout or a 503, say)
        answers the first call's answer and creates nothing more."""
        body: dict[str, Any] = {"plan": plan}
        if variables is not None:
            body["variables"] = variables
        if secret_variables is not None:
            body["secret_variables"] = list(secret_variables)
        if metadata is not None:
            body["metadata"] = metadata
        if start:
            body["start"] = True
        headers = _idempotency(idempotency_key)
        return await self._json("POST", "/api/executions", body=body, headers=headers)

    async def execute_plan(
        self,
        plan: Mapping[str, Any],
        variables: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        secret_variables: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Create and start an execution of an inline plan; its execution id."""
        created = await self.create_execution(
            plan,
            variables,
            metadata,
            start=True,
            secret_variables=secret_variables,
            idempotency_key=idempotency_key,
        )
        return created["execution_id"]

    async def list_executions(
        self,
        status: str | None = None,
        tag: str | None = None,
        created_by: str | None = None,
        from_date: str | datetime | None = None,
        to_date: str | datetime | None = None,
        limit: int | None = None,
        offset: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/executions: `{total, offset, limit, executions, total_exact, next,
        previous}`, newest first; `after` / `before` an execution id page by keyset."""
        query = _list_query(
            from_date,
            to_date,
            limit,
            offset,
            after,
            before,
            status=status,
            tag=tag,
            created_by=created_by,
        )
        return await self._json("GET", "/api/executions", query=query)

    async def get_execution(self, execution_id: str) -> dict[str, Any]:
        """GET /api/executions/{id}: status, plan, steps, variables, metadata."""
        return await self._json("GET", f"/api/executions/{_segment(execution_id)}")

    async def _control(self, execution_id: str, action: str) -> dict[str, Any]:
        return await self._json("POST", f"/api/executions/{_segment(execution_id)}/{action}")

    async def start_execution(self, execution_id: str) -> dict[str, Any]:
        """POST /api/executions/{id}/start."""
        return await self._control(execution_id, "start")

    async def pause_execution(self, execution_id: str) -> dict[str, Any]:
        """POST /api/executions/{id}/pause."""
        return await self._control(execution_id, "pause")

    async def resume_execution(self, execution_id: str) -> dict[str, Any]:
        """POST /api/executions/{id}/resume."""
        return await self._control(execution_id, "resume")

    async def cancel_execution(self, execution_id: str) -> dict[str, Any]:
        """POST /api/executions/{id}/cancel."""
        return await self._control(execution_id, "cancel")

    async def get_execution_steps(self, execution_id: str) -> dict[str, Any]:
        """GET /api/executions/{id}/steps: `{execution_id, steps}`."""
        return await self._json("GET", f"/api/executions/{_segment(execution_id)}/steps")

    async def get_execution_step(self, execution_id: str, step_id: str) -> dict[str, Any]:
        """GET /api/executions/{id}/steps/{step_id}: one step, with its parameters."""
        path = f"/api/executions/{_segment(execution_id)}/steps/{_segment(step_id)}"
        return await self._json("GET", path)

    async def get_execution_variables(self, execution_id: str) -> dict[str, Any]:
        """GET /api/executions/{id}/variables: `{execution_id, variables}`."""
        return await self._json("GET", f"/api/executions/{_segment(execution_id)}/variables")

    # ---- plans ----------------------------------------------------------------------

    async def create_plan(
        self, plan: Mapping[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST /api/plans: store a plan; the stored plan, with its `plan_id`."""
        headers = _idempotency(idempotency_key)
        return await self._json("POST", "/api/plans", body=plan, headers=headers)

    async def list_plans(
        self,
        tag: str | None = None,
        created_by: str | None = None,
        from_date: str | datetime | None = None,
        to_date: str | datetime | None = None,
        limit: int | None = None,
        offset: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/plans: `{total, offset, limit, plans, total_exact, next, previous}`,
        newest first; `after` / `before` a plan id page by keyset."""
        query = _list_query(
            from_date, to_date, limit, offset, after, before, tag=tag, created_by=created_by
        )
        return await self._json("GET", "/api/plans", query=query)

    async def get_plan(self, plan_id: str) -> dict[str, Any]:
        """GET /api/plans/{id}."""
        return await self._json("GET", f"/api/plans/{_segment(plan_id)}")

    async def update_plan(self, plan_id: str, plan: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/plans/{id}: replace the plan's document."""
        return await self._json("PUT", f"/api/plans/{_segment(plan_id)}", body=plan)

    async def delete_plan(self, plan_id: str) -> dict[str, Any]:
        """DELETE /api/plans/{id}."""
        return await self._json("DELETE", f"/api/plans/{_segment(plan_id)}")

    async def execute_plan_by_id(
        self,
        plan_id: str,
        variables: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        secret_variables: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/plans/{id}/execute: create and start an execution of a stored plan."""
        body: dict[str, Any] = {}
        if variables is not None:
            body["variables"] = variables
        if secret_variables is not None:
            body["secret_variables"] = list(secret_variables)
        if metadata is not None:
            body["metadata"] = metadata
        path = f"/api/plans/{_segment(plan_id)}/execute"
        return await self._json("POST", path, body=body, headers=_idempotency(idempotency_key))

    # ---- integrations ---------------------------------------------------------------

    async def list_integrations(self) -> dict[str, Any]:
        """GET /api/integrations: `{integrations}`."""
        return await self._json("GET", "/api/integrations")

    async def get_integration(self, integration_id: str) -> dict[str, Any]:
        """GET /api/integrations/{id}: with each capability's parameter schema."""
        return await self._json("GET", f"/api/integrations/{_segment(integration_id)}")

    async def get_integration_capabilities(self, integration_id: str) -> dict[str, Any]:
        """GET /api/integrations/{id}/capabilities: `{integration_id, capabilities}`."""
        path = f"/api/integrations/{_segment(integration_id)}/capabilities"
        return await self._json("GET", path)

    async def invoke_capability(
        self,
        integration_id: str,
        capability_id: str,
        parameters: Mapping[str, Any] | None = None,
        async_: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """POST /api/integrations/{id}/capabilities/{capability}: the stored invocation.
        The server waits for the result unless `async_`; `timeout` overrides the client's
        request timeout for a long waiting invoke."""
        path = (
            f"/api/integrations/{_segment(integration_id)}/capabilities/{_segment(capability_id)}"
        )
        body = {"parameters": dict(parameters or {}), "async": async_}
        return await self._json("POST", path, body=body, timeout=timeout)

    async def get_invocation(self, invocation_id: str) -> dict[str, Any]:
        """GET /api/integrations/invocations/{id}: an invocation's status and result."""
        return await self._json("GET", f"/api/integrations/invocations/{_segment(invocation_id)}")

    # ---- events and subscriptions ---------------------------------------------------

    async def list_events(
        self,
        type: str | None = None,
        execution_id: str | None = None,
        from_date: str | datetime | None = None,
        to_date: str | datetime | None = None,
        limit: int | None = None,
        offset: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/events: `{total, offset, limit, events, total_exact, next, previous}`,
        newest first; `after` / `before` an event id page by keyset."""
        query = _list_query(
            from_date, to_date, limit, offset, after, before, type=type, execution_id=execution_id
        )
        return await self._json("GET", "/api/events", query=query)

    async def get_event(self, event_id: str) -> dict[str, Any]:
        """GET /api/events/{id}: one event record."""
        return await self._json("GET", f"/api/events/{_segment(event_id)}")

    async def create_subscription(
        self,
        callback_url: str,
        types: Iterable[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        expiration: str | datetime | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/events/subscriptions: a webhook for matching events."""
        body: dict[str, Any] = {"callback_url": callback_url}
        if types is not None:
            body["types"] = list(types)
        if filter is not None:
            body["filter"] = dict(filter)
        if expiration is not None:
            body["expiration"] = _time(expiration)
        if secret is not None:
            body["secret"] = secret
        return await self._json("POST", "/api/events/subscriptions", body=body)

    async def list_subscriptions(self) -> dict[str, Any]:
        """GET /api/events/subscriptions: `{subscriptions}` that have not expired."""
        return await self._json("GET", "/api/events/subscriptions")

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        """GET /api/events/subscriptions/{id}."""
        return await self._json("GET", f"/api/events/subscriptions/{_segment(subscription_id)}")

    async def delete_subscription(self, subscription_id: str) -> dict[str, Any]:
        """DELETE /api/events/subscriptions/{id}."""
        path = f"/api/events/subscriptions/{_segment(subscription_id)}"
        return await self._json("DELETE", path)

    async def pause_subscription(self, subscription_id: str) -> dict[str, Any]:
        """POST /api/events/subscriptions/{id}/pause: nothing is delivered until resumed."""
        path = f"/api/events/subscriptions/{_segment(subscription_id)}/pause"
        return await self._json("POST", path)

    async def resume_subscription(self, subscription_id: str) -> dict[str, Any]:
        """POST /api/events/subscriptions/{id}/resume: delivery goes on from where it
        stopped (a subscription paused after too many failures too)."""
        path = f"/api/events/subscriptions/{_segment(subscription_id)}/resume"
        return await self._json("POST", path)

    async def redeliver(self, subscription_id: str, delivery_id: str) -> dict[str, Any]:
        """POST /api/events/subscriptions/{id}/deliveries/{delivery_id}/redeliver: the
        event of a finished delivery (a dead one, say) again; the new delivery, `pending`."""
        sid, did = _segment(subscription_id), _segment(delivery_id)
        path = f"/api/events/subscriptions/{sid}/deliveries/{did}/redeliver"
        return await self._json("POST", path)

    async def list_deliveries(
        self,
        subscription_id: str,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """GET /api/events/subscriptions/{id}/deliveries: `{total, ..., deliveries}`;
        `after` / `before` a delivery id page by keyset."""
        path = f"/api/events/subscriptions/{_segment(subscription_id)}/deliveries"
        query = _list_query(None, None, limit, offset, after, before, status=status)
        return await self._json("GET", path, query=query)

    # ---- system ---------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """GET /health: `{status, version, uptime, components}`. An unhealthy server
        (HTTP 503) is reported in `status`, not raised."""
        response = await self._fetch("GET", "/health", accept_statuses=(503,))
        health = orjson.loads(response.body)
        if response.code == 503 and not (isinstance(health, dict) and "status" in health):
            raise _error_from_response(response.code, response.reason, response.body)
        return health

    async def list_nodes(self) -> dict[str, Any]:
        """GET /api/nodes: `{nodes}`, the servers of the cluster on the server's database
        (`node_id, host, port, pid, started_at, heartbeat_at, status, executions`)."""
        return await self._json("GET", "/api/nodes")

    async def get_me(self) -> dict[str, Any]:
        """GET /api/me: `{subject, scopes}`, who this client's token is."""
        return await self._json("GET", "/api/me")

    async def metrics(self, format: str | None = None) -> dict[str, Any] | str:
        """GET /metrics: the JSON figures, or with `format="prometheus"` the Prometheus
        text exposition as a string."""
        response = await self._fetch("GET", "/metrics", query={"format": format})
        if format == "prometheus":
            return response.body.decode("utf-8")
        return orjson.loads(response.body)

    # ---- WebSockets -----------------------------------------------------------------

    async def _connect(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> WebSocketClientConnection:
        """A WebSocket to `path`, authenticated with the Authorization header."""
        url = self._url(path, query)
        scheme, rest = url.split("://", 1)
        url = ("wss" if scheme == "https" else "ws") + "://" + rest
        request = HTTPRequest(
            url,
            headers=self._headers(),
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
        )
        connecting = asyncio.ensure_future(websocket_connect(request))
        try:
            ws = await asyncio.shield(connecting)
        except asyncio.CancelledError:  # a socket that opens after all is closed at once
            connecting.add_done_callback(_close_when_connected)
            raise
        except HTTPClientError as exc:
            if exc.response is not None and exc.code != 599:
                raise _error_from_response(
                    exc.code, exc.response.reason, exc.response.body
                ) from exc
            if "timeout" in str(exc).lower():
                raise SynthesisTimeout(f"connect to {url} timed out") from exc
            raise SynthesisError("unavailable", f"connect to {url}: {exc}") from exc
        except OSError as exc:
            raise SynthesisError("unavailable", f"connect to {url}: {exc}") from exc
        except Exception as exc:  # StreamClosedError, WebSocketError: not a socket after all
            raise SynthesisError("unavailable", f"connect to {url}: {exc!r}") from exc
        self._sockets.add(ws)
        return ws

    def _closed_error(self, ws: WebSocketClientConnection) -> SynthesisError | None:
        """Why the server closed `ws`, as an error; None for a normal close (or our own)."""
        if ws not in self._sockets:  # close() closed it
            return None
        code, reason = ws.close_code, ws.close_reason or ""
        if code in _CLOSE_CODES:
            name, status = _CLOSE_CODES[code]
            return SynthesisError(name, reason or f"socket closed with {code}", status)
        if code == 1000:
            return None
        return SynthesisError("unavailable", f"socket closed ({code}) {reason}".strip())

    def subscribe_to_execution(self, execution_id: str) -> Subscription:
        """The execution's messages `{type, timestamp, data}` over /ws/executions/{id}:
        first those so far, then live ones, ending after `execution_completed`. An unknown
        id raises `not_found`."""
        return Subscription(
            self,
            f"/ws/executions/{_segment(execution_id)}",
            until=lambda message: message.get("type") == "execution_completed",
        )

    def subscribe_to_events(
        self,
        types: Iterable[str] | None = None,
        execution_id: str | None = None,
        since: str | None = None,
    ) -> Subscription:
        """Event records over /ws/events, live, optionally filtered by `types` and
        `execution_id`; with `since` (an event id) the matching events after that one are
        replayed first. Runs until the caller stops iterating, which closes the socket."""
        query = {
            "types": None if types is None else ",".join(types),
            "execution_id": execution_id,
            "since": since,
        }
        return Subscription(self, "/ws/events", query)

    async def wait_for_execution(
        self,
        execution_id: str,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> dict[str, Any]:
        """Wait until the execution has ended (completed, failed or cancelled) and return
        it as `get_execution` does. Listens on the execution's WebSocket; if that cannot
        be used, polls every `poll_interval` seconds. Raises `SynthesisTimeout` (an
        `asyncio.TimeoutError`) after `timeout` seconds."""
        try:
            return await asyncio.wait_for(self._wait(execution_id, poll_interval), timeout)
        except TimeoutError as exc:
            if isinstance(exc, SynthesisTimeout):
                raise
            raise SynthesisTimeout(
                f"execution {execution_id} did not end within {timeout} seconds"
            ) from None

    async def _wait(self, execution_id: str, poll_interval: float) -> dict[str, Any]:
        with contextlib.suppress(SynthesisError):
            # Any socket trouble (refused, closed early, even auth): the polls below say
            # what is really the matter, if anything.
            async with self.subscribe_to_execution(execution_id) as messages:
                async for _message in messages:
                    pass
        while True:
            execution = await self.get_execution(execution_id)
            if execution["status"] in TERMINAL_STATUSES:
                return execution
            await asyncio.sleep(poll_interval)


class Subscription:
    """An async iterator of a WebSocket's JSON messages (what `subscribe_to_execution` and
    `subscribe_to_events` return). It connects on the first `anext`, and closes its
    socket when it ends, on `aclose()`, on leaving `async with`, or as soon as the caller
    drops it (a `break` out of `async for`)."""

    def __init__(
        self,
        client: SynthesisClient,
        path: str,
        query: Mapping[str, Any] | None = None,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._query = query
        self._until = until
        self._ws: WebSocketClientConnection | None = None
        self._done = False
        self._last_seen = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._done or self._last_seen:
            await self.aclose()
            raise StopAsyncIteration
        if self._ws is None:
            try:
                self._ws = await self._client._connect(self._path, self._query)
            except BaseException:
                self._done = True
                raise
        ws = self._ws
        raw = await ws.read_message()
        if raw is None:  # the server closed it (or close() did)
            error = self._client._closed_error(ws)
            self._detach()
            ws.close()  # already closed; this releases it
            if error is not None:
                raise error
            raise StopAsyncIteration
        message = orjson.loads(raw)
        if self._until is not None and self._until(message):
            self._last_seen = True  # the next anext closes the socket and stops
        return message

    async def aclose(self) -> None:
        """Stop: close the socket. Iterating afterwards ends at once."""
        ws = self._detach()
        if ws is not None:
            await _close_socket(ws)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _detach(self) -> WebSocketClientConnection | None:
        self._done = True
        ws, self._ws = self._ws, None
        if ws is not None:
            self._client._sockets.discard(ws)
        return ws

    def __del__(self) -> None:
        ws = self._detach()
        if ws is not None:
            with contextlib.suppress(Exception):  # e.g. its loop has gone
                ws.close()
