"""The HTTP integration (`api`): http_get, http_post, http_put, http_delete, and the `http`
step type, which names the method as a parameter. All of them are one `request` call
through Tornado's AsyncHTTPClient on the aio loop."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from synthesis.engine.schema import Param, seconds, with_defaults
from synthesis.integrations.base import Capability, Integration, RunContext, StepResult

METHODS = ("GET", "POST", "PUT", "DELETE")

REQUEST_PARAMETERS = {
    "url": Param("string", "The URL to call (http or https)", required=True),
    "headers": Param("object", "Request headers", values="string"),
    "query": Param("object", "Query parameters added to the URL"),
    "json": Param("any", "A JSON body (sent as application/json)"),
    "body": Param("string", "A text body"),
    "timeout": seconds("Timeout in seconds", default=30),
    "expected_status": Param(
        "any",
        "Accepted status: a code, a list of codes, or a class such as '2xx'",
        default="2xx",
    ),
}
STEP_PARAMETERS = {
    "method": Param("string", "GET, POST, PUT or DELETE", default="GET"),
    **REQUEST_PARAMETERS,
}


def _problem(params: Mapping[str, Any], method: str) -> str | None:
    """What the schema cannot say about a request, or None if it is fine."""
    if method not in METHODS:
        return f"method must be one of {', '.join(METHODS)}"
    scheme = urllib.parse.urlsplit(params["url"]).scheme
    if scheme not in ("http", "https"):
        return "url must start with http:// or https://"
    if params.get("json") is not None and params.get("body") is not None:
        return "give either json or body, not both"
    expected = params["expected_status"]
    if not (
        (isinstance(expected, int) and not isinstance(expected, bool))
        or (isinstance(expected, list) and all(isinstance(c, int) for c in expected))
        or (
            isinstance(expected, str)
            and len(expected) == 3
            and expected.endswith("xx")
            and expected[0] in "12345"
        )
    ):
        return "expected_status must be a code, a list of codes, or a class such as '2xx'"
    return None


def _accepted(status: int, expected: Any) -> bool:
    if isinstance(expected, str):
        return str(status)[0] == expected[0]
    if isinstance(expected, list):
        return status in expected
    return status == expected


def _url(url: str, query: Mapping[str, Any] | None) -> str:
    if not query:
        return url
    pairs = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            pairs.append((key, text))
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + joiner + urllib.parse.urlencode(pairs)


def _decode(raw: bytes, content_type: str) -> Any:
    if "json" in content_type:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return raw.decode("utf-8", errors="replace")


async def request(method: str, params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    """aio loop thread: one HTTP request; failures are results, never exceptions."""
    p = with_defaults(params, REQUEST_PARAMETERS)
    method = method.upper()
    if problem := _problem(p, method):
        return StepResult("failed", None, problem)
    url = _url(p["url"], p.get("query"))
    headers = dict(p.get("headers") or {})
    body: bytes | None = None
    if p.get("json") is not None:
        body = orjson.dumps(p["json"])
        headers.setdefault("Content-Type", "application/json")
    elif p.get("body") is not None:
        body = p["body"].encode()
    if body is None and method in ("POST", "PUT"):
        body = b""
    chunks: list[bytes] = []
    size = 0

    def collect(chunk: bytes) -> None:
        nonlocal size
        if size < ctx.output_limit:
            chunks.append(chunk[: ctx.output_limit - size])
        size += len(chunk)

    try:
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(
                url,
                method,
                headers,
                body,
                connect_timeout=p["timeout"],
                request_timeout=p["timeout"],
                allow_nonstandard_methods=True,
                streaming_callback=collect,
            ),
            raise_error=False,
        )
    except HTTPClientError as exc:  # timeouts and the like, code 599
        return StepResult("failed", None, f"{method} {url}: {exc.message}", far_side_failed=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return StepResult("failed", None, f"{method} {url}: {reason}", far_side_failed=True)
    raw = b"".join(chunks)
    decoded = _decode(raw, response.headers.get("Content-Type", ""))
    if size > len(raw):
        decoded = raw.decode("utf-8", errors="replace") + (
            f"\n[body truncated: {size - len(raw)} more bytes not stored]\n"
        )
    output = {
        "status": response.code,
        "headers": {k.lower(): v for k, v in response.headers.get_all()},
        "body": decoded,
    }
    if _accepted(response.code, p["expected_status"]):
        return StepResult("completed", output, variables={"output": output})
    return StepResult(
        "failed",
        output,
        f"{method} {url} answered {response.code} {response.reason}",
        variables={"output": output},
        far_side_failed=response.code >= 500,
    )


def _fixed(method: str) -> Any:
    async def run(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
        return await request(method, params, ctx)

    return run


async def _step(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    return await request(params.get("method") or "GET", params, ctx)


HTTP_STEP = Capability(
    "request", "HTTP request", "Call an HTTP API with any method", STEP_PARAMETERS, _step
)
INTEGRATION = Integration(
    "api",
    "HTTP API",
    "Make HTTP requests to external APIs",
    tuple(
        Capability(
            f"http_{m.lower()}",
            f"HTTP {m}",
            f"Send an HTTP {m} request",
            REQUEST_PARAMETERS,
            _fixed(m),
        )
        for m in METHODS
    ),
)
