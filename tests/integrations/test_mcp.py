"""The mcp integration against a real MCP server (tests/integrations/mcp_server.py), over
stdio and over Streamable HTTP, with the capabilities run directly on an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from synthesis.integrations.base import RunContext, StepResult
from synthesis.integrations.mcp import (
    MCP_INTEGRATION,
    McpConnections,
    call_tool,
    connect,
    disconnect,
    receive_response,
    send_command,
)
from tests.support import eventually, wait_until

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
STDIO = {"command": sys.executable, "args": [SERVER_SCRIPT, "stdio"]}
# Never answers the handshake; exits when its stdin closes.
SILENT = {"command": sys.executable, "args": ["-c", "import sys; sys.stdin.read()"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stdio_servers() -> list[int]:
    """Pids of the stdio servers (test server or SILENT) this test process has running."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if child.status() != psutil.STATUS_ZOMBIE and (
                cmdline[-1:] == ["stdio"] or cmdline[-1:] == SILENT["args"][-1:]
            ):
                found.append(child.pid)
    return found


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER_SCRIPT, "http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: process.poll() is None and accepts(port))
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(
    body: Callable[[RunContext, McpConnections], Awaitable[None]], idle_timeout: float = 300.0
) -> None:
    """Run body on a fresh loop with a real registry, closed at the end."""

    async def main() -> None:
        registry = McpConnections(idle_timeout=idle_timeout)
        try:
            await body(RunContext(connections=registry), registry)
        finally:
            await registry.close_all()

    asyncio.run(main())


def ok(result: StepResult) -> Any:
    assert result.status == "completed", result.error
    assert result.variables["output"] == result.output
    return result.output


def failed(result: StepResult, far_side: bool = False) -> str:
    """The error; `far_side`: the server could not be reached, timed out or died."""
    assert result.status == "failed", result
    assert result.error
    assert result.far_side_failed is far_side, result
    return result.error


async def session_round_trip(ctx: RunContext, server: dict[str, Any]) -> dict[str, Any]:
    info = ok(await connect({"server": server}, ctx))
    assert info["server_info"]["name"] == "synthesis-test"
    assert "tools" in info["capabilities"]
    cid = info["connection_id"]
    if "server_pid" in info:  # stdio: the pid is the server's own
        asked = {"connection_id": cid, "method": "tools/call", "params": {"name": "pid"}}
        assert ok(await send_command(asked, ctx))["structuredContent"] == {
            "result": info["server_pid"]
        }
        assert ok(await receive_response({"connection_id": cid}, ctx))

    listed = ok(await send_command({"connection_id": cid, "method": "tools/list"}, ctx))
    assert {"add", "echo", "fail", "slow"} <= {tool["name"] for tool in listed["tools"]}
    call = {"name": "add", "arguments": {"a": 2, "b": 3}}
    added = ok(
        await send_command({"connection_id": cid, "method": "tools/call", "params": call}, ctx)
    )
    assert added["structuredContent"] == {"result": 5}
    assert added["isError"] is False
    assert ok(await send_command({"connection_id": cid, "method": "ping"}, ctx)) == {}

    # receive_response hands the responses back oldest first, each once.
    first = await receive_response({"connection_id": cid}, ctx)
    assert ok(first) == listed and first.variables["method"] == "tools/list"
    assert ok(await receive_response({"connection_id": cid}, ctx)) == added
    assert ok(await receive_response({"connection_id": cid}, ctx)) == {}
    assert "no response waiting" in failed(await receive_response({"connection_id": cid}, ctx))

    assert ok(await disconnect({"connection_id": cid}, ctx))["disconnected"] is True
    after = failed(await send_command({"connection_id": cid, "method": "ping"}, ctx))
    assert after == f"connection {cid} was closed: disconnected"
    return info


def test_stdio_session_and_disconnect_stops_the_server() -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        info = await session_round_trip(ctx, STDIO)
        assert gone(info["server_pid"]), "the stdio server outlived its connection"
        assert len(registry) == 0

    run(body)
    assert stdio_servers() == []


def test_http_session(http_url: str) -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        info = await session_round_trip(ctx, {"url": http_url, "headers": {"X-Test": "yes"}})
        assert "server_pid" not in info
        assert len(registry) == 0

    run(body)


def test_call_tool_one_shot_over_stdio_and_http(http_url: str) -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        for server in (STDIO, {"url": http_url}):
            args = {"text": "hello"}
            output = ok(await call_tool({"server": server, "tool": "echo", "arguments": args}, ctx))
            assert output == {
                "content": [{"type": "text", "text": "hello"}],
                "structuredContent": {"result": "hello"},
                "isError": False,
                "text": "hello",
            }
        assert len(registry) == 0  # one-shot calls do not use the registry

    run(body)
    assert stdio_servers() == []


