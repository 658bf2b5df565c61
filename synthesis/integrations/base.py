"""What an integration is: capabilities with parameter schemas and a coroutine each.

A plan step and a direct invocation both end up calling `Capability.run`, with
parameters checked against `Capability.parameters` by engine/schema.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthesis.engine.nesting import too_deep, too_deep_message
from synthesis.engine.schema import Schema
from synthesis.integrations.processes import ProcessGroup
from synthesis.integrations.room import ProcessRoom
from synthesis.integrations.run_as import StepUser


@dataclass(frozen=True)
class StepResult:
    status: str  # completed, failed or cancelled
    output: Any = None
    error: str | None = None
    exit_code: int | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)  # <step_id>_<name>: value
    far_side_failed: bool = False  # the target refused, timed out or broke (an HTTP 5xx, ...)

    def within_depth(self) -> StepResult:
        """This result, or a failure saying where its output (an HTTP response, an MCP
        result) nests deeper than MAX_DEPTH: such a value is never stored."""
        deep = too_deep(self.output, "output") or next(
            (d for name, v in self.variables.items() if (d := too_deep(v, name))), None
        )
        if deep is None:
            return self
        return StepResult(
            "failed",
            None,
            f"{deep}: {too_deep_message()}",
            self.exit_code,
            far_side_failed=self.far_side_failed,
        )


def _ignore_output(_stream: str, _text: str) -> None:
    pass


def _ignore_process(_group: ProcessGroup | None) -> None:
    pass


def _ignore_wait(_why: str | None) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """What a capability may know about where it runs. Its callbacks run on the aio loop."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    on_output: Callable[[str, str], None] = _ignore_output  # (stream, text)
    output_limit: int = 1024 * 1024
    kill_grace: float = 5.0
    connections: Any = None  # the runtime's MCP connections (integrations/mcp.py)
    # the step's process group as it starts, then None once it is stopped (processes.py)
    on_process: Callable[[ProcessGroup | None], None] = _ignore_process
    run_as: StepUser | None = None  # --run-as: the user step processes run as
    room: ProcessRoom | None = None  # room for step processes (room.py); None: no budget
    # why the step waits for room before its process starts, then None once it started
    on_wait: Callable[[str | None], None] = _ignore_wait
    deny_private_targets: bool = False  # --deny-private-targets (integrations/http.py)


Runner = Callable[[Mapping[str, Any], RunContext], Awaitable[StepResult]]


@dataclass(frozen=True)
class Capability:
    id: str
    name: str
    description: str
    parameters: Schema
    run: Runner


@dataclass(frozen=True)
class Integration:
    id: str
    name: str
    description: str
    capabilities: tuple[Capability, ...]
