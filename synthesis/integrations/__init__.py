"""Integrations and the step types that run their capabilities: a step is an invocation of
a capability inside an execution, so both go through the same `Capability.run`."""

from collections.abc import Collection

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

# The integration each step type needs; the others (wait, control steps) need none.
STEP_INTEGRATIONS: dict[str, str] = {"command": "cli", "script": "cli", "http": "api", "mcp": "mcp"}


def disabled_integrations(enabled: Collection[str] | None) -> frozenset[str]:
    """The operator's policy (`--integrations`): what is not enabled is off. None: all on;
    `none` alone: all off. Raises ValueError naming an unknown integration."""
    if enabled is None:
        return frozenset()
    chosen = set(enabled) - {"none"}
    unknown = sorted(chosen - INTEGRATIONS.keys())
    if unknown:
        known = ", ".join(INTEGRATIONS)
        raise ValueError(f"unknown integration {unknown[0]!r} in --integrations; one of: {known}")
    return frozenset(INTEGRATIONS.keys() - chosen)


def disabled_message(step_type: str, integration_id: str) -> str:
    return (
        f"step type {step_type!r} needs the {integration_id!r} integration, "
        "which the operator turned off"
    )


def find_capability(integration_id: str, capability_id: str) -> Capability | None:
    integration = INTEGRATIONS.get(integration_id)
    if integration is None:
        return None
    return next((c for c in integration.capabilities if c.id == capability_id), None)


__all__ = [
    "INTEGRATIONS",
    "STEP_CAPABILITIES",
    "STEP_INTEGRATIONS",
    "STEP_SCHEMAS",
    "Capability",
    "Integration",
    "RunContext",
    "StepResult",
    "disabled_integrations",
    "disabled_message",
    "find_capability",
]
