"""--run-as: every kind of step process runs as the step user, run directly on a loop."""

from __future__ import annotations

import asyncio
import pwd
from pathlib import Path

from synthesis.integrations.base import RunContext
from synthesis.integrations.mcp import McpConnections, call_tool
from synthesis.integrations.run_as import StepUser

# A tiny MCP server in sh (the test interpreter may live where the step user cannot read):
# it answers the handshake, lists one tool, and its tool says who it runs as.
SH_SERVER = r"""#!/bin/sh
reply() { printf '{"jsonrpc":"2.0","id":%s,"result":%s}\n' "$id" "$1"; }
field() { printf %s "$line" | sed -n "s/.*\"$1\":\"*\([^\",}]*\).*/\1/p"; }
while read -r line; do
  id=$(field id)
  case "$(field method)" in
    initialize)
      info='"capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}'
      reply "{\"protocolVersion\":\"$(field protocolVersion)\",$info}" ;;
    tools/list)
      reply '{"tools":[{"name":"whoami","inputSchema":{"type":"object"}}]}' ;;
    tools/call)
      reply "{\"content\":[{\"type\":\"text\",\"text\":\"$(id -u) $HOME\"}],\"isError\":false}" ;;
  esac
done
"""


def test_an_mcp_stdio_server_runs_as_the_step_user(step_user: str, open_dir: Path) -> None:
    script = open_dir / "server.sh"
    script.write_text(SH_SERVER)
    script.chmod(0o755)
    entry = pwd.getpwnam(step_user)

    async def scenario():
        ctx = RunContext(connections=McpConnections(), run_as=StepUser.lookup(step_user))
        params = {"server": {"command": str(script)}, "tool": "whoami", "timeout": 20}
        return await call_tool(params, ctx)

    result = asyncio.run(scenario())
    assert result.status == "completed", result
    assert result.output["text"] == f"{entry.pw_uid} {entry.pw_dir}"
