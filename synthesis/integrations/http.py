"""The HTTP integration (`api`): http_get, http_post, http_put, http_delete, and the `http`
step type, which names the method as a parameter. All of them are one `request` call
through Tornado's AsyncHTTPClient on the aio loop.

`--deny-private-targets` is applied here, for these requests and for webhook callbacks
(actors/subscriptions.py, through integrations/webhook_client.py) alike: names are
resolved, then refused when any address they resolve to is refused by
engine/address_policy.py (`refuse_any`; `GuardedResolver` applies it for Tornado's client).
The connection then uses exactly the addresses that were checked (no second lookup that
DNS rebinding could answer differently), and a redirect goes through the same resolver.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
import weakref
from collections.abc import Mapping
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.netutil import DefaultLoopResolver, Resolver

from synthesis.engine import address_policy
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


class TargetRefused(Exception):
    """The address policy refused where a request would connect; the message says why."""


class GuardedResolver(Resolver):
    """Resolves as the loop does (getaddrinfo in its executor), then refuses the name if
    any address it got is refused by the address policy. aio loop thread."""

    def initialize(self) -> None:
        self._resolver = DefaultLoopResolver()

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        addresses = await self._resolver.resolve(host, port, family)
        refuse_any(host, [sockaddr[0] for _family, sockaddr in addresses])
        return addresses


def refuse_any(host: str, addresses: list[str]) -> None:
    """Raise TargetRefused if the address policy refuses any address `host` resolved to."""
    for address in addresses:
        reason = address_policy.refusal(address)
        if reason is not None:
            raise TargetRefused(address_policy.message(host, address, reason))


def new_client(deny_private: bool, **options: Any) -> AsyncHTTPClient:
    """A client of the caller's own (it closes it), guarded when `deny_private`."""
    if deny_private:
        options["resolver"] = GuardedResolver()
    return AsyncHTTPClient(force_instance=True, **options)


_guarded: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncHTTPClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client(deny_private: bool) -> AsyncHTTPClient:
    """The running loop's shared client for steps and invocations: Tornado's own, or
    one guarded client per loop when `deny_private`."""
    if not deny_private:
        return AsyncHTTPClient()
    loop = asyncio.get_running_loop()
    client = _guarded.get(loop)
    if client is None:
        client = _guarded[loop] = new_client(True)
    return client


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
        response = await shared_client(ctx.deny_private_targets).fetch(
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
    except TargetRefused as exc:  # our own policy, not the far side
        return StepResult("failed", None, f"{method} {url}: {exc}")
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
