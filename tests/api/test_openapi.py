"""GET /api/openapi.json: a valid OpenAPI 3.1 document, every route the application serves
in it and nothing else, the query parameters and body fields the handlers accept equal
to the document's, real responses conforming to it, and a property-based fuzzer
(schemathesis) against a live server: no 500, no response that breaks its own schema."""

from __future__ import annotations

import inspect
import re
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
import tornado.web
import tornado.websocket
from hypothesis import HealthCheck, Phase, reject, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from synthesis.integrations import INTEGRATIONS, find_capability
from synthesis.web import app, openapi, ui
from tests.support import READ_TOKEN, TOKEN, ServerThread, make_settings, wait_until

DOCUMENT = openapi.build_document()
SCHEMA = schemathesis.openapi.from_dict(openapi.build_document())
METHODS = ("get", "post", "put", "delete", "patch", "head", "options")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN = "zz_not_a_parameter"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server on SQLite for this module; webhooks give up after one attempt and never
    pause on their own."""
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    url = f"sqlite:///{data_dir / 'synthesis.db'}"
    settings = make_settings(
        data_dir, url, webhook_retry_window_seconds=0.0, webhook_pause_after_failures=0
    )
    running = ServerThread(settings).start()
    yield running
    running.stop()


def base_url(server: ServerThread) -> str:
    return f"http://127.0.0.1:{server.port}"


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = DOCUMENT["components"][kind][name]
    return node


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            yield path, method, op


def fill(path: str, op: dict[str, Any], **values: str) -> str:
    """The path with each parameter set: `values`, else an enum's first value, else junk."""
    for param in op.get("parameters", []):
        if param["in"] == "path":
            name = param["name"]
            value = values.get(name) or param["schema"].get("enum", [f"no-such-{name}"])[0]
            path = path.replace(f"{{{name}}}", urllib.parse.quote(value, safe=""))
    return path


# ---- (1) a valid OpenAPI 3.1 document ------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    SCHEMA.validate()  # against the OpenAPI 3.1 meta-schema; raises on any violation
    for name, schema in DOCUMENT["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:  # pragma: no cover - the message says where
            pytest.fail(f"components.schemas.{name}: {exc.message}")


def test_every_reference_resolves_and_operation_ids_are_unique() -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for target in refs(DOCUMENT):
        assert target.startswith("#/components/"), target
        resolve({"$ref": target})  # a KeyError names the missing one
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))


def test_every_operation_documents_auth_and_its_errors() -> None:
    assert DOCUMENT["security"] == [{"bearerAuth": []}]
    bearer = DOCUMENT["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        if path == "/health":
            assert op["security"] == [], where
            assert "401" not in op["responses"], where
            continue
        assert "security" not in op, where
        assert op["x-required-scope"] == ("read" if method == "get" else "write"), where
        for status in ("401", "403", "413", "500"):
            assert status in op["responses"], (where, status)
        templated = set(re.findall(r"\{(\w+)\}", path))
        if templated:
            assert "404" in op["responses"], where
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == templated, where
        for status, response in op["responses"].items():
            if int(status) >= 400 and not (path == "/health" and status == "503"):
                schema = resolve(response)["content"]["application/json"]["schema"]
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}, where


def test_error_codes_and_enums_come_from_the_engine() -> None:
    from synthesis.engine.errors import HTTP_STATUS
    from synthesis.engine.events import EVENT_TYPES
    from synthesis.engine.transitions import EXECUTION_STATUSES, STEP_STATUSES

    schemas = DOCUMENT["components"]["schemas"]
    code = schemas["Error"]["properties"]["error"]["properties"]["code"]
    assert code["enum"] == list(HTTP_STATUS)
    assert schemas["Event"]["properties"]["type"]["enum"] == list(EVENT_TYPES)
    assert schemas["Execution"]["properties"]["status"]["enum"] == list(EXECUTION_STATUSES)
    assert schemas["StepState"]["properties"]["status"]["enum"] == list(STEP_STATUSES)
    for status in set(HTTP_STATUS.values()):
        assert openapi.error_name(status) in DOCUMENT["components"]["responses"]


