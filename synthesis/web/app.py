"""The routes, and the Application for a standalone server. An embedding Tornado app
mounts `handlers(runtime, prefix)` next to its own instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.web
from tornado.log import access_log

from synthesis.web import (
    events,
    executions,
    integrations,
    me,
    metrics,
    nodes,
    openapi,
    plans,
    sockets,
    subscriptions,
    system,
    ui,
)
from synthesis.web.base import MAX_HEADER_BYTES, NotFoundHandler

if TYPE_CHECKING:
    from synthesis.runtime import Runtime

MODULES = (
    executions,
    plans,
    integrations,
    subscriptions,
    events,
    sockets,
    system,
    metrics,
    nodes,
    me,
    openapi,
    ui,
)


def handlers(runtime: Runtime, prefix: str = "") -> list[Any]:
    """Synthesis's routes under `prefix` (for example "/synthesis"), for any Application."""
    prefix = prefix.rstrip("/")
    return [
        tornado.web.url(prefix + pattern, handler, {"runtime": runtime, "prefix": prefix})
        for module in MODULES
        for pattern, handler in module.default_handlers
    ]


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, without the query string: `?token=` must never reach a log."""
    status = handler.get_status()
    log = access_log.info if status < 400 else access_log.warning
    if status >= 500:
        log = access_log.error
    took = 1000.0 * handler.request.request_time()
    log(
        "%d %s %s (%s) %.2fms",
        status,
        handler.request.method,
        handler.request.path,
        handler.request.remote_ip,
        took,
    )


def make_app(runtime: Runtime) -> tornado.web.Application:
    return tornado.web.Application(
        handlers(runtime),
        log_function=log_request,
        default_handler_class=NotFoundHandler,
        default_handler_args={"runtime": runtime},
        compress_response=False,
    )


def make_server(runtime: Runtime) -> tornado.httpserver.HTTPServer:
    """The standalone HTTP server. Request lines and headers up to MAX_HEADER_BYTES are
    read, so an overlong URL gets its 414 instead of a dropped connection. Every handler
    of ours sets its own body limit and counts the body itself as it streams in; the
    server-wide limit bounds the others (WebSocket upgrades). A client gets
    `http_idle_timeout_seconds` to send its request head (and to send again on a kept-alive
    connection) and as much between two pieces of its body, so slow or silent clients
    cannot hold connections open forever."""
    idle = runtime.settings.http_idle_timeout_seconds
    return tornado.httpserver.HTTPServer(
        make_app(runtime),
        max_header_size=MAX_HEADER_BYTES,
        max_body_size=runtime.settings.max_body_bytes,
        idle_connection_timeout=idle,
        body_timeout=idle,
    )
