"""GET /api/openapi.json: the OpenAPI 3.1 document of every REST endpoint.

The document is built from the definitions the server validates with, so the two cannot
drift apart: the step schema is a `oneOf` over the step types of STEP_SCHEMAS and
CONTROL_SCHEMAS (each Param turned into JSON Schema), plan, step and retry fields come
from PLAN_FIELDS, STEP_FIELDS and RETRY_FIELDS (a field without a schema here fails the
build), statuses and event types from the engine's constants, error codes from
HTTP_STATUS, and integrations and their capabilities from INTEGRATIONS.

What handlers hard-code inline (the query parameter names each list endpoint accepts, the
fields of a few request bodies) is mirrored here; tests/api/test_openapi.py asks the
running server for each of them, so a change on either side fails a test.

The two WebSockets are not REST operations: they are described under `x-websockets`.
"""

from __future__ import annotations

import functools
import http
import sys
from typing import Any

import orjson

from synthesis import __version__
from synthesis.actors.recording import control_answer
from synthesis.engine.errors import HTTP_STATUS
from synthesis.engine.events import EVENT_TYPES
from synthesis.engine.expressions import MAX_LENGTH as EXPRESSION_MAX_LENGTH
from synthesis.engine.plan import (
    CONTROL_SCHEMAS,
    MAX_CHILD_DEPTH,
    MAX_DEPTH,
    MAX_ITERATIONS,
    PLAN_FIELDS,
    RETRY_FIELDS,
    STEP_FIELDS,
    STEP_ID,
    VARIABLE_OPERATIONS,
)
from synthesis.engine.schema import (
    _JSON_TYPES,
    MAX_BACKOFF_MULTIPLIER,
    MAX_SECONDS,
    Param,
    Schema,
)
from synthesis.engine.substitution import _WHOLE
from synthesis.engine.transitions import (
    ACTIONS,
    CANCELLED,
    COMPLETED,
    CREATED,
    EXECUTION_STATUSES,
    FAILED,
    RUNNING,
    STEP_STATUSES,
)
from synthesis.integrations import INTEGRATIONS, STEP_SCHEMAS
from synthesis.store.cluster import ALIVE, DEAD
from synthesis.store.subscription_models import DELIVERY_STATUSES, SUBSCRIPTION_STATUSES
from synthesis.web import idempotency, metrics, sockets, subscriptions
from synthesis.web.base import MAX_OFFSET, ApiHandler

OPENAPI_PATH = "/api/openapi.json"
OPENAPI_VERSION = "3.1.0"
JSON = "application/json"

# ---- small JSON Schema helpers --------------------------------------------------------


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _char_class(chars: list[str]) -> str:
    """The inside of a character class matching `chars`, runs written as ranges."""
    runs: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in runs
    )


@functools.cache
def not_blank() -> str:
    """A pattern for "not blank" as Python's str.strip() sees it (the validators'
    `not value.strip()`): a character that is not whitespace to Python, spelled out, since
    ECMA-262's \\s is a different set."""
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    return f"[^{_char_class(spaces)}]"


TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "description": "UTC ISO 8601 with millisecond precision, ending in Z",
}
DATE_QUERY = {
    "type": "string",
    "description": "An ISO 8601 date (midnight UTC) or date-time (UTC when it has no offset)",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
}
# A parameter that is exactly `${name}` stands for a variable of any type; it is checked
# when the step runs (engine/schema.py `check_parameters`, resolved=False).
REFERENCE = {
    "type": "string",
    "pattern": f"^{_WHOLE.pattern}$",
    "description": "`${name}`: the variable's value, whatever its type, checked at run time",
}
STEP_TYPES = tuple(dict.fromkeys([*STEP_SCHEMAS, *CONTROL_SCHEMAS]))
INVOCATION_STATUSES = (RUNNING, COMPLETED, FAILED, CANCELLED)

# ---- Param -> JSON Schema ---------------------------------------------------------------


def _typed(type_name: str, *, nullable: bool) -> dict[str, Any]:
    if type_name not in _JSON_TYPES:
        raise ValueError(f"no JSON Schema for the parameter type {type_name!r}")
    if type_name == "any":
        return {}
    return {"type": [type_name, "null"] if nullable else type_name}


