"""Integrations and the step types that run their capabilities."""

from synthesis.engine.schema import Schema
from synthesis.integrations import cli, control
from synthesis.integrations.base import Capability, Integration, RunContext, StepResult

INTEGRATIONS: tuple[Integration, ...] = (cli.INTEGRATION,)

# Each step type runs one capability: a step is an invocation inside an execution.
STEP_CAPABILITIES: dict[str, Capability] = {
    "command": cli.EXECUTE_COMMAND,
    "script": cli.EXECUTE_SCRIPT,
    "wait": control.WAIT,
}

STEP_SCHEMAS: dict[str, Schema] = {name: cap.parameters for name, cap in STEP_CAPABILITIES.items()}

__all__ = [
    "INTEGRATIONS",
    "STEP_CAPABILITIES",
    "STEP_SCHEMAS",
    "Capability",
    "Integration",
    "RunContext",
    "StepResult",
]