def test_call_tool_works_without_a_registry() -> None:
    params = {"server": STDIO, "tool": "add", "arguments": {"a": 1, "b": 1}}
    result = asyncio.run(call_tool(params, RunContext()))
    assert ok(result)["text"] == "2"


def test_tool_errors_and_unknown_tools_fail_the_step() -> None:
    async def body(ctx: RunContext, _registry: McpConnections) -> None:
        result = await call_tool({"server": STDIO, "tool": "fail"}, ctx)
        assert "this tool always fails" in failed(result)
        assert result.output["isError"] is True
        assert result.output["text"] == result.error

        result = await call_tool({"server": STDIO, "tool": "no_such_tool"}, ctx)
        assert failed(result) == "Unknown tool: no_such_tool"

    run(body)


def test_json_rpc_errors_say_code_and_message_and_are_queued() -> None:
    async def body(ctx: RunContext, _registry: McpConnections) -> None:
        cid = ok(await connect({"server": STDIO}, ctx))["connection_id"]
        error = failed(await send_command({"connection_id": cid, "method": "no/such"}, ctx))
        assert error.startswith("no/such failed: JSON-RPC error -32601: Method not found")
        assert failed(await receive_response({"connection_id": cid}, ctx)) == error

        # The connection is still usable, and an unknown id is named.
        assert ok(await send_command({"connection_id": cid, "method": "ping"}, ctx)) == {}
        unknown = failed(await send_command({"connection_id": "nope", "method": "ping"}, ctx))
        assert unknown == "unknown connection id 'nope'"
        assert failed(await disconnect({"connection_id": "nope"}, ctx)) == unknown

    run(body)


def test_receive_response_waits_for_a_command_in_flight() -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        cid = ok(await connect({"server": STDIO}, ctx))["connection_id"]
        call = {"name": "slow", "arguments": {"seconds": 0.5}}
        sending = asyncio.create_task(
            send_command({"connection_id": cid, "method": "tools/call", "params": call}, ctx)
        )
        await eventually(lambda: registry.get(cid).busy)
        early = failed(await receive_response({"connection_id": cid, "timeout": 0.05}, ctx))
        assert early == f"no response arrived on connection {cid} within 0.05 s"
        started = time.monotonic()
        received = ok(await receive_response({"connection_id": cid, "timeout": 5}, ctx))
        assert received["structuredContent"] == {"result": "slept 0.5"}
        assert time.monotonic() - started < 2
        assert ok(await sending) == received

    run(body)


def test_timeouts() -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        cid = ok(await connect({"server": STDIO}, ctx))["connection_id"]
        call = {"name": "slow", "arguments": {"seconds": 10}}
        started = time.monotonic()
        params = {"connection_id": cid, "method": "tools/call", "params": call, "timeout": 0.3}
        assert (
            failed(await send_command(params, ctx), True)
            == "tools/call timed out after 0.3 seconds"
        )
        assert time.monotonic() - started < 2
        assert ok(await send_command({"connection_id": cid, "method": "ping"}, ctx)) == {}

        # A step cancelled in the middle of a command leaves the connection usable.
        sending = asyncio.create_task(send_command({**params, "timeout": 60}, ctx))
        await eventually(lambda: registry.get(cid).busy)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        assert ok(await send_command({"connection_id": cid, "method": "ping"}, ctx)) == {}
        # Only the two pings were answered: the timed-out and cancelled calls queue nothing.
        for _ in range(2):
            assert ok(await receive_response({"connection_id": cid}, ctx)) == {}
        assert "no response waiting" in failed(await receive_response({"connection_id": cid}, ctx))

        started = time.monotonic()
        error = failed(await connect({"server": SILENT, "timeout": 0.3}, ctx), True)
        assert "did not finish the initialize handshake within 0.3 seconds" in error
        assert time.monotonic() - started < 3

        error = failed(
            await call_tool({"server": SILENT, "tool": "echo", "timeout": 0.3}, ctx), True
        )
        assert "within 0.3 seconds" in error

    run(body)