def param_schema(
    param: Param, *, references: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One capability parameter as JSON Schema, as `check_parameters` checks it: an optional
    parameter may be null (null means absent), a required string must not be blank, and
    before substitution (`references`) a whole `${name}` may stand for any typed value."""
    schema = _typed(param.type, nullable=not param.required)
    if param.type == "string" and param.required:
        schema["pattern"] = not_blank()
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.values is not None:
        values = _typed(param.values, nullable=False)
        if references and param.values not in ("any", "string"):
            values = {"anyOf": [values, REFERENCE]}
        schema["additionalProperties"] = values
    schema.update(extra or {})
    if references and param.type not in ("any", "string"):
        schema = {"anyOf": [schema, REFERENCE]}
    schema["description"] = param.description
    if param.default is not None:
        schema["default"] = param.default
    return schema


def parameters_schema(
    schema: Schema,
    *,
    references: bool,
    special: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A capability's whole `parameters` object: unknown names are refused."""
    special = special or {}
    properties = {
        name: special[name] if name in special else param_schema(p, references=references)
        for name, p in schema.items()
    }
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [name for name, p in schema.items() if p.required]
    if required:
        result["required"] = required
    return result


def _control_parameters() -> dict[str, dict[str, dict[str, Any]]]:
    """What `_Checker.control` adds to the control steps' Params: step lists (never a
    `${name}`), expression bounds, loop bounds and variable operations."""
    steps = {"items": ref("Step")}
    expression = {"maxLength": EXPRESSION_MAX_LENGTH}
    c = CONTROL_SCHEMAS
    return {
        "condition": {
            "if": param_schema(c["condition"]["if"], references=True, extra=expression),
            "then": param_schema(c["condition"]["then"], references=False, extra=steps),
            "else": param_schema(c["condition"]["else"], references=False, extra=steps),
        },
        "loop": {
            "for": {
                "description": c["loop"]["for"].description,
                "anyOf": [
                    {"type": "array"},
                    {"type": "string", "pattern": STEP_ID.pattern},
                    REFERENCE,
                    {"type": "null"},
                ],
            },
            "while": param_schema(c["loop"]["while"], references=True, extra=expression),
            "steps": param_schema(
                c["loop"]["steps"], references=False, extra={**steps, "minItems": 1}
            ),
            "max_iterations": param_schema(
                c["loop"]["max_iterations"],
                references=True,
                extra={"maximum": MAX_ITERATIONS},  # the default of max_loop_iterations
            ),
        },
        "variable": {
            "operation": param_schema(
                c["variable"]["operation"],
                references=False,
                extra={"enum": list(VARIABLE_OPERATIONS)},
            ),
        },
    }


def _component_name(step_type: str) -> str:
    return "".join(part.capitalize() for part in step_type.split("_")) + "Step"


def step_schemas() -> dict[str, dict[str, Any]]:
    """`Step` (a oneOf over the step types) and one schema per step type."""
    special = _control_parameters()
    all_types = {**STEP_SCHEMAS, **CONTROL_SCHEMAS}
    schemas: dict[str, dict[str, Any]] = {}
    mapping = {}
    for step_type, schema in all_types.items():
        parameters = parameters_schema(schema, references=True, special=special.get(step_type, {}))
        fields = {
            "id": {
                "type": "string",
                "pattern": STEP_ID.pattern,
                "description": "Unique in the plan at every depth",
            },
            "type": {"const": step_type},
            "parameters": parameters,
            "depends_on": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "Ids of steps in the same list. Absent: the step listed "
                "before it; []: none",
            },
            "timeout": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": MAX_SECONDS,
                "description": "Seconds",
            },
            "retry": or_null(ref("Retry")),
            "condition": {
                **ref("Expression"),
                "description": "Run the step only when true; false means skipped",
            },
            "continue_on_failure": {"type": "boolean", "default": False},
        }
        _same_fields(fields, STEP_FIELDS, "STEP_FIELDS")
        required = ["id", "type"] + (["parameters"] if "required" in parameters else [])
        name = _component_name(step_type)
        schemas[name] = {
            "type": "object",
            "properties": fields,
            "required": required,
            "additionalProperties": False,
        }
        mapping[step_type] = f"#/components/schemas/{name}"
    schemas["Step"] = {
        "description": "One step of a plan; its `type` chooses its parameters. Steps nest "
        f"(condition, loop) at most {MAX_DEPTH} levels deep.",
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return schemas


def _same_fields(
    described: dict[str, Any], accepted: set[str] | tuple[str, ...], what: str
) -> None:
    if set(described) != set(accepted):
        raise RuntimeError(
            f"openapi.py describes {sorted(described)} but the server accepts "
            f"{sorted(accepted)} ({what}): update the document"
        )


# ---- components ---------------------------------------------------------------------------


def _integration_schemas() -> dict[str, dict[str, Any]]:
    """Each capability's parameters, as an invocation checks them (no `${name}`)."""
    return {
        f"{integration.id}.{capability.id}.parameters": {
            **parameters_schema(capability.parameters, references=False),
            "title": f"{integration.name}: {capability.name}",
        }
        for integration in INTEGRATIONS.values()
        for capability in integration.capabilities
    }


def _retry_schema() -> dict[str, Any]:
    fields = {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
        "backoff_seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_SECONDS,
            "default": 1.0,
            "description": "Seconds before the second attempt; no delay is over a year",
        },
        "backoff_multiplier": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_BACKOFF_MULTIPLIER,
            "default": 2.0,
        },
        "jitter": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.0,
            "description": "Each delay moves by up to +/- this fraction",
        },
    }
    _same_fields(fields, RETRY_FIELDS, "RETRY_FIELDS")
    return {"type": "object", "properties": fields, "additionalProperties": False}


SECRET_VARIABLES = {
    "type": ["array", "null"],
    "items": {"type": "string", "minLength": 1},
    "description": "Variables shown as `***` wherever they would show (variables, step "
    "parameters and outputs, events, webhooks); steps still get their real values. "
    "Variables named like a secret (password, token, api_key...) are secret anyway",
}


def _plan_schema() -> dict[str, Any]:
    fields = {
        "name": {"type": "string", "pattern": not_blank()},
        "description": {"type": ["string", "null"]},
        "steps": {"type": "array", "minItems": 1, "items": ref("Step")},
        "variables": {"type": "object", "description": "Default values of variables"},
        "secret_variables": SECRET_VARIABLES,
        "metadata": or_null(ref("Metadata")),
    }
    _same_fields(fields, PLAN_FIELDS, "PLAN_FIELDS")
    return {
        "type": "object",
        "description": "Step ids are unique, dependencies name steps of the same list and "
        "form no cycle, and `plan` steps name stored plans (nesting at most "
        f"{MAX_CHILD_DEPTH} deep): all checked when the plan is accepted.",
        "properties": fields,
        "required": ["name", "steps"],
        "additionalProperties": False,
    }


