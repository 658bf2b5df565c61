"""The MCP integration (`mcp`): talk to Model Context Protocol servers with the official SDK.

A server is either a command run as a child process and spoken to over its stdin/stdout
(`{"command", "args", "env"}`) or a Streamable HTTP endpoint (`{"url", "headers"}`).

- `connect`, `send_command`, `receive_response` and `disconnect` use long-lived
  connections held by the runtime's `McpConnections` (found in `RunContext.connections`).
- `call_tool` (what the plan step type `mcp` runs) connects, calls one tool and
  disconnects; it needs no registry. A tool result with `isError` fails the step.

`send_command` returns the JSON result of one request and also queues it on its
connection; a JSON-RPC error answer is queued too (and fails the step). Timeouts and lost
connections are not answers and queue nothing. `receive_response` takes the oldest queued
answer, each only once, in the order they arrived (the last 100 per connection are kept);
with none queued it waits up to `timeout` while a `send_command` is in flight on that
connection, and fails at once ("no response waiting") when none is. A queued JSON-RPC
error fails `receive_response` with the same error.

A stdio server gets the SDK's minimal environment (HOME, LOGNAME, PATH, SHELL, TERM, USER),
then `env`, then `SYNTHESIS_MCP_CONNECTION_ID` (how its pid is found); the last 4 KiB of
its stderr are kept for error messages.

Threads: everything here runs on the engine's aio loop thread: the capabilities (as step
coroutines), the registry's methods, and the one owner task each connection has. The SDK
is built on anyio, which wants its context managers entered and left by the same task, so
each connection's owner task enters the transport and the `ClientSession`, holds them
while the connection is open, and leaves them when it closes. Requests are sent by the
callers' own tasks through that session (the SDK multiplexes them by JSON-RPC id).

A stdio server is stopped when its connection closes (the SDK closes its stdin, waits
2 s, then sends SIGTERM to its process group and SIGKILL 2 s later), so no server process
outlives its connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import shlex
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import psutil
from pydantic import ConfigDict, ValidationError

from synthesis import __version__
from synthesis.engine.schema import Param, seconds, with_defaults
from synthesis.integrations.base import Capability, Integration, RunContext, StepResult
from synthesis.integrations.run_as import StepUser

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import mcp_types
    from mcp import ClientSession


@functools.cache
def _sdk() -> SimpleNamespace:
    """The MCP SDK, imported on first use: it is about a second of every server's start
    on this machine, and most servers never open an MCP connection."""
    import mcp_types
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    class AnyRequest(mcp_types.Request[dict[str, Any] | None, str]):
        """Any client request, by method name, with its params passed on as given."""

    class AnyResult(mcp_types.Result):
        """Any result, every field kept."""

        model_config = ConfigDict(extra="allow")

    return SimpleNamespace(
        types=mcp_types,
        ClientSession=ClientSession,
        StdioServerParameters=StdioServerParameters,
        stdio_client=stdio_client,
        streamable_http_client=streamable_http_client,
        MCPError=MCPError,
        AnyRequest=AnyRequest,
        AnyResult=AnyResult,
        client_info=mcp_types.Implementation(name="synthesis", version=__version__),
    )


_PID_MARKER = "SYNTHESIS_MCP_CONNECTION_ID"  # in a stdio server's environment, to find its pid
_STDERR_TAIL = 4096  # bytes of a stdio server's stderr kept for error messages
_QUEUE_LIMIT = 100  # responses kept per connection for receive_response
_CLOSED_MEMORY = 1000  # closed connection ids whose reason is remembered
_SSE_READ_TIMEOUT = 300.0  # an HTTP server may hold a response stream open this long

_SERVER = Param(
    "object",
    "The MCP server: {command, args, env} to run it and talk over stdio, "
    "or {url, headers} for Streamable HTTP",
    required=True,
)
_CONNECTION_ID = Param("string", "A connection id returned by connect", required=True)

CONNECT_PARAMETERS = {
    "server": _SERVER,
    "timeout": seconds(
        "Seconds to wait for the server to start and answer the initialize handshake",
        default=30,
    ),
}
SEND_COMMAND_PARAMETERS = {
    "connection_id": _CONNECTION_ID,
    "method": Param(
        "string",
        "A JSON-RPC method: tools/list, tools/call, resources/list, resources/read, "
        "prompts/list, prompts/get, ping, ...",
        required=True,
    ),
    "params": Param("object", "The method's parameters"),
    "timeout": seconds("Seconds to wait for the response", default=60),
}
RECEIVE_RESPONSE_PARAMETERS = {
    "connection_id": _CONNECTION_ID,
    "timeout": seconds(
        "Seconds to wait for a response while a command is still in flight",
        default=30,
        minimum=0,
    ),
}
DISCONNECT_PARAMETERS = {"connection_id": _CONNECTION_ID}
CALL_TOOL_PARAMETERS = {
    "server": _SERVER,
    "tool": Param("string", "The name of the tool to call", required=True),
    "arguments": Param("object", "The tool's arguments"),
    "timeout": seconds(
        "Seconds for the whole call: starting the server, the handshake and the tool call",
        default=60,
    ),
}


class McpFailure(Exception):
    """Something that failed, in words fit for a step's `error`.

    `far_side` when the server could not be started or reached, timed out, died or
    broke (StepResult.far_side_failed); not for our own checks or a JSON-RPC error
    answer other than an internal error.
    """

    def __init__(self, message: str, *, far_side: bool = False) -> None:
        super().__init__(message)
        self.far_side = far_side

    def again(self) -> McpFailure:
        """A fresh copy to raise (a kept exception would collect tracebacks)."""
        return McpFailure(str(self), far_side=self.far_side)


class _RpcFailure(McpFailure):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, what: str, exc: Any) -> None:
        far_side = exc.error.code == _sdk().types.INTERNAL_ERROR
        super().__init__(f"{what} failed: {_rpc_error(exc)}", far_side=far_side)


def _json(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- servers -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """Where an MCP server is: a command for stdio, or a URL for Streamable HTTP."""

    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_stdio(self) -> bool:
        return self.command is not None

    def describe(self) -> str:
        """For messages: the command line, or the URL without credentials."""
        if self.command is not None:
            return f'"{shlex.join([self.command, *self.args])}"'
        parts = urllib.parse.urlsplit(self.url or "")
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=host).geturl()


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpFailure(f"server.{what} must be an object of strings")
    return dict(value)


def parse_server(value: Any) -> ServerSpec:
    """The `server` parameter as a ServerSpec; McpFailure says what is wrong with it."""
    if not isinstance(value, dict):
        raise McpFailure("server must be an object with either a command or a url")
    has_command, has_url = "command" in value, "url" in value
    if has_command == has_url:
        raise McpFailure(
            "server must have either a command (stdio) or a url (Streamable HTTP), not "
            + ("both" if has_command else "neither")
        )
    allowed = {"command", "args", "env"} if has_command else {"url", "headers"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        kind = "a stdio server takes" if has_command else "an HTTP server takes"
        raise McpFailure(
            f"unknown key {unknown[0]!r} in server: {kind} {', '.join(sorted(allowed))}"
        )
    if has_command:
        command, args = value["command"], value.get("args") or []
        if not isinstance(command, str) or not command.strip():
            raise McpFailure("server.command must be a non-empty string")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpFailure("server.args must be a list of strings")
        return ServerSpec(command=command, args=tuple(args), env=_strings(value.get("env"), "env"))
    url = value["url"]
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise McpFailure("server.url must start with http:// or https://")
    return ServerSpec(url=url, headers=_strings(value.get("headers"), "headers"))


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _root_cause(exc: BaseException) -> BaseException:
    """The first exception in a (nested) exception group that is not a cancellation."""
    leaves = list(_leaves(exc))
    return next((e for e in leaves if not isinstance(e, asyncio.CancelledError)), leaves[0])


def _rpc_error(exc: Any) -> str:
    text = f"JSON-RPC error {exc.error.code}: {exc.error.message}"
    if exc.error.data is not None:
        text += f" ({exc.error.data})"
    return text


class _StderrTail(asyncio.Protocol):
    """Keeps the last few KiB a stdio server wrote to its stderr (read on the aio loop)."""

    def __init__(self) -> None:
        self._data = bytearray()

    def data_received(self, data: bytes) -> None:
        self._data += data
        del self._data[:-_STDERR_TAIL]

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace").strip()


# --- connections ---------------------------------------------------------------------


@dataclass
class _Response:
    method: str
    result: dict[str, Any] | None = None
    error: McpFailure | None = None


class McpConnection:
    """One open session with one MCP server, held by an owner task on the aio loop.

    `start` opens it (server started, initialize handshake done); `close` closes it and,
    for stdio, stops the server. After `idle_timeout` seconds without a request it closes
    itself. Every method must be called on the aio loop thread.
    """

    def __init__(
        self,
        server: ServerSpec,
        *,
        idle_timeout: float = math.inf,
        on_closed: Callable[[McpConnection, McpFailure], None] | None = None,
        run_as: StepUser | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.server = server
        self._run_as = run_as  # --run-as: a stdio server runs as that user
        self.server_pid: int | None = None
        self.info: dict[str, Any] = {}
        self._idle_timeout = idle_timeout
        self._on_closed = on_closed
        self._session: ClientSession | None = None
        self._scope = anyio.CancelScope()  # cancelled to close; entered by the owner task
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing: str | None = None  # why it is closing or closed
        self._server_failed = False  # it is closing because the server failed
        self._busy = 0
        self._last_used = time.monotonic()
        self._stderr = _StderrTail()
        self._responses: collections.deque[_Response] = collections.deque(maxlen=_QUEUE_LIMIT)
        self._waiters: list[asyncio.Future[None]] = []  # receive_response calls waiting

    # The owner task ---------------------------------------------------------------

    async def start(self, timeout: float) -> dict[str, Any]:
        """Start the owner task and wait until the handshake is done; returns `info`."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._task = loop.create_task(self._own(timeout), name=f"mcp-connection-{self.id}")
        try:
            await asyncio.shield(self._ready)
        except asyncio.CancelledError:
            await asyncio.shield(self.close("cancelled while connecting"))
            if self._ready.done() and not self._ready.cancelled():
                self._ready.exception()  # retrieved: nobody else will
            raise
        return self.info

    async def _own(self, timeout: float) -> None:
        """Owner task: enter the transport and the session, hold them, leave them."""
        assert self._ready is not None
        reason = "disconnected"
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await self._open_transport(stack, timeout)
                session = await stack.enter_async_context(
                    _sdk().ClientSession(read, write, client_info=_sdk().client_info)
                )
                with self._scope:
                    with anyio.move_on_after(timeout) as handshake:
                        result = await session.initialize()
                    if handshake.cancelled_caught:
                        raise McpFailure(
                            f"MCP server {self.server.describe()} did not finish the initialize"
                            f" handshake within {timeout:g} seconds{self._stderr_note()}"
                        )
                    self._session = session
                    if self.server.is_stdio:
                        self.server_pid = self._find_pid()
                    self.info = self._describe(result)
                    self._ready.set_result(None)
                    self._last_used = time.monotonic()
                    reason = await self._serve()
                if self._closing is not None:
                    reason = self._closing
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except (Exception, BaseExceptionGroup) as exc:  # every failure becomes a reason
            reason = await self._explain(exc)
            if self._closing is None:
                self._server_failed = True
            if not self._ready.done():
                self._ready.set_exception(McpFailure(reason, far_side=True))
        finally:
            self._session = None
            self._closing = self._closing or reason
            if not self._ready.done():  # closed before the handshake ended
                self._ready.set_exception(McpFailure(f"connection closed: {self._closing}"))
            if self._on_closed is not None:
                self._on_closed(self, self._lost())
            self._notify()

    async def _open_transport(
        self, stack: contextlib.AsyncExitStack, timeout: float
    ) -> tuple[Any, Any]:
        """Owner task: start the server (stdio) or the HTTP client; the SDK's stream pair."""
        spec = self.server
        if spec.url is not None:
            client = httpx2.AsyncClient(
                headers=dict(spec.headers), timeout=httpx2.Timeout(timeout, read=_SSE_READ_TIMEOUT)
            )
            await stack.enter_async_context(client)
            return await stack.enter_async_context(
                _sdk().streamable_http_client(spec.url, http_client=client)
            )
        assert spec.command is not None
        # The server's stderr goes to a pipe we read, so its last words reach the messages.
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        reader, _ = await loop.connect_read_pipe(lambda: self._stderr, os.fdopen(read_fd, "rb"))
        stack.callback(reader.close)
        argv, env = [spec.command, *spec.args], {**spec.env, _PID_MARKER: self.id}
        cwd = None
        if self._run_as is not None:
            argv, cwd = self._run_as.wrap(argv), self._run_as.working_directory()
            env = {**self._run_as.environment(), **env}
        params = _sdk().StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
        with os.fdopen(write_fd, "w") as errlog:  # the child has its own copy once started
            return await stack.enter_async_context(_sdk().stdio_client(params, errlog=errlog))

    async def _serve(self) -> str:
        """Owner task: wait until closed; close when idle longer than idle_timeout."""
        while True:
            idle = time.monotonic() - self._last_used
            if not self._busy and idle >= self._idle_timeout:
                self._closing = f"idle for more than {self._idle_timeout:g} seconds"
                return self._closing
            wait = self._idle_timeout if self._busy else self._idle_timeout - idle
            await anyio.sleep(min(wait, 86400.0))

    def _find_pid(self) -> int | None:
        """The stdio server's pid: our child whose environment carries this connection's id.

        Only asked once the server has answered: the SDK's spawn may return while the
        child is still inside exec (vfork), when its environment cannot be read yet.
        """
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if child.environ().get(_PID_MARKER) == self.id:
                    return child.pid
        return None

    def _describe(self, result: mcp_types.InitializeResult) -> dict[str, Any]:
        info: dict[str, Any] = {
            "connection_id": self.id,
            "server_info": _json(result.server_info),
            "capabilities": _json(result.capabilities),
            "protocol_version": result.protocol_version,
        }
        if result.instructions:
            info["instructions"] = result.instructions
        if self.server_pid is not None:
            info["server_pid"] = self.server_pid
        return info

    # Explaining failures -------------------------------------------------------------

    def _stderr_note(self) -> str:
        text = self._stderr.text()
        return f"; its stderr ends with: {text[-1000:]}" if text else ""

    def _server_gone(self) -> bool:
        if self.server_pid is None:  # it exited before we could see its environment
            return True
        try:
            return psutil.Process(self.server_pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    async def _gone(self) -> str:
        """Why the SDK says 'connection closed' when we did not close it."""
        if self.server.is_stdio:
            # Its stdout closed: it is exiting. Give it a moment to be seen as gone.
            deadline = time.monotonic() + 1.0
            while not self._server_gone() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if self._server_gone():
                return f"MCP server {self.server.describe()} exited{self._stderr_note()}"
        return f"MCP server {self.server.describe()} closed the connection"

    def _lost(self) -> McpFailure:
        """Why requests on this connection cannot be sent or answered."""
        reason = self._closing or "the session ended"
        return McpFailure(
            f"connection {self.id} was closed: {reason}", far_side=self._server_failed
        )

    async def _explain(self, exc: BaseException) -> str:
        """A failure of the owner task (transport, handshake), in words."""
        cause = _root_cause(exc)
        where = self.server.describe()
        if isinstance(cause, McpFailure):
            return str(cause)
        if isinstance(cause, FileNotFoundError):
            return f"cannot start MCP server {where}: command not found"
        if isinstance(cause, PermissionError):
            return f"cannot start MCP server {where}: permission denied"
        if isinstance(cause, httpx2.ConnectTimeout):
            return f"timed out connecting to MCP server at {where}"
        if isinstance(cause, httpx2.ConnectError):
            return f"cannot connect to MCP server at {where} (connection refused?): {cause}"
        if isinstance(cause, httpx2.TimeoutException):
            return f"MCP server at {where} timed out: {type(cause).__name__}"
        if isinstance(cause, httpx2.HTTPError):
            return f"HTTP error talking to MCP server at {where}: {cause}"
        if isinstance(cause, _sdk().MCPError):
            if cause.error.code == _sdk().types.CONNECTION_CLOSED:
                return await self._gone()
            return f"MCP server {where}: {_rpc_error(cause)}"
        return f"MCP server {where}: {type(cause).__name__}: {cause}"

    @property
    def busy(self) -> bool:
        """A command is in flight on it (aio loop thread)."""
        return self._busy > 0

    # Requests ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _using(self, what: str, timeout: float) -> AsyncIterator[ClientSession]:
        """Caller's task: the session, counted as busy, with `timeout` and failures in words."""
        if self._closing is not None or self._session is None:
            raise self._lost()
        session = self._session
        self._busy += 1
        try:
            with anyio.move_on_after(timeout) as scope:
                yield session
            if scope.cancelled_caught:
                raise McpFailure(f"{what} timed out after {timeout:g} seconds", far_side=True)
        except _sdk().MCPError as exc:
            if exc.error.code != _sdk().types.CONNECTION_CLOSED:
                raise _RpcFailure(what, exc) from None
            if self._closing is None:  # the server went away: close our side too
                self._server_failed = True
                self.close_soon(await self._gone())
            raise self._lost() from None
        except McpFailure:
            raise
        except ValidationError as exc:
            raise McpFailure(
                f"{what}: the server's answer is not valid: {exc}", far_side=True
            ) from None
        except Exception as exc:  # e.g. RuntimeError from the SDK about an answer
            raise McpFailure(f"{what} failed: {type(exc).__name__}: {exc}", far_side=True) from None
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()
            self._notify()

    async def request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> Any:
        """Caller's task: send one JSON-RPC request; queue and return its JSON result."""
        response = _Response(method)
        try:
            async with self._using(method, timeout) as session:
                result = await session.send_request(
                    _sdk().AnyRequest(method=method, params=dict(params) if params else None),
                    _sdk().AnyResult,
                )
            response.result = _json(result)
            return response.result
        except _RpcFailure as failure:  # an answer too, so it is queued
            response.error = failure.again()
            raise
        finally:
            if response.result is not None or response.error is not None:
                self._responses.append(response)
                self._notify()

    async def call_tool(
        self, tool: str, arguments: Mapping[str, Any] | None, timeout: float
    ) -> mcp_types.CallToolResult:
        """Caller's task: call a tool with the SDK's typed call (it checks structured output)."""
        async with self._using(f"tool {tool!r}", timeout) as session:
            return await session.call_tool(tool, dict(arguments) if arguments else None)
        raise AssertionError("unreachable")  # pragma: no cover - _using raises on timeout

    async def next_response(self, timeout: float) -> _Response:
        """Caller's task: the oldest response not yet received (see receive_response)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._responses and self._busy and self._closing is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await asyncio.wait([waiter], timeout=remaining)
        if self._responses:
            return self._responses.popleft()
        if self._closing is not None:
            raise self._lost()
        if self._busy:
            raise McpFailure(f"no response arrived on connection {self.id} within {timeout:g} s")
        raise McpFailure(
            f"no response waiting on connection {self.id}: every response was already "
            "received and no command is in flight"
        )

    def _notify(self) -> None:
        """Wake the receive_response calls waiting: a response came or a request ended."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # Closing -------------------------------------------------------------------------

    def close_soon(self, reason: str) -> None:
        """Ask the owner task to close the connection; returns at once."""
        if self._closing is None:
            self._closing = reason
        self._scope.cancel()

    async def close(self, reason: str = "disconnected") -> None:
        """Close the connection and wait until it is closed (and a stdio server stopped)."""
        self.close_soon(reason)
        if self._task is not None:
            await asyncio.wait([self._task])


class McpConnections:
    """The runtime's open MCP connections, by id. One per runtime; lives on the aio loop.

    It holds no asyncio object until used, so it may be created on any thread, but every
    method must be called on the aio loop thread. Call `close_all` at shutdown.
    """

    def __init__(self, idle_timeout: float = 300.0) -> None:
        self.idle_timeout = idle_timeout
        self._open: dict[str, McpConnection] = {}
        self._closed: collections.OrderedDict[str, McpFailure] = collections.OrderedDict()
        self._shut = False

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._open

    async def open(
        self, server: ServerSpec, timeout: float, run_as: StepUser | None = None
    ) -> McpConnection:
        """Connect (start the server, do the handshake) and register the connection."""
        if self._shut:
            raise McpFailure("MCP connections are closed: the server is shutting down")
        connection = McpConnection(
            server, idle_timeout=self.idle_timeout, on_closed=self._forget, run_as=run_as
        )
        self._open[connection.id] = connection
        await connection.start(timeout)
        return connection

    def get(self, connection_id: str) -> McpConnection:
        connection = self._open.get(connection_id)
        if connection is not None:
            return connection
        closed = self._closed.get(connection_id)
        if closed is not None:
            raise closed.again()
        raise McpFailure(f"unknown connection id {connection_id!r}")

    async def close(self, connection_id: str) -> None:
        await self.get(connection_id).close()

    async def close_all(self) -> None:
        """Close every connection (stopping stdio servers) and refuse new ones."""
        self._shut = True
        connections = list(self._open.values())
        await asyncio.gather(*(c.close("the server is shutting down") for c in connections))

    def _forget(self, connection: McpConnection, failure: McpFailure) -> None:
        self._open.pop(connection.id, None)
        self._closed[connection.id] = failure
        while len(self._closed) > _CLOSED_MEMORY:
            self._closed.popitem(last=False)


# --- capabilities --------------------------------------------------------------------


def _registry(ctx: RunContext) -> McpConnections:
    if not isinstance(ctx.connections, McpConnections):
        raise RuntimeError(
            "no MCP connection registry: RunContext.connections must be the runtime's "
            "McpConnections (synthesis/integrations/mcp.py)"
        )
    return ctx.connections


def _failed(error: str, far_side: bool = False) -> StepResult:
    return StepResult("failed", None, error, far_side_failed=far_side)


def _completed(output: Any, **more: Any) -> StepResult:
    return StepResult("completed", output, variables={"output": output, **more})


async def _guarded(what: str, work: Awaitable[StepResult]) -> StepResult:
    """Failures as failed results; only cancellation goes through."""
    try:
        return await work
    except McpFailure as failure:
        return _failed(str(failure), failure.far_side)
    except Exception as exc:  # a bug here must still end the step with a reason
        log.exception("MCP %s failed", what)
        return _failed(f"{what} failed: {type(exc).__name__}: {exc}")


async def connect(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """Open a connection; its output carries the connection_id the other capabilities take."""
    registry = _registry(ctx)
    p = with_defaults(params, CONNECT_PARAMETERS)

    async def work() -> StepResult:
        server = parse_server(p["server"])
        connection = await registry.open(server, float(p["timeout"]), ctx.run_as)
        return _completed(dict(connection.info))

    return await _guarded("connect", work())


async def send_command(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """Send one JSON-RPC request on a connection; its result is the output (and queued)."""
    registry = _registry(ctx)
    p = with_defaults(params, SEND_COMMAND_PARAMETERS)

    async def work() -> StepResult:
        connection = registry.get(p["connection_id"])
        result = await connection.request(p["method"], p.get("params"), float(p["timeout"]))
        return _completed(result)

    return await _guarded("send_command", work())


async def receive_response(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """Take the oldest response not yet received on a connection, waiting for one in flight."""
    registry = _registry(ctx)
    p = with_defaults(params, RECEIVE_RESPONSE_PARAMETERS)

    async def work() -> StepResult:
        response = await registry.get(p["connection_id"]).next_response(float(p["timeout"]))
        if response.error is not None:
            raise response.error.again()
        return _completed(response.result, method=response.method)

    return await _guarded("receive_response", work())


async def disconnect(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """Close a connection; a stdio server is stopped before this returns."""
    registry = _registry(ctx)

    async def work() -> StepResult:
        connection = registry.get(params["connection_id"])
        await asyncio.shield(connection.close())
        return _completed({"connection_id": connection.id, "disconnected": True})

    return await _guarded("disconnect", work())


def tool_output(result: mcp_types.CallToolResult) -> dict[str, Any]:
    """A tool result as JSON: content, structuredContent (if any), isError and text."""
    output: dict[str, Any] = {"content": [_json(block) for block in result.content]}
    if result.structured_content is not None:
        output["structuredContent"] = result.structured_content
    output["isError"] = bool(result.is_error)
    output["text"] = "\n".join(
        block.text for block in result.content if isinstance(block, _sdk().types.TextContent)
    )
    return output


async def call_tool(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """One-shot: connect, call the tool, disconnect. A tool error fails the step."""
    p = with_defaults(params, CALL_TOOL_PARAMETERS)
    timeout = float(p["timeout"])

    async def work() -> StepResult:
        connection = McpConnection(parse_server(p["server"]), run_as=ctx.run_as)
        try:
            started = time.monotonic()
            await connection.start(timeout)
            remaining = max(timeout - (time.monotonic() - started), 0.001)
            result = await connection.call_tool(p["tool"], p.get("arguments"), remaining)
        finally:
            await asyncio.shield(connection.close("call finished"))
        output = tool_output(result)
        if output["isError"]:
            error = output["text"] or f"tool {p['tool']!r} reported an error"
            return StepResult("failed", output, error, variables={"output": output})
        return _completed(output)

    return await _guarded("call_tool", work())


CONNECT = Capability("connect", "Connect", "Connect to an MCP server", CONNECT_PARAMETERS, connect)
SEND_COMMAND = Capability(
    "send_command",
    "Send Command",
    "Send a JSON-RPC request on an MCP connection",
    SEND_COMMAND_PARAMETERS,
    send_command,
)
RECEIVE_RESPONSE = Capability(
    "receive_response",
    "Receive Response",
    "Take the oldest response not yet received on an MCP connection",
    RECEIVE_RESPONSE_PARAMETERS,
    receive_response,
)
DISCONNECT = Capability(
    "disconnect",
    "Disconnect",
    "Close an MCP connection (stopping a stdio server)",
    DISCONNECT_PARAMETERS,
    disconnect,
)
CALL_TOOL = Capability(
    "call_tool",
    "Call Tool",
    "Connect to an MCP server, call one tool and disconnect",
    CALL_TOOL_PARAMETERS,
    call_tool,
)
MCP_INTEGRATION = Integration(
    "mcp",
    "Machine Control Protocol",
    "Control external systems using MCP",
    (CONNECT, SEND_COMMAND, RECEIVE_RESPONSE, DISCONNECT, CALL_TOOL),
)
