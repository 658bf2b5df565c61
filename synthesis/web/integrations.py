"""/api/integrations: list, get, capabilities, invoke, and invocation status."""

from __future__ import annotations

import uuid
from typing import Any

from synthesis.actors.messages import Invoke
from synthesis.actors.recording import invocation_view
from synthesis.engine.errors import ApiError, FieldError, not_found, validation_error
from synthesis.engine.schema import check_parameters, with_defaults
from synthesis.integrations import INTEGRATIONS, Integration, find_capability
from synthesis.integrations.base import Capability
from synthesis.web.base import ApiHandler

# How long a waiting invoke may take beyond the capability's own timeout.
INVOKE_MARGIN_SECONDS = 15.0


def capability_view(capability: Capability) -> dict[str, Any]:
    return {
        "id": capability.id,
        "name": capability.name,
        "description": capability.description,
        "parameters": {name: p.to_json() for name, p in capability.parameters.items()},
    }


def integration_summary(integration: Integration, disabled: frozenset[str]) -> dict[str, Any]:
    """`enabled` is false for an integration the operator turned off (`--integrations`)."""
    return {
        "id": integration.id,
        "name": integration.name,
        "description": integration.description,
        "capabilities": [c.id for c in integration.capabilities],
        "enabled": integration.id not in disabled,
    }


def known_integration(integration_id: str) -> Integration:
    integration = INTEGRATIONS.get(integration_id)
    if integration is None:
        raise not_found("integration", integration_id)
    return integration


class IntegrationsHandler(ApiHandler):
    def get(self) -> None:
        self.query(())
        disabled = self.runtime.disabled
        self.send(
            {"integrations": [integration_summary(i, disabled) for i in INTEGRATIONS.values()]}
        )


class IntegrationHandler(ApiHandler):
    def get(self, integration_id: str) -> None:
        self.query(())
        integration = known_integration(integration_id)
        self.send(
            {
                **integration_summary(integration, self.runtime.disabled),
                "parameters": {
                    c.id: capability_view(c)["parameters"] for c in integration.capabilities
                },
            }
        )


class CapabilitiesHandler(ApiHandler):
    def get(self, integration_id: str) -> None:
        self.query(())
        integration = known_integration(integration_id)
        self.send(
            {
                "integration_id": integration.id,
                "capabilities": [capability_view(c) for c in integration.capabilities],
            }
        )


class InvokeHandler(ApiHandler):
    async def post(self, integration_id: str, capability_id: str) -> None:
        integration = known_integration(integration_id)
        capability = find_capability(integration.id, capability_id)
        if capability is None:
            raise not_found("capability", f"{integration_id}/{capability_id}")
        if integration.id in self.runtime.disabled:
            raise ApiError(
                "permission_denied",
                f"the {integration.id!r} integration is turned off by the operator",
            )
        body = self.json_body(("parameters", "async"))
        run_async = body.get("async", False)
        errors = check_parameters(body.get("parameters", {}), capability.parameters, resolved=True)
        if not isinstance(run_async, bool):
            errors.append(FieldError("async", "must be a boolean"))
        if errors:
            raise validation_error(errors)
        parameters = body.get("parameters", {})
        invocation_id = str(uuid.uuid4())
        limit = float(with_defaults(parameters, capability.parameters).get("timeout") or 60)
        result = await self.runtime.bridge.ask(
            self.runtime.supervisor,
            lambda reply: Invoke(
                invocation_id,
                integration.id,
                capability,
                parameters,
                self.principal.subject,
                not run_async,
                reply,
            ),
            timeout=None if run_async else limit + INVOKE_MARGIN_SECONDS,
        )
        self.send(result, 201)


class InvocationHandler(ApiHandler):
    async def get(self, invocation_id: str) -> None:
        self.query(())
        row = await self.read(self.runtime.store.get_invocation, invocation_id)
        if row is None:
            raise not_found("invocation", invocation_id)
        self.send(invocation_view(row))


_ID = r"([^/]+)"
default_handlers = [
    (r"/api/integrations", IntegrationsHandler),
    (rf"/api/integrations/invocations/{_ID}", InvocationHandler),
    (rf"/api/integrations/{_ID}", IntegrationHandler),
    (rf"/api/integrations/{_ID}/capabilities", CapabilitiesHandler),
    (rf"/api/integrations/{_ID}/capabilities/{_ID}", InvokeHandler),
]

__all__ = ["ApiError", "default_handlers"]