def _subscription_create_schema() -> dict[str, Any]:
    fields = {
        "callback_url": {
            "type": "string",
            "maxLength": subscriptions.MAX_URL_CHARS,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@:]",
            "description": "An http:// or https:// URL with a host; each matching event "
            "is POSTed to it",
        },
        "types": {
            "type": ["array", "null"],
            "items": {"enum": list(EVENT_TYPES)},
            "description": "Event types to deliver; none or empty: all",
        },
        "filter": {
            "type": ["object", "null"],
            "description": "Keys the events must match (execution_id: one execution's)",
            "properties": {"execution_id": {"type": "string", "minLength": 1}},
            "propertyNames": {"minLength": 1},
        },
        "expiration": {**TIMESTAMP, "type": ["string", "null"], "description": "In the future"},
        "secret": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": subscriptions.MAX_SECRET_CHARS,
            "description": "Signs each delivery: X-Synthesis-Signature: sha256=<hex HMAC>",
        },
    }
    _same_fields(fields, subscriptions.FIELDS, "subscriptions.FIELDS")
    return {
        "type": "object",
        "properties": fields,
        "required": ["callback_url"],
        "additionalProperties": False,
    }


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A response object: every key present unless named optional; more keys may come."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def _page(key: str, item: str) -> dict[str, Any]:
    return _object(
        {
            "total": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "limit": {"type": "integer", "minimum": 1},
            key: {"type": "array", "items": ref(item)},
        }
    )


def transition_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """Per action, the name and schema of its answer (actors/recording.control_answer)."""
    result = {}
    for action, (_, target) in ACTIONS.items():
        answer = control_answer("", action, target, "")
        (moment,) = (name for name in answer if name not in ("execution_id", "status"))
        properties = {name: TIMESTAMP for name in answer}
        properties.update(execution_id={"type": "string"}, status={"const": target})
        result[action] = (
            f"Execution{moment.removesuffix('_at').capitalize()}",
            _object(properties),
        )
    return result


