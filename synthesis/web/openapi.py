"""GET /api/openapi.json: the OpenAPI 3.1 document of every REST endpoint.

The document is assembled from the declarations the server parses and validates with
(web/declare.py): each handler's `endpoints` give the operations (path and query
parameters, body, answer), each web module's `SCHEMAS` the components, the plan language
comes from web/plan_schema.py (built from the engine's step schemas), error codes from
HTTP_STATUS. Nothing here lists fields of its own.

The two WebSockets are not REST operations: they are described under `x-websockets`.
"""

from __future__ import annotations

import functools
import http
from typing import Any

import orjson

from synthesis import __version__
from synthesis.engine.errors import HTTP_STATUS
from synthesis.web import (
    events,
    executions,
    idempotency,
    integrations,
    me,
    metrics,
    nodes,
    plan_schema,
    plans,
    sockets,
    subscriptions,
    system,
)
from synthesis.web.base import ApiHandler
from synthesis.web.declare import JSON, Endpoint, ref, shape

OPENAPI_PATH = "/api/openapi.json"
OPENAPI_VERSION = "3.1.0"
# The web modules whose handlers declare endpoints and whose SCHEMAS are components.
MODULES = (executions, plans, integrations, subscriptions, events, system, metrics, nodes, me)

# ---- errors -------------------------------------------------------------------------------


def error_name(status: int) -> str:
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
        responses[error_name(status)] = response
    return responses


# ---- operations ---------------------------------------------------------------------------

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


def operation(endpoint: Endpoint) -> dict[str, Any]:
    """One operation from its declaration. Besides its own `errors`, every route can
    answer 400 (a malformed Content-Length, a body nested deeper than 64 levels), 413 (a
    body over the limit, refused before it is read), 414 (a URL over 8 KiB) and 500, and
    authenticated routes 401 and 403. Statuses name error_responses()' entries."""
    status, description, schema = endpoint.ok
    op: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "responses": {str(status): _json_response(description, schema)},
    }
    if endpoint.text is not None:
        op["responses"][str(status)]["content"]["text/plain"] = {
            "schema": {"type": "string", "description": endpoint.text}
        }
    for extra, (about, name) in endpoint.responses.items():
        op["responses"][str(extra)] = _json_response(about, name)
    parameters = [*endpoint.params, *(q.to_openapi() for q in endpoint.query)]
    if parameters:
        op["parameters"] = parameters
    body = endpoint.body
    if body is not None:
        op["requestBody"] = {
            "required": body.required,
            "content": {JSON: {"schema": ref(body.name) if body.name else body.schema}},
        }
    statuses = {*endpoint.errors, 400, 413, 414, 500}
    if endpoint.secured:
        statuses |= {401, 403}
        op["x-required-scope"] = "read" if endpoint.method == "get" else "write"
    else:
        op["security"] = []
    for code in sorted(statuses - set(endpoint.responses)):
        op["responses"][str(code)] = {"$ref": f"#/components/responses/{error_name(code)}"}
    if endpoint.idempotent:
        _idempotent(op)
    return op


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def paths() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for routes in (*(module.default_handlers for module in MODULES), default_handlers):
        for _, handler in routes:
            for endpoint in handler.endpoints:
                result.setdefault(endpoint.path, {})[endpoint.method] = operation(endpoint)
    return result


def components_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {
        "Error": shape(
            {
                "error": shape(
                    {
                        "code": {"enum": list(HTTP_STATUS)},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": ref("FieldError")},
                    },
                    optional=("details",),
                )
            }
        ),
        "FieldError": shape({"field": {"type": "string"}, "message": {"type": "string"}}),
        **plan_schema.SCHEMAS,
    }
    for module in MODULES:
        schemas.update(module.SCHEMAS)
    schemas["OpenApiDocument"] = {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": OPENAPI_VERSION}},
    }
    return schemas


# ---- the document -------------------------------------------------------------------------------


def build_document(prefix: str = "") -> dict[str, Any]:
    """The OpenAPI document; `prefix` is where an embedding application mounts the routes."""
    schemas = components_schemas()
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
        "x-websockets": sockets.described(),
    }


@functools.lru_cache(maxsize=8)
def document_bytes(prefix: str = "") -> bytes:
    return orjson.dumps(build_document(prefix))


class OpenApiHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            OPENAPI_PATH,
            "getOpenApi",
            "System",
            "This document",
            ok=(200, "The OpenAPI 3.1 document", "OpenApiDocument"),
        ),
    )

    def get(self) -> None:
        self.query()
        prefix = self.request.path[: -len(OPENAPI_PATH)]
        self.set_header("Content-Type", JSON)
        self.finish(document_bytes(prefix))


default_handlers = [(OPENAPI_PATH.replace(".", r"\."), OpenApiHandler)]
