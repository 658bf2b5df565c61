"""The routes, and the Application for a standalone server. An embedding Tornado app
mounts `handlers(runtime, prefix)` next to its own instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.web

from synthesis.web import (
    events,
    executions,
    integrations,
    metrics,
    openapi,
    plans,
    sockets,
    subscriptions,
    system,
)
from synthesis.web.base import NotFoundHandler

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
    openapi,
)


def handlers(runtime: Runtime, prefix: str = "") -> list[Any]:
    """Synthesis's routes under `prefix` (for example "/synthesis"), for any Application."""
    prefix = prefix.rstrip("/")
    return [
        tornado.web.url(prefix + pattern, handler, {"runtime": runtime})
        for module in MODULES
        for pattern, handler in module.default_handlers
    ]


def make_app(runtime: Runtime) -> tornado.web.Application:
    return tornado.web.Application(
        handlers(runtime),
        default_handler_class=NotFoundHandler,
        default_handler_args={"runtime": runtime},
        compress_response=False,
    )