def components_schemas() -> dict[str, dict[str, Any]]:
    text = {"type": "string"}
    text_or_null = {"type": ["string", "null"]}
    time_or_null = {**TIMESTAMP, "type": ["string", "null"]}
    ms_or_null = {"type": ["integer", "null"], "description": "Milliseconds"}
    param_spec = _object(
        {
            "type": {"enum": list(_JSON_TYPES)},
            "description": text,
            "required": {"type": "boolean"},
            "default": {},
        },
        optional=("default",),
    )
    schemas: dict[str, dict[str, Any]] = {
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"enum": list(HTTP_STATUS)},
                        "message": text,
                        "details": {"type": "array", "items": ref("FieldError")},
                    },
                    optional=("details",),
                )
            }
        ),
        "FieldError": _object({"field": text, "message": text}),
        "Expression": {
            "description": "A safe expression over the variables (comparisons, boolean "
            "logic, arithmetic, membership), or a boolean",
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "maxLength": EXPRESSION_MAX_LENGTH, "pattern": not_blank()},
            ],
        },
        "Metadata": {
            "type": "object",
            "description": "Any other keys are kept as given",
            "properties": {
                "tags": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
                "created_by": text_or_null,
            },
        },
        "Retry": _retry_schema(),
        "Plan": _plan_schema(),
        **step_schemas(),
        # ---- executions
        "ExecutionCreate": {
            "type": "object",
            "properties": {
                "plan": ref("Plan"),
                "variables": {"type": ["object", "null"]},
                "secret_variables": SECRET_VARIABLES,
                "metadata": or_null(ref("Metadata")),
                "start": {
                    "type": "boolean",
                    "default": False,
                    "description": "Create and start in one call",
                },
            },
            "required": ["plan"],
            "additionalProperties": False,
        },
        "ExecutionCreated": _object(
            {
                "execution_id": text,
                "status": {"enum": [CREATED, RUNNING]},
                "created_at": TIMESTAMP,
                "started_at": TIMESTAMP,
                "plan": ref("Plan"),
            },
            optional=("started_at",),
        ),
        "ExecutionSummary": _object(
            {
                "execution_id": text,
                "name": text,
                "status": {"enum": list(EXECUTION_STATUSES)},
                "created_at": TIMESTAMP,
                "started_at": time_or_null,
                "completed_at": time_or_null,
                "created_by": text_or_null,
                "tags": {"type": "array", "items": text},
                "node_id": {
                    **text_or_null,
                    "description": "The node running it now (GET /api/nodes); null when none",
                },
            }
        ),
        "ExecutionList": _page("executions", "ExecutionSummary"),
        "StepState": _object(
            {
                "id": {
                    "type": "string",
                    "description": "The step id; steps run by a branch or loop iteration "
                    "are named after it (`check.then.fix`, `each[2].build`)",
                },
                "type": {"enum": list(STEP_TYPES)},
                "status": {"enum": list(STEP_STATUSES)},
                "started_at": time_or_null,
                "completed_at": time_or_null,
                "duration_ms": ms_or_null,
                "output": {"description": "A command's stdout, an HTTP response, ..."},
                "error": text_or_null,
                "exit_code": {"type": ["integer", "null"]},
                "attempts": {
                    "type": "array",
                    "description": "A step with `retry`: each attempt so far",
                    "items": _object(
                        {
                            "attempt": {"type": "integer", "minimum": 1},
                            "status": {"enum": list(STEP_STATUSES)},
                            "error": text_or_null,
                            "exit_code": {"type": ["integer", "null"]},
                            "started_at": time_or_null,
                            "completed_at": TIMESTAMP,
                        }
                    ),
                },
            },
            optional=("attempts",),
        ),
        "StepDetail": {
            "allOf": [
                ref("StepState"),
                _object({"parameters": {"type": "object"}}),
            ]
        },
        "Execution": _object(
            {
                "execution_id": text,
                "status": {"enum": list(EXECUTION_STATUSES)},
                "plan_id": text_or_null,
                "created_at": TIMESTAMP,
                "started_at": time_or_null,
                "paused_at": time_or_null,
                "completed_at": time_or_null,
                "duration_ms": ms_or_null,
                "error": text_or_null,
                "plan": ref("Plan"),
                "steps": {"type": "array", "items": ref("StepState")},
                "variables": {"type": "object"},
                "metadata": ref("Metadata"),
                "node_id": {
                    **text_or_null,
                    "description": "The node running it now (GET /api/nodes); null when none",
                },
            }
        ),
        "ExecutionSteps": _object(
            {"execution_id": text, "steps": {"type": "array", "items": ref("StepState")}}
        ),
        "ExecutionVariables": _object({"execution_id": text, "variables": {"type": "object"}}),
        **dict(transition_schemas().values()),
        # ---- plans
        "PlanSummary": _object(
            {
                "plan_id": text,
                "name": text,
                "description": text_or_null,
                "created_at": TIMESTAMP,
                "updated_at": time_or_null,
                "created_by": text_or_null,
                "tags": {"type": "array", "items": text},
            }
        ),
        "PlanList": _page("plans", "PlanSummary"),
        "StoredPlan": _object(
            {
                "plan_id": text,
                "name": text,
                "description": text_or_null,
                "created_at": TIMESTAMP,
                "updated_at": time_or_null,
                "steps": {"type": "array", "items": ref("Step")},
                "variables": {"type": "object"},
                "secret_variables": {"type": "array", "items": text},
                "metadata": ref("Metadata"),
            },
            optional=("secret_variables",),
        ),
        "PlanExecute": {
            "type": "object",
            "properties": {
                "variables": {"type": ["object", "null"]},
                "secret_variables": SECRET_VARIABLES,
                "metadata": or_null(ref("Metadata")),
            },
            "additionalProperties": False,
        },
        "PlanExecution": _object(
            {
                "execution_id": text,
                "status": {"const": RUNNING},
                "created_at": TIMESTAMP,
                "started_at": TIMESTAMP,
                "plan_id": text,
            }
        ),
        "Deleted": _object({"success": {"const": True}, "message": text}),
        # ---- integrations
        "ParameterSpec": param_spec,
        "IntegrationSummary": _object(
            {
                "id": text,
                "name": text,
                "description": text,
                "capabilities": {"type": "array", "items": text},
                "enabled": {
                    "type": "boolean",
                    "description": "False when the operator turned it off (--integrations): "
                    "its step types are refused and invoking it is permission_denied (403)",
                },
            }
        ),
        "IntegrationList": _object(
            {"integrations": {"type": "array", "items": ref("IntegrationSummary")}}
        ),
        "Integration": {
            "allOf": [
                ref("IntegrationSummary"),
                _object(
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
        "Capability": _object(
            {
                "id": text,
                "name": text,
                "description": text,
                "parameters": {"type": "object", "additionalProperties": ref("ParameterSpec")},
            }
        ),
        "CapabilityList": _object(
            {"integration_id": text, "capabilities": {"type": "array", "items": ref("Capability")}}
        ),
        "Invoke": {
            "type": "object",
            "properties": {
                "parameters": {
                    "description": "The capability's parameters: the schema "
                    "`<integration>.<capability>.parameters` of that capability",
                    "anyOf": [ref(name) for name in _integration_schemas()],
                },
                "async": {
                    "type": "boolean",
                    "default": False,
                    "description": "Answer at once (status running) instead of at the end",
                },
            },
            "additionalProperties": False,
        },
        **_integration_schemas(),
        "Invocation": _object(
            {
                "invocation_id": text,
                "integration_id": text,
                "capability_id": text,
                "status": {"enum": list(INVOCATION_STATUSES)},
                "started_at": TIMESTAMP,
                "completed_at": time_or_null,
                "duration_ms": ms_or_null,
                "parameters": {"type": "object"},
                "output": {},
                "error": text_or_null,
            }
        ),
        # ---- events and subscriptions
        "Event": _object(
            {
                "event_id": text,
                "type": {"enum": list(EVENT_TYPES)},
                "timestamp": TIMESTAMP,
                "execution_id": text_or_null,
                "payload": {"type": "object"},
            }
        ),
        "EventList": _page("events", "Event"),
        "ExecutionMessage": _object(
            {
                "type": {"enum": list(EVENT_TYPES)},
                "timestamp": TIMESTAMP,
                "data": {"type": "object"},
            }
        ),
        "SubscriptionCreate": _subscription_create_schema(),
        "Subscription": _object(
            {
                "subscription_id": text,
                "types": {"type": "array", "items": {"enum": list(EVENT_TYPES)}},
                "filter": {"type": "object"},
                "callback_url": text,
                "created_at": TIMESTAMP,
                "expiration": time_or_null,
                "has_secret": {"type": "boolean"},
                "status": {
                    "enum": list(SUBSCRIPTION_STATUSES),
                    "description": "`paused`: nothing is delivered until it is resumed",
                },
                "paused_at": time_or_null,
                "paused_reason": {
                    **text_or_null,
                    "description": "By request, or after too many events in a row were "
                    "not delivered (`--webhook-pause-after`), with the last error",
                },
            }
        ),
        "SubscriptionList": _object(
            {"subscriptions": {"type": "array", "items": ref("Subscription")}}
        ),
        "Delivery": _object(
            {
                "delivery_id": text,
                "subscription_id": text,
                "event_id": text,
                "event_type": {"enum": list(EVENT_TYPES)},
                "status": {
                    "enum": list(DELIVERY_STATUSES),
                    "description": "`pending` (a redelivery not tried yet), `retrying`, "
                    "`delivered`, `failed` (given up at once: refused by --deny-private-targets, "
                    "or the event was pruned) or `dead` "
                    "(its retry window ended; `error` holds the last error)",
                },
                "attempts": {"type": "integer", "minimum": 0},
                "status_code": {"type": ["integer", "null"]},
                "error": text_or_null,
                "created_at": {
                    **TIMESTAMP,
                    "description": "The first attempt (a redelivery: when it was asked for); "
                    "its retry window starts here",
                },
                "completed_at": time_or_null,
                "next_attempt_at": time_or_null,
                "redelivery_of": {
                    **text_or_null,
                    "description": "The delivery this one delivers again",
                },
            }
        ),
        "DeliveryList": {
            "allOf": [_page("deliveries", "Delivery"), _object({"subscription_id": text})]
        },
        # ---- system
        "Node": _object(
            {
                "node_id": {"type": "string", "description": "New at every start of a server"},
                "host": text,
                "port": {"type": "integer"},
                "pid": {"type": "integer"},
                "started_at": TIMESTAMP,
                "heartbeat_at": {**TIMESTAMP, "description": "Its last heartbeat"},
                "status": {"enum": [ALIVE, DEAD]},
                "executions": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The running executions it owns",
                },
            }
        ),
        "NodeList": _object({"nodes": {"type": "array", "items": ref("Node")}}),
        "Health": _object(
            {
                "status": {"enum": ["healthy", "unhealthy"]},
                "version": text,
                "uptime": {"type": "integer", "minimum": 0, "description": "Seconds"},
                "components": {
                    **_object(
                        {
                            name: {"enum": ["healthy", "unhealthy"]}
                            for name in (
                                "api",
                                "storage",
                                "execution_engine",
                                "event_system",
                                "cluster",
                            )
                        }
                    ),
                    "additionalProperties": {"enum": ["healthy", "unhealthy"]},
                },
            }
        ),
        "Metrics": _object(
            {
                "executions": _object(
                    {
                        name: {"type": "integer", "minimum": 0}
                        for name in ("total", "active", "completed", "failed", "cancelled")
                    }
                ),
                "steps": _object(
                    {
                        name: {"type": "integer", "minimum": 0}
                        for name in ("total", "succeeded", "failed")
                    }
                ),
                "performance": _object(
                    {
                        name: {"type": "integer", "minimum": 0}
                        for name in (
                            "average_execution_time_ms",
                            "average_step_time_ms",
                            "p95_execution_time_ms",
                            "p95_step_time_ms",
                        )
                    }
                ),
                "resource_usage": _object(
                    {
                        "memory_mb": {"type": "number", "minimum": 0},
                        "cpu_percent": {"type": "number", "minimum": 0},
                    }
                ),
                "cluster": _object(
                    {
                        "nodes_alive": {"type": "integer", "minimum": 0},
                        "nodes_dead": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Listed for an hour after their death",
                        },
                        "node_executions": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Running executions the node that answered owns",
                        },
                    }
                ),
            }
        ),
    }
    return schemas


