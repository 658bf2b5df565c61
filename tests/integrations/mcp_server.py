"""A small real MCP server for the tests, built with the SDK's MCPServer (v1's FastMCP).

python tests/integrations/mcp_server.py stdio
python tests/integrations/mcp_server.py http --port N    (Streamable HTTP on 127.0.0.1:N/mcp)
"""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("synthesis-test", version="1.0.0")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text as it was given."""
    return text


@server.tool()
def fail() -> str:
    """Always fail."""
    raise ToolError("this tool always fails")


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds:g}"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exit the server process at once, without answering."""
    os._exit(3)


@server.resource("test://greeting")
def greeting() -> str:
    """A fixed text resource."""
    return "hello from the test server"


@server.prompt()
def summarize(text: str) -> str:
    """Ask for a summary."""
    return f"Summarize: {text}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=("stdio", "http"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