def test_the_step_schema_is_a_one_of_over_every_step_type() -> None:
    from synthesis.engine.plan import CONTROL_SCHEMAS, STEP_FIELDS
    from synthesis.integrations import STEP_SCHEMAS

    schemas = DOCUMENT["components"]["schemas"]
    mapping = schemas["Step"]["discriminator"]["mapping"]
    assert set(mapping) == set(STEP_SCHEMAS) | set(CONTROL_SCHEMAS)
    for step_type, target in mapping.items():
        variant = resolve({"$ref": target})
        assert variant["properties"]["type"] == {"const": step_type}
        assert set(variant["properties"]) == STEP_FIELDS
        params = variant["properties"]["parameters"]
        schema = {**STEP_SCHEMAS, **CONTROL_SCHEMAS}[step_type]
        assert set(params["properties"]) == set(schema)
        assert set(params.get("required", [])) == {n for n, p in schema.items() if p.required}
    # the control parameters that hold step lists are arrays in CONTROL_SCHEMAS
    for step_type, name in (("condition", "then"), ("condition", "else"), ("loop", "steps")):
        assert CONTROL_SCHEMAS[step_type][name].type == "array"


PLAN = {
    "name": "documented",
    "steps": [
        {"id": "hello", "type": "command", "parameters": {"command": "echo hello"}},
        {
            "id": "check",
            "type": "condition",
            "parameters": {
                "if": "hello_exit_code == 0",
                "then": [{"id": "told", "type": "notify", "parameters": {"message": "ok"}}],
            },
        },
        {
            "id": "each",
            "type": "loop",
            "parameters": {
                "for": [1, 2],
                "steps": [
                    {
                        "id": "add",
                        "type": "variable",
                        "parameters": {"operation": "append", "name": "seen", "value": "${item}"},
                    }
                ],
            },
            "retry": {"max_attempts": 2, "backoff_seconds": 0.1},
            "timeout": 30,
        },
        {"id": "pause", "type": "wait", "parameters": {"seconds": "${delay}"}},
    ],
    "variables": {"delay": 0, "seen": []},
    "metadata": {"tags": ["docs"], "owner": "someone"},
}


def plan_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {**DOCUMENT, "$ref": "#/components/schemas/Plan"},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def test_plans_the_server_accepts_match_the_plan_schema() -> None:
    validator = plan_validator()
    validator.validate(PLAN)
    bad = {**PLAN, "steps": [{"id": "x y", "type": "teleport"}]}
    assert not validator.is_valid(bad)


def test_the_numeric_limits_are_in_the_plan_schema() -> None:
    year = 365 * 24 * 3600  # the longest wait, timeout or retry delay
    validator = plan_validator()
    command = {"id": "c", "type": "command", "parameters": {"command": "x"}}
    for step in (
        {"id": "w", "type": "wait", "parameters": {"seconds": 1e308}},
        {**command, "timeout": 1e308},
        {**command, "retry": {"backoff_seconds": 1e308}},
        {**command, "retry": {"backoff_multiplier": 11}},
        {**command, "parameters": {"command": "x", "timeout": 0.5}},
    ):
        assert not validator.is_valid({**PLAN, "steps": [step]}), step
    wait = {"id": "w", "type": "wait", "parameters": {"seconds": year}}
    validator.validate({**PLAN, "steps": [wait, {**command, "timeout": year}]})


# ---- (2) every served route is documented, and nothing else --------------------------

_LOOKAROUND = re.compile(r"\(\?[!=<][^()]*\)")
_GROUP = re.compile(r"\(([^()]*)\)")
_ALTERNATIVES = re.compile(r"[\w-]+(?:\|[\w-]+)+")


def handler_arguments(handler: type) -> list[str]:
    """The names the route's groups arrive as, by position: the handler's own arguments."""
    method = handler.open if issubclass(handler, tornado.websocket.WebSocketHandler) else None
    if method is None:
        method = next(getattr(handler, m) for m in served_methods(handler))
    params = list(inspect.signature(method).parameters.values())[1:]
    return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]