def _error_name(status: int) -> str:
    return http.HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")


def error_responses() -> dict[str, dict[str, Any]]:
    """One response per HTTP status of HTTP_STATUS, naming the codes it carries."""
    by_status: dict[int, list[str]] = {}
    for code, status in HTTP_STATUS.items():
        by_status.setdefault(status, []).append(code)
    responses = {}
    for status, codes in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": f"{http.HTTPStatus(status).phrase}: {', '.join(codes)}",
            "content": {
                JSON: {
                    "schema": {
                        "allOf": [
                            ref("Error"),
                            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                        ]
                    }
                }
            },
        }
        if "unauthenticated" in codes:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"const": "Bearer"}, "required": True}
            }
        responses[_error_name(status)] = response
    return responses


# ---- operations ---------------------------------------------------------------------------

LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
}
OFFSET = {
    "name": "offset",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _path(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, **schema},
    }


IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Make a retry safe: the same key, from the same principal, with the same "
    "request (method, path, JSON body) within 24 hours gets the first answer again (status "
    "and body, with `Idempotent-Replayed: true`) and creates nothing; the same key with "
    "another request is refused (409 `idempotency_key_reused`). Only creates that "
    "succeeded are kept.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
        "pattern": "^[ -~]+$",
    },
}


def _idempotent(op: dict[str, Any]) -> dict[str, Any]:
    """A create that takes an Idempotency-Key."""
    op["parameters"] = [*op.get("parameters", []), IDEMPOTENCY_KEY]
    created = next(code for code in op["responses"] if code.startswith("2"))
    op["responses"][created]["headers"] = {
        "Idempotent-Replayed": {
            "description": "Present on an answer replayed for an Idempotency-Key",
            "schema": {"const": "true"},
        }
    }
    return op