def test_server_that_does_not_exist_or_exits() -> None:
    async def body(ctx: RunContext, _registry: McpConnections) -> None:
        missing = {"command": "/nonexistent/mcp-server", "args": ["stdio"]}
        error = failed(await connect({"server": missing}, ctx), True)
        assert error == 'cannot start MCP server "/nonexistent/mcp-server stdio": command not found'

        dying = {"command": sys.executable, "args": ["-c", "import sys; sys.exit('broken')"]}
        error = failed(await call_tool({"server": dying, "tool": "echo"}, ctx), True)
        assert "exited; its stderr ends with: broken" in error

        cid = ok(await connect({"server": STDIO}, ctx))["connection_id"]
        call = {"connection_id": cid, "method": "tools/call", "params": {"name": "crash"}}
        error = failed(await send_command(call, ctx), True)
        assert error.startswith(f"connection {cid} was closed: MCP server ")
        assert error.endswith("exited")
        ping = {"connection_id": cid, "method": "ping"}
        assert "exited" in failed(await send_command(ping, ctx), True)

    run(body)


def test_http_targets_that_refuse_or_do_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"

    async def body(ctx: RunContext, _registry: McpConnections) -> None:
        error = failed(await connect({"server": {"url": url}}, ctx), True)
        assert error.startswith(f"cannot connect to MCP server at {url} (connection refused?)")
        assert failed(await call_tool({"server": {"url": url}, "tool": "echo"}, ctx), True) == error

        with socket.socket() as mute:  # accepts connections (in the backlog), never answers
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            mute_url = f"http://127.0.0.1:{mute.getsockname()[1]}/mcp"
            started = time.monotonic()
            server = {"url": mute_url}
            error = failed(await connect({"server": server, "timeout": 0.3}, ctx), True)
            assert error == (
                f"MCP server {mute_url} did not finish the initialize handshake within 0.3 seconds"
            )
            assert time.monotonic() - started < 2

    run(body)


def test_idle_connections_are_closed() -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        info = ok(await connect({"server": STDIO}, ctx))
        cid = info["connection_id"]
        # Used within the idle timeout, it stays open (the sleeps are the time that passes).
        await asyncio.sleep(0.3)
        assert ok(await send_command({"connection_id": cid, "method": "ping"}, ctx)) == {}
        await asyncio.sleep(0.3)
        assert cid in registry
        await eventually(lambda: cid not in registry and gone(info["server_pid"]))
        error = failed(await send_command({"connection_id": cid, "method": "ping"}, ctx))
        assert error == f"connection {cid} was closed: idle for more than 0.5 seconds"

    run(body, idle_timeout=0.5)


def test_close_all_and_cancel_stop_every_server() -> None:
    async def body(ctx: RunContext, registry: McpConnections) -> None:
        pids = [ok(await connect({"server": STDIO}, ctx))["server_pid"] for _ in range(2)]

        # A connect cancelled while the server is starting stops that server too.
        connecting = asyncio.create_task(connect({"server": SILENT}, ctx))
        await eventually(lambda: len(stdio_servers()) == len(pids) + 1)  # SILENT has started
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert len(registry) == 2

        await registry.close_all()
        assert len(registry) == 0
        assert all(gone(pid) for pid in pids)
        assert "shutting down" in failed(await connect({"server": STDIO}, ctx))

    run(body)
    assert stdio_servers() == []


def test_parameters_are_checked_and_a_registry_is_required() -> None:
    async def body(ctx: RunContext, _registry: McpConnections) -> None:
        for server, error in (
            ("python", "server must be an object with either a command or a url"),
            ({"command": "x", "url": "http://y"}, "not both"),
            ({}, "not neither"),
            ({"command": "x", "cwd": "/"}, "unknown key 'cwd' in server"),
            ({"command": "x", "args": "a b"}, "server.args must be a list of strings"),
            ({"command": "x", "env": {"A": 1}}, "server.env must be an object of strings"),
            ({"url": "ftp://host"}, "server.url must start with http:// or https://"),
        ):
            assert error in failed(await connect({"server": server}, ctx))

    run(body)
    with pytest.raises(RuntimeError, match="no MCP connection registry"):
        asyncio.run(connect({"server": STDIO}, RunContext()))


def test_integration_shape() -> None:
    assert (MCP_INTEGRATION.id, MCP_INTEGRATION.name) == ("mcp", "Machine Control Protocol")
    by_id = {c.id: c for c in MCP_INTEGRATION.capabilities}
    assert list(by_id) == ["connect", "send_command", "receive_response", "disconnect", "call_tool"]
    assert set(by_id["call_tool"].parameters) == {"server", "tool", "arguments", "timeout"}
    assert by_id["connect"].parameters["timeout"].default == 30
    assert by_id["send_command"].parameters["timeout"].default == 60