def served_methods(handler: type) -> list[str]:
    base = tornado.web.RequestHandler
    return [m for m in METHODS if getattr(handler, m) is not getattr(base, m)]


def openapi_paths(pattern: str, names: list[str]) -> list[str]:
    """A Tornado route as OpenAPI paths: each `([^/]+)` group is {its argument's name}, a
    group of literal alternatives (start|pause|...) is one path per alternative."""
    pattern = _LOOKAROUND.sub("", pattern)
    paths = [""]
    position = 0
    for index, piece in enumerate(_GROUP.split(pattern)):
        if index % 2 == 0:
            literal = re.sub(r"\\(.)", r"\1", piece)
            assert not set(literal) & set("^$*+?[]()|{}"), (pattern, literal)
            paths = [p + literal for p in paths]
            continue
        if _ALTERNATIVES.fullmatch(piece):
            paths = [p + alternative for p in paths for alternative in piece.split("|")]
        else:
            paths = [p + f"{{{names[position]}}}" for p in paths]
        position += 1
    return paths


def served_routes() -> tuple[set[tuple[str, str]], set[str]]:
    rest: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    for module in app.MODULES:
        if module is ui:  # the web UI's pages and files, not the API (docs/ui.md)
            continue
        for pattern, handler in module.default_handlers:
            paths = openapi_paths(pattern, handler_arguments(handler))
            if issubclass(handler, tornado.websocket.WebSocketHandler):
                sockets.update(paths)
            else:
                rest.update((path, m) for path in paths for m in served_methods(handler))
    return rest, sockets


def test_the_route_converter() -> None:
    assert openapi_paths(r"/api/events/(?!subscriptions$)([^/]+)", ["event_id"]) == [
        "/api/events/{event_id}"
    ]
    assert openapi_paths(r"/api/x/([^/]+)/(a|b)", ["x_id", "action"]) == [
        "/api/x/{x_id}/a",
        "/api/x/{x_id}/b",
    ]
    assert openapi_paths(r"/api/openapi\.json", []) == ["/api/openapi.json"]


def test_every_route_the_app_serves_is_documented_and_nothing_else() -> None:
    rest, sockets = served_routes()
    documented = {(path, method) for path, method, _ in operations()}
    assert rest - documented == set(), "served but not documented"
    assert documented - rest == set(), "documented but not served"
    assert sockets == set(DOCUMENT["x-websockets"])
    assert not any(path.startswith("/ws/") for path in DOCUMENT["paths"])
    for path, spec in DOCUMENT["x-websockets"].items():
        templated = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in spec["parameters"] if p["in"] == "path"}
        assert declared == templated, path


# ---- the server's own answers -----------------------------------------------------------