def _date_range(what: str) -> list[dict[str, Any]]:
    return [
        _query("from_date", DATE_QUERY, f"{what} at or after"),
        _query("to_date", DATE_QUERY, f"{what} at or before"),
    ]


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    *,
    method: str,
    ok: tuple[int, str, str],
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_required: bool = True,
    secured: bool = True,
) -> dict[str, Any]:
    """`errors` are the statuses besides what every route can answer: 400 (a malformed
    Content-Length, a body nested deeper than 64 levels), 413 (a body over the limit,
    refused before it is read), 414 (a URL over 8 KiB) and 500, and on authenticated
    routes 401 and 403. Statuses name error_responses()' entries."""
    status, description, schema = ok
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": {str(status): _json_response(description, schema)},
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {JSON: {"schema": ref(body)}},
        }
    statuses = {*errors, 400, 413, 414, 500}
    if secured:
        statuses |= {401, 403}
        op["x-required-scope"] = "read" if method == "get" else "write"
    else:
        op["security"] = []
    for code in sorted(statuses):
        op["responses"][str(code)] = {"$ref": f"#/components/responses/{_error_name(code)}"}
    return op


EMPTY_BODY = {
    "required": False,
    "content": {JSON: {"schema": {"type": "object", "additionalProperties": False}}},
}


