"""Integrations and the step types that run their capabilities: a step is an invocation of
a capability inside an execution, so both go through the same `Capability.run`."""

from synthesis.engine.schema import Schema
from synthesis.integrations import cli, control, http, mcp
from synthesis.integrations.base import Capability, Integration, RunContext, StepResult

INTEGRATIONS: dict[str, Integration] = {
    i.id: i for i in (cli.INTEGRATION, http.INTEGRATION, mcp.MCP_INTEGRATION)
}

STEP_CAPABILITIES: dict[str, Capability] = {
    "command": cli.EXECUTE_COMMAND,
    "script": cli.EXECUTE_SCRIPT,
    "http": http.HTTP_STEP,
    "mcp": mcp.CALL_TOOL,
    "wait": control.WAIT,
}

STEP_SCHEMAS: dict[str, Schema] = {name: cap.parameters for name, cap in STEP_CAPABILITIES.items()}


def find_capability(integration_id: str, capability_id: str) -> Capability | None:
    integration = INTEGRATIONS.get(integration_id)
    if integration is None:
        return None
    return next((c for c in integration.capabilities if c.id == capability_id), None)


__all__ = [
    "INTEGRATIONS",
    "STEP_CAPABILITIES",
    "STEP_SCHEMAS",
    "Capability",
    "Integration",
    "RunContext",
    "StepResult",
    "find_capability",
]
