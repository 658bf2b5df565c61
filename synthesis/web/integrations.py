"""/api/integrations: list, get, capabilities, invoke, and invocation status."""

from __future__ import annotations

import uuid
from typing import Any

from synthesis.actors.messages import Invoke
from synthesis.actors.recording import invocation_view
from synthesis.engine.errors import ApiError, FieldError, not_found, validation_error
from synthesis.engine.schema import check_parameters, with_defaults
from synthesis.engine.transitions import CANCELLED, COMPLETED, FAILED, RUNNING
from synthesis.integrations import INTEGRATIONS, Integration, find_capability
from synthesis.integrations.base import Capability
from synthesis.web.base import ApiHandler
from synthesis.web.declare import (
    MS_OR_NULL,
    OBJECT,
    TEXT,
    TEXT_OR_NULL,
    TIME_OR_NULL,
    TIMESTAMP,
    Body,
    Endpoint,
    path_param,
    ref,
    shape,
)
from synthesis.web.plan_schema import parameters_schema

# How long a waiting invoke may take beyond the capability's own timeout.
INVOKE_MARGIN_SECONDS = 15.0
INVOCATION_STATUSES = (RUNNING, COMPLETED, FAILED, CANCELLED)

INTEGRATION_ID = path_param("integration_id", "An integration id", enum=list(INTEGRATIONS))
CAPABILITY_ID = path_param(
    "capability_id",
    "One of the integration's capabilities",
    enum=list(dict.fromkeys(c.id for i in INTEGRATIONS.values() for c in i.capabilities)),
)
# Each capability's parameters, as an invocation checks them (no `${name}`).
CAPABILITY_PARAMETERS = {
    f"{integration.id}.{capability.id}.parameters": {
        **parameters_schema(capability.parameters, references=False),
        "title": f"{integration.name}: {capability.name}",
    }
    for integration in INTEGRATIONS.values()
    for capability in integration.capabilities
}
INVOKE = Body(
    "Invoke",
    {
        "type": "object",
        "properties": {
            "parameters": {
                "description": "The capability's parameters: the schema "
                "`<integration>.<capability>.parameters` of that capability",
                "anyOf": [ref(name) for name in CAPABILITY_PARAMETERS],
            },
            "async": {
                "type": "boolean",
                "default": False,
                "description": "Answer at once (status running) instead of at the end",
            },
        },
        "additionalProperties": False,
    },
    required=False,
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "IntegrationSummary": shape(
        {
            "id": TEXT,
            "name": TEXT,
            "description": TEXT,
            "capabilities": {"type": "array", "items": TEXT},
            "enabled": {
                "type": "boolean",
                "description": "False when the operator turned it off (--integrations): "
                "its step types are refused and invoking it is permission_denied (403)",
            },
        }
    ),
    "IntegrationList": shape(
        {"integrations": {"type": "array", "items": ref("IntegrationSummary")}}
    ),
    "Integration": {
        "allOf": [
            ref("IntegrationSummary"),
            shape(
                {
                    "parameters": {
                        "type": "object",
                        "description": "Each capability's parameters",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": ref("ParameterSpec"),
                        },
                    }
                }
            ),
        ]
    },
    "Capability": shape(
        {
            "id": TEXT,
            "name": TEXT,
            "description": TEXT,
            "parameters": {"type": "object", "additionalProperties": ref("ParameterSpec")},
        }
    ),
    "CapabilityList": shape(
        {"integration_id": TEXT, "capabilities": {"type": "array", "items": ref("Capability")}}
    ),
    INVOKE.name: INVOKE.schema,
    **CAPABILITY_PARAMETERS,
    "Invocation": shape(
        {
            "invocation_id": TEXT,
            "integration_id": TEXT,
            "capability_id": TEXT,
            "status": {"enum": list(INVOCATION_STATUSES)},
            "started_at": TIMESTAMP,
            "completed_at": TIME_OR_NULL,
            "duration_ms": MS_OR_NULL,
            "parameters": OBJECT,
            "output": {},
            "error": TEXT_OR_NULL,
        }
    ),
}


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
    endpoints = (
        Endpoint(
            "get",
            "/api/integrations",
            "listIntegrations",
            "Integrations",
            "The integrations and their capability ids",
            ok=(200, "The integrations", "IntegrationList"),
            errors=(),
            params=(),
        ),
    )

    def get(self) -> None:
        self.query()
        disabled = self.runtime.disabled
        self.send(
            {"integrations": [integration_summary(i, disabled) for i in INTEGRATIONS.values()]}
        )


class IntegrationHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/integrations/{integration_id}",
            "getIntegration",
            "Integrations",
            "An integration with the parameters of each capability",
            ok=(200, "The integration", "Integration"),
            errors=(404,),
            params=(INTEGRATION_ID,),
        ),
    )

    def get(self, integration_id: str) -> None:
        self.query()
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
    endpoints = (
        Endpoint(
            "get",
            "/api/integrations/{integration_id}/capabilities",
            "listCapabilities",
            "Integrations",
            "An integration's capabilities",
            ok=(200, "The capabilities", "CapabilityList"),
            errors=(404,),
            params=(INTEGRATION_ID,),
        ),
    )

    def get(self, integration_id: str) -> None:
        self.query()
        integration = known_integration(integration_id)
        self.send(
            {
                "integration_id": integration.id,
                "capabilities": [capability_view(c) for c in integration.capabilities],
            }
        )


class InvokeHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "post",
            "/api/integrations/{integration_id}/capabilities/{capability_id}",
            "invokeCapability",
            "Integrations",
            (
                "Invoke a capability; answers at its end unless `async`; 403 "
                "`permission_denied` when the operator turned its integration off"
            ),
            ok=(201, "Invoked", "Invocation"),
            errors=(404, 502, 503),
            params=(INTEGRATION_ID, CAPABILITY_ID),
            body=INVOKE,
        ),
    )

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
        body = self.json_body()
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
    endpoints = (
        Endpoint(
            "get",
            "/api/integrations/invocations/{invocation_id}",
            "getInvocation",
            "Integrations",
            "A capability invocation",
            ok=(200, "The invocation", "Invocation"),
            errors=(404,),
            params=(path_param("invocation_id", "An invocation id"),),
        ),
    )

    async def get(self, invocation_id: str) -> None:
        self.query()
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