def paths() -> dict[str, dict[str, Any]]:
    execution_id = _path("execution_id", "An execution id")
    plan_id = _path("plan_id", "A plan id")
    subscription_id = _path("subscription_id", "A subscription id")
    integration_id = _path("integration_id", "An integration id", enum=list(INTEGRATIONS))
    capability_ids = list(
        dict.fromkeys(c.id for i in INTEGRATIONS.values() for c in i.capabilities)
    )
    capability_id = _path(
        "capability_id", "One of the integration's capabilities", enum=capability_ids
    )
    tag_query = _query("tag", {"type": "string"}, "Only those with this tag")
    created_by = _query("created_by", {"type": "string"}, "Only those made by this creator")

    result: dict[str, dict[str, Any]] = {
        "/api/executions": {
            "get": operation(
                "listExecutions",
                "Executions",
                "List executions, newest first",
                method="get",
                ok=(200, "A page of executions", "ExecutionList"),
                parameters=[
                    _query("status", {"enum": list(EXECUTION_STATUSES)}, "Only this status"),
                    tag_query,
                    created_by,
                    *_date_range("Created"),
                    LIMIT,
                    OFFSET,
                ],
            ),
            "post": _idempotent(
                operation(
                    "createExecution",
                    "Executions",
                    "Create an execution of an inline plan (and start it with `start: true`)",
                    method="post",
                    ok=(201, "Created", "ExecutionCreated"),
                    errors=(409, 503),
                    body="ExecutionCreate",
                )
            ),
        },
        "/api/executions/{execution_id}": {
            "get": operation(
                "getExecution",
                "Executions",
                "An execution with its plan, steps, variables and metadata",
                method="get",
                ok=(200, "The execution", "Execution"),
                errors=(404,),
                parameters=[execution_id],
            ),
        },
    }
    answers = transition_schemas()
    for action, (allowed, _) in ACTIONS.items():
        result[f"/api/executions/{{execution_id}}/{action}"] = {
            "post": {
                **operation(
                    f"{action}Execution",
                    "Executions",
                    f"{action.capitalize()} an execution that is {' or '.join(sorted(allowed))}",
                    method="post",
                    ok=(200, "Done", answers[action][0]),
                    errors=(404, 409, 503),
                    parameters=[execution_id],
                ),
                "requestBody": EMPTY_BODY,
            }
        }
    result.update(
        {
            "/api/executions/{execution_id}/steps": {
                "get": operation(
                    "listExecutionSteps",
                    "Executions",
                    "An execution's steps, each control step followed by the steps it ran",
                    method="get",
                    ok=(200, "The steps", "ExecutionSteps"),
                    errors=(404,),
                    parameters=[execution_id],
                )
            },
            "/api/executions/{execution_id}/steps/{step_id}": {
                "get": operation(
                    "getExecutionStep",
                    "Executions",
                    "One step of an execution, with its parameters",
                    method="get",
                    ok=(200, "The step", "StepDetail"),
                    errors=(404,),
                    parameters=[execution_id, _path("step_id", "A step id")],
                )
            },
            "/api/executions/{execution_id}/variables": {
                "get": operation(
                    "getExecutionVariables",
                    "Executions",
                    "An execution's variables",
                    method="get",
                    ok=(200, "The variables", "ExecutionVariables"),
                    errors=(404,),
                    parameters=[execution_id],
                )
            },
            "/api/plans": {
                "get": operation(
                    "listPlans",
                    "Plans",
                    "List stored plans, newest first",
                    method="get",
                    ok=(200, "A page of plans", "PlanList"),
                    parameters=[tag_query, created_by, *_date_range("Created"), LIMIT, OFFSET],
                ),
                "post": _idempotent(
                    operation(
                        "createPlan",
                        "Plans",
                        "Store a plan",
                        method="post",
                        ok=(201, "Stored", "StoredPlan"),
                        errors=(409, 503),
                        body="Plan",
                    )
                ),
            },
            "/api/plans/{plan_id}": {
                "get": operation(
                    "getPlan",
                    "Plans",
                    "A stored plan",
                    method="get",
                    ok=(200, "The plan", "StoredPlan"),
                    errors=(404,),
                    parameters=[plan_id],
                ),
                "put": operation(
                    "replacePlan",
                    "Plans",
                    "Replace a stored plan",
                    method="put",
                    ok=(200, "Replaced", "StoredPlan"),
                    errors=(404, 503),
                    parameters=[plan_id],
                    body="Plan",
                ),
                "delete": operation(
                    "deletePlan",
                    "Plans",
                    "Delete a stored plan",
                    method="delete",
                    ok=(200, "Deleted", "Deleted"),
                    errors=(404, 503),
                    parameters=[plan_id],
                ),
            },
            "/api/plans/{plan_id}/execute": {
                "post": _idempotent(
                    operation(
                        "executePlan",
                        "Plans",
                        "Create and start an execution of a stored plan",
                        method="post",
                        ok=(201, "Started", "PlanExecution"),
                        errors=(404, 409, 503),
                        parameters=[plan_id],
                        body="PlanExecute",
                        body_required=False,
                    )
                )
            },
            "/api/integrations": {
                "get": operation(
                    "listIntegrations",
                    "Integrations",
                    "The integrations and their capability ids",
                    method="get",
                    ok=(200, "The integrations", "IntegrationList"),
                )
            },
            "/api/integrations/invocations/{invocation_id}": {
                "get": operation(
                    "getInvocation",
                    "Integrations",
                    "A capability invocation",
                    method="get",
                    ok=(200, "The invocation", "Invocation"),
                    errors=(404,),
                    parameters=[_path("invocation_id", "An invocation id")],
                )
            },
            "/api/integrations/{integration_id}": {
                "get": operation(
                    "getIntegration",
                    "Integrations",
                    "An integration with the parameters of each capability",
                    method="get",
                    ok=(200, "The integration", "Integration"),
                    errors=(404,),
                    parameters=[integration_id],
                )
            },
            "/api/integrations/{integration_id}/capabilities": {
                "get": operation(
                    "listCapabilities",
                    "Integrations",
                    "An integration's capabilities",
                    method="get",
                    ok=(200, "The capabilities", "CapabilityList"),
                    errors=(404,),
                    parameters=[integration_id],
                )
            },
            "/api/integrations/{integration_id}/capabilities/{capability_id}": {
                "post": operation(
                    "invokeCapability",
                    "Integrations",
                    "Invoke a capability; answers at its end unless `async`; 403 "
                    "`permission_denied` when the operator turned its integration off",
                    method="post",
                    ok=(201, "Invoked", "Invocation"),
                    errors=(404, 502, 503),
                    parameters=[integration_id, capability_id],
                    body="Invoke",
                    body_required=False,
                )
            },
            "/api/events": {
                "get": operation(
                    "listEvents",
                    "Events",
                    "Stored events, newest first",
                    method="get",
                    ok=(200, "A page of events", "EventList"),
                    parameters=[
                        _query("type", {"enum": list(EVENT_TYPES)}, "Only this event type"),
                        _query("execution_id", {"type": "string"}, "Only this execution's"),
                        *_date_range("Happened"),
                        LIMIT,
                        OFFSET,
                    ],
                )
            },
            "/api/events/{event_id}": {
                "get": operation(
                    "getEvent",
                    "Events",
                    "One event",
                    method="get",
                    ok=(200, "The event", "Event"),
                    errors=(404,),
                    parameters=[
                        _path(
                            "event_id",
                            "An event id (`subscriptions` is the subscriptions list)",
                            **{"not": {"const": "subscriptions"}},
                        )
                    ],
                )
            },
            "/api/events/subscriptions": {
                "get": operation(
                    "listSubscriptions",
                    "Subscriptions",
                    "Webhook subscriptions that have not expired",
                    method="get",
                    ok=(200, "The subscriptions", "SubscriptionList"),
                ),
                "post": operation(
                    "createSubscription",
                    "Subscriptions",
                    "Subscribe a webhook to events",
                    method="post",
                    ok=(201, "Subscribed", "Subscription"),
                    errors=(503,),
                    body="SubscriptionCreate",
                ),
            },
            "/api/events/subscriptions/{subscription_id}": {
                "get": operation(
                    "getSubscription",
                    "Subscriptions",
                    "One subscription (the secret is never shown)",
                    method="get",
                    ok=(200, "The subscription", "Subscription"),
                    errors=(404,),
                    parameters=[subscription_id],
                ),
                "delete": operation(
                    "deleteSubscription",
                    "Subscriptions",
                    "Stop and delete a subscription",
                    method="delete",
                    ok=(200, "Deleted", "Deleted"),
                    errors=(404, 503),
                    parameters=[subscription_id],
                ),
            },
            "/api/events/subscriptions/{subscription_id}/deliveries": {
                "get": operation(
                    "listDeliveries",
                    "Subscriptions",
                    "A subscription's deliveries, newest first",
                    method="get",
                    ok=(200, "A page of deliveries", "DeliveryList"),
                    errors=(404,),
                    parameters=[
                        subscription_id,
                        _query("status", {"enum": list(DELIVERY_STATUSES)}, "Only this status"),
                        LIMIT,
                        OFFSET,
                    ],
                )
            },
            **{
                f"/api/events/subscriptions/{{subscription_id}}/{action}": {
                    "post": {
                        **operation(
                            f"{action}Subscription",
                            "Subscriptions",
                            summary,
                            method="post",
                            ok=(200, "Done", "Subscription"),
                            errors=(404, 409, 503),
                            parameters=[subscription_id],
                        ),
                        "requestBody": EMPTY_BODY,
                    }
                }
                for action, summary in (
                    ("pause", "Stop delivering until resumed (409 if paused already)"),
                    (
                        "resume",
                        "Deliver again from where it stopped, nothing skipped (409 if not paused)",
                    ),
                )
            },
            "/api/events/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver": {
                "post": {
                    **operation(
                        "redeliverDelivery",
                        "Subscriptions",
                        "Deliver a finished delivery's event again, as a new delivery "
                        "(`pending`; 409 while the delivery is still pending or retrying)",
                        method="post",
                        ok=(201, "The new delivery", "Delivery"),
                        errors=(404, 409, 503),
                        parameters=[subscription_id, _path("delivery_id", "A delivery id")],
                    ),
                    "requestBody": EMPTY_BODY,
                }
            },
            "/health": {
                "get": {
                    **operation(
                        "getHealth",
                        "System",
                        "Each component really checked; open to load balancers",
                        method="get",
                        ok=(200, "Healthy", "Health"),
                        secured=False,
                    ),
                }
            },
            "/api/nodes": {
                "get": operation(
                    "listNodes",
                    "System",
                    "The servers of the cluster on this database, oldest first: the living, "
                    "and those dead for less than an hour",
                    method="get",
                    ok=(200, "The nodes", "NodeList"),
                )
            },
            "/metrics": {
                "get": operation(
                    "getMetrics",
                    "System",
                    "Counts, recent timings and resource use (JSON or Prometheus text)",
                    method="get",
                    ok=(200, "The figures", "Metrics"),
                    parameters=[
                        _query(
                            "format",
                            {"enum": list(metrics.FORMATS)},
                            "Without it, an Accept header preferring text/plain gives "
                            "the Prometheus text format",
                        )
                    ],
                )
            },
            OPENAPI_PATH: {
                "get": operation(
                    "getOpenApi",
                    "System",
                    "This document",
                    method="get",
                    ok=(200, "The OpenAPI 3.1 document", "OpenApiDocument"),
                )
            },
        }
    )
    result["/health"]["get"]["responses"]["503"] = _json_response("Unhealthy", "Health")
    result["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"] = {
        "schema": {"type": "string", "description": "Prometheus text format 0.0.4"}
    }
    return result