def test_the_served_document_needs_a_token_and_is_the_built_one(live: ServerThread) -> None:
    url = base_url(live) + openapi.OPENAPI_PATH
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    served = requests.get(url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/json"
    assert served.json() == DOCUMENT
    assert openapi.build_document("/synthesis")["servers"] == [{"url": "/synthesis"}]


def test_query_parameters_are_the_ones_the_handlers_accept(live: ServerThread) -> None:
    """Each GET names the query parameters it knows when given an unknown one: that set
    must be the document's (handlers hard-code theirs; this catches drift)."""
    checked = 0
    for path, method, op in operations():
        if method != "get" or path == "/health":  # /health takes no parameters, ignores any
            continue
        url = base_url(live) + fill(path, op)
        response = requests.get(url, params={UNKNOWN: "1"}, headers=AUTH, timeout=10)
        assert response.status_code == 400, (path, response.text)
        (detail,) = [d for d in response.json()["error"]["details"] if d["field"] == UNKNOWN]
        known = detail["message"].partition("known: ")[2]
        accepted = {name.strip() for name in known.split(",") if name.strip()}
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert accepted == documented, path
        checked += 1
    assert checked >= 15


def test_body_fields_are_the_ones_the_handlers_accept(live: ServerThread) -> None:
    """No documented field is refused as unknown, and where the document closes a body
    (additionalProperties false) an unknown field is refused. Every body sent is invalid
    otherwise, so nothing runs."""
    stored = requests.post(
        base_url(live) + "/api/plans",
        json={
            "name": "p",
            "steps": [{"id": "n", "type": "notify", "parameters": {"message": "m"}}],
        },
        headers=AUTH,
        timeout=10,
    )
    assert stored.status_code == 201, stored.text
    # PUT checks that the plan exists before its body: it needs a stored plan (execute
    # must not get one: with a valid body it would run it).
    values = {"/api/plans/{plan_id}": {"plan_id": stored.json()["plan_id"]}}
    checked = 0
    for path, method, op in operations():
        if "requestBody" not in op:
            continue
        schema = resolve(op["requestBody"]["content"]["application/json"]["schema"])
        url = base_url(live) + fill(path, op, **values.get(path, {}))
        for name in schema.get("properties", {}):
            response = requests.request(method, url, json={name: None}, headers=AUTH, timeout=10)
            assert response.status_code in (400, 404), (path, name, response.text)
            details = response.json()["error"].get("details", [])
            assert not [d for d in details if d["message"].startswith("unknown field")], (
                path,
                name,
                details,
            )
            checked += 1
        if schema.get("additionalProperties") is False:
            response = requests.request(method, url, json={UNKNOWN: 1}, headers=AUTH, timeout=10)
            assert response.status_code == 400, (path, response.text)
            fields = [d["field"] for d in response.json()["error"]["details"]]
            assert UNKNOWN in fields, (path, fields)
    assert checked >= 15


class Api:
    """Calls that check each answer against the document: a documented status, and a body
    that conforms to that status's schema."""

    def __init__(self, server: ServerThread) -> None:
        self.base = base_url(server)

    def __call__(self, method: str, template: str, expect: int, **kwargs: Any) -> Any:
        path = template.format(**kwargs.pop("path", {}))
        response = requests.request(method, self.base + path, headers=AUTH, timeout=30, **kwargs)
        op = DOCUMENT["paths"][template][method.lower()]
        assert str(response.status_code) in op["responses"], (template, response.text)
        SCHEMA[template][method.upper()].validate_response(response)
        assert response.status_code == expect, (template, response.text)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.json()
        return response.text


def test_real_answers_of_every_operation_conform(live: ServerThread) -> None:
    """Drive every operation to real data with harmless commands of our own, and check each
    answer against the document (the fuzzer rarely reaches existing resources)."""
    api = Api(live)
    plan = api("POST", "/api/plans", 201, json=PLAN)
    pid = {"plan_id": plan["plan_id"]}
    api("GET", "/api/plans", 200, params={"tag": "docs", "limit": 5})
    api("GET", "/api/plans/{plan_id}", 200, path=pid)
    api("PUT", "/api/plans/{plan_id}", 200, path=pid, json={**PLAN, "description": "again"})
    run = api("POST", "/api/plans/{plan_id}/execute", 201, path=pid, json={"variables": {}})
    eid = {"execution_id": run["execution_id"]}
    wait_until(
        lambda: (
            api("GET", "/api/executions/{execution_id}", 200, path=eid)["status"]
            in ("completed", "failed")
        ),
        timeout=15,
    )
    detail = api("GET", "/api/executions/{execution_id}", 200, path=eid)
    assert detail["status"] == "completed", detail
    api("GET", "/api/executions", 200, params={"status": "completed"})
    steps = api("GET", "/api/executions/{execution_id}/steps", 200, path=eid)["steps"]
    for step in steps:
        api(
            "GET",
            "/api/executions/{execution_id}/steps/{step_id}",
            200,
            path={**eid, "step_id": urllib.parse.quote(step["id"], safe="")},
        )
    api("GET", "/api/executions/{execution_id}/variables", 200, path=eid)
    api("POST", "/api/executions/{execution_id}/start", 409, path=eid)

    waiting = {
        "plan": {"name": "w", "steps": [{"id": "w", "type": "wait", "parameters": {"seconds": 30}}]}
    }
    created = api("POST", "/api/executions", 201, json=waiting)
    wid = {"execution_id": created["execution_id"]}
    api("POST", "/api/executions/{execution_id}/start", 200, path=wid)
    api("POST", "/api/executions/{execution_id}/pause", 200, path=wid)
    api("POST", "/api/executions/{execution_id}/resume", 200, path=wid)
    api("POST", "/api/executions/{execution_id}/cancel", 200, path=wid)
    api("POST", "/api/executions/{execution_id}/cancel", 404, path={"execution_id": "nope"})

    events = api("GET", "/api/events", 200, params={"execution_id": run["execution_id"]})
    assert events["events"]
    api("GET", "/api/events/{event_id}", 200, path={"event_id": events["events"][0]["event_id"]})
    api("GET", "/api/events/{event_id}", 404, path={"event_id": "nope"})

    api("GET", "/api/integrations", 200)
    for integration in INTEGRATIONS:
        iid = {"integration_id": integration}
        api("GET", "/api/integrations/{integration_id}", 200, path=iid)
        api("GET", "/api/integrations/{integration_id}/capabilities", 200, path=iid)
    invoke = "/api/integrations/{integration_id}/capabilities/{capability_id}"
    cli = {"integration_id": "cli", "capability_id": "execute_command"}
    done = api("POST", invoke, 201, path=cli, json={"parameters": {"command": "echo hi"}})
    assert done["status"] == "completed", done
    started = api(
        "POST", invoke, 201, path=cli, json={"parameters": {"command": "true"}, "async": True}
    )
    assert started["status"] == "running"
    iid = {"invocation_id": done["invocation_id"]}
    api("GET", "/api/integrations/invocations/{invocation_id}", 200, path=iid)
    failed = {"integration_id": "api", "capability_id": "http_get"}
    body = {"parameters": {"url": f"http://127.0.0.1:{closed_port()}/", "timeout": 5}}
    api("POST", invoke, 502, path=failed, json=body)

    subscription = api(
        "POST",
        "/api/events/subscriptions",
        201,
        json={"callback_url": f"http://127.0.0.1:{closed_port()}/hook", "secret": "s"},
    )
    sid = {"subscription_id": subscription["subscription_id"]}
    api("POST", "/api/plans", 201, json={**PLAN, "name": "an event to deliver"})
    api("GET", "/api/events/subscriptions", 200)
    api("GET", "/api/events/subscriptions/{subscription_id}", 200, path=sid)
    deliveries = "/api/events/subscriptions/{subscription_id}/deliveries"
    [dead] = wait_until(lambda: api("GET", deliveries, 200, path=sid)["deliveries"], timeout=15)
    assert dead["status"] == "dead", dead  # a window of 0 s: one attempt
    redeliver = deliveries + "/{delivery_id}/redeliver"
    again = api("POST", redeliver, 201, path={**sid, "delivery_id": dead["delivery_id"]})
    assert again["status"] == "pending" and again["redelivery_of"] == dead["delivery_id"]
    api("POST", redeliver, 404, path={**sid, "delivery_id": "nope"})
    action = "/api/events/subscriptions/{subscription_id}/{action}"
    assert api("POST", action.replace("{action}", "pause"), 200, path=sid)["status"] == "paused"
    api("POST", action.replace("{action}", "pause"), 409, path=sid)
    assert api("POST", action.replace("{action}", "resume"), 200, path=sid)["status"] == "active"
    api("POST", action.replace("{action}", "resume"), 409, path=sid)
    api("DELETE", "/api/events/subscriptions/{subscription_id}", 200, path=sid)
    api("DELETE", "/api/events/subscriptions/{subscription_id}", 404, path=sid)
    api("DELETE", "/api/plans/{plan_id}", 200, path=pid)
    api("DELETE", "/api/plans/{plan_id}", 404, path=pid)

    [node] = api("GET", "/api/nodes", 200)["nodes"]  # this server, alone on its SQLite file
    assert node["node_id"] == live.runtime.node_id
    api("GET", "/metrics", 200)
    assert "synthesis_executions_total" in api(
        "GET", "/metrics", 200, params={"format": "prometheus"}
    )
    api("GET", "/metrics", 400, params={"format": "xml"})
    api("GET", "/health", 200)
    api("GET", openapi.OPENAPI_PATH, 200)


# ---- (3) the fuzzer ------------------------------------------------------------------------

# Operations that run what they are given are fuzzed with their dangerous part taken out,
# since whatever they run runs in this test process as `sh -c <random text>`:
# - POST /api/executions: `start: true` becomes false, so a random plan is only stored;
# - POST /api/plans/{plan_id}/execute: the plan id can never name a stored plan (the fuzzer
#   never learns the ids of the plans it stores, and a prefix makes sure of it), so only
#   the body's validation and the 404 are exercised;
# - POST /api/integrations/{id}/capabilities/{cap}: a real capability other than the MCP
#   ones that only look a connection id up (and fail: the fuzzer opens none) becomes
#   mcp/disconnect, so no command, script, HTTP request or MCP server is ever started;
# - POST /api/events/subscriptions: a callback URL the server would accept becomes a
#   closed loopback port, so webhooks never leave the machine.
SAFE_INVOCATIONS = {("mcp", "send_command"), ("mcp", "receive_response"), ("mcp", "disconnect")}


def make_harmless(case: schemathesis.Case) -> None:
    path, method = case.operation.path, case.method.upper()
    body = case.body if isinstance(case.body, dict) else {}
    params = case.path_parameters if case.path_parameters is not None else {}
    if path == "/api/events/{event_id}" and params.get("event_id") == "subscriptions":
        # Negative data breaking the parameter's `not: subscriptions`: that request is
        # GET /api/events/subscriptions, another operation (concrete paths win).
        reject()
    if (method, path) == ("POST", "/api/executions") and body.get("start") is True:
        body["start"] = False
    elif path == "/api/plans/{plan_id}/execute":
        params["plan_id"] = f"not-stored-{params.get('plan_id')}"
    elif path == "/api/integrations/{integration_id}/capabilities/{capability_id}":
        key = (str(params.get("integration_id")), str(params.get("capability_id")))
        if find_capability(*key) is not None and key not in SAFE_INVOCATIONS:
            params.update(integration_id="mcp", capability_id="disconnect")
    elif (method, path) == ("POST", "/api/events/subscriptions"):
        url = body.get("callback_url")
        try:
            parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("http", "https"):
            body["callback_url"] = f"http://127.0.0.1:9/{uuid.uuid4().hex}"


# Operations whose body is a whole plan: schemathesis would send every combination of the
# document's explicit step examples (about 6,000 requests each, 90 % of the suite's
# fuzzing time), so they get generated examples only. The documented plans are checked by
# tests/test_examples.py.
PLAN_BODIES = ["POST /api/plans", "PUT /api/plans/{plan_id}", "POST /api/executions"]
FUZZ_SETTINGS = {
    "deadline": None,
    "database": None,  # no .hypothesis directory in the repository
    "derandomize": True,  # the same examples every run: CI cannot turn red by chance
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}


def fuzz(case: schemathesis.Case, live: ServerThread) -> None:
    make_harmless(case)
    case.call_and_validate(
        base_url=base_url(live),
        headers=AUTH,
        checks=[
            not_a_server_error,
            status_code_conformance,
            response_schema_conformance,
            content_type_conformance,
            response_headers_conformance,  # WWW-Authenticate on every 401
        ],
        timeout=30,
    )


@SCHEMA.exclude(name=PLAN_BODIES).parametrize()
@settings(max_examples=25, **FUZZ_SETTINGS)
def test_fuzz(case: schemathesis.Case, live: ServerThread) -> None:
    fuzz(case, live)


@SCHEMA.include(name=PLAN_BODIES).parametrize()
@settings(max_examples=25, phases=[Phase.generate], **FUZZ_SETTINGS)
def test_fuzz_plan_bodies(case: schemathesis.Case, live: ServerThread) -> None:
    fuzz(case, live)