# ---- WebSockets -------------------------------------------------------------------------------


def websockets() -> dict[str, Any]:
    token = _query(
        "token",
        {"type": "string"},
        "The bearer token, for clients that cannot set the Authorization header",
    )
    too_slow = {str(sockets.CLOSE_TRY_AGAIN): "the client did not keep up with the stream"}
    return {
        "/ws/executions/{execution_id}": {
            "description": "One execution's events as {type, timestamp, data} messages: "
            "first the earlier ones, then live; closed after execution_completed. Needs the "
            "`read` scope; an authentication failure answers the upgrade request with the "
            "Error body and status 401 or 403.",
            "parameters": [_path("execution_id", "An execution id"), token],
            "message": ref("ExecutionMessage"),
            "closeCodes": {
                "1000": "the execution completed",
                str(sockets.CLOSE_NOT_FOUND): "unknown execution id",
                **too_slow,
            },
        },
        "/ws/events": {
            "description": "Event records: live ones, or with `since` those after that "
            "event first. Needs the `read` scope.",
            "parameters": [
                _query(
                    "types",
                    {"type": "string"},
                    "Comma-separated event types: " + ", ".join(EVENT_TYPES),
                ),
                _query("execution_id", {"type": "string"}, "Only this execution's events"),
                _query("since", {"type": "string"}, "Replay the events after this event id"),
                token,
            ],
            "message": ref("Event"),
            "closeCodes": {
                str(sockets.CLOSE_BAD_REQUEST): "unknown event type in `types`",
                str(sockets.CLOSE_NOT_FOUND): "unknown event id in `since`",
                **too_slow,
            },
        },
    }


# ---- the document -------------------------------------------------------------------------------


def build_document(prefix: str = "") -> dict[str, Any]:
    """The OpenAPI document; `prefix` is where an embedding application mounts the routes."""
    schemas = components_schemas()
    schemas["OpenApiDocument"] = {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": OPENAPI_VERSION}},
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Synthesis",
            "version": __version__,
            "description": (
                "Execution engine for plans of commands, HTTP calls and MCP tool calls.\n\n"
                "Every route but /health needs `Authorization: Bearer <token>`: a static "
                "token or an HS256 JWT. GET needs the `read` scope, everything else "
                "`write` (`x-required-scope`). Every error, unknown routes (404) and wrong "
                'methods (405) included, is `{"error": {"code", "message", "details"?}}`. '
                "Ids are server-made UUID4 strings, timestamps UTC ISO 8601 ending in Z, "
                "durations integer milliseconds. Lists are newest first. Request bodies "
                "are JSON objects of at most 1 MiB (413 `payload_too_large`, refused with "
                "the token before the body is read) nested at most 64 levels; URLs are at "
                "most 8 KiB (414 `uri_too_long`); integer query parameters are ASCII digits. "
                "With `--cors-origin`, those origins get CORS headers and preflight answers."
            ),
        },
        "servers": [{"url": prefix or "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": name}
            for name in (
                "Executions",
                "Plans",
                "Integrations",
                "Events",
                "Subscriptions",
                "System",
            )
        ],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A static token, or an HS256 JWT (`sub` becomes "
                    "created_by, `exp` is enforced, `scope` lists read and/or write)",
                }
            },
            "schemas": schemas,
            "responses": error_responses(),
        },
        "x-websockets": websockets(),
    }


@functools.lru_cache(maxsize=8)
def document_bytes(prefix: str = "") -> bytes:
    return orjson.dumps(build_document(prefix))


class OpenApiHandler(ApiHandler):
    def get(self) -> None:
        self.query(())
        prefix = self.request.path[: -len(OPENAPI_PATH)]
        self.set_header("Content-Type", JSON)
        self.finish(document_bytes(prefix))


default_handlers = [(OPENAPI_PATH.replace(".", r"\."), OpenApiHandler)]
