"""/health: open to load balancers, and each component really checked."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Any

from synthesis import __version__
from synthesis.actors.messages import Ping
from synthesis.web.base import BaseHandler
from synthesis.web.declare import TEXT, Endpoint, shape

if TYPE_CHECKING:
    from synthesis.runtime import Runtime

CHECK_TIMEOUT = 2.0
COMPONENTS = ("api", "storage", "execution_engine", "event_system", "cluster")
STATE = {"enum": ["healthy", "unhealthy"]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": shape(
        {
            "status": STATE,
            "version": TEXT,
            "uptime": {"type": "integer", "minimum": 0, "description": "Seconds"},
            "components": {
                **shape({name: STATE for name in COMPONENTS}),
                "additionalProperties": STATE,
            },
        }
    )
}


class HealthHandler(BaseHandler):
    endpoints = (
        Endpoint(
            "get",
            "/health",
            "getHealth",
            "System",
            "Each component really checked; open to load balancers",
            ok=(200, "Healthy", "Health"),
            secured=False,
            responses={503: ("Unhealthy", "Health")},
        ),
    )

    async def get(self) -> None:
        runtime = self.runtime
        checks = _CHECKS.get(runtime)
        if checks is None:
            checks = _CHECKS[runtime] = Checks(runtime)
        components = await checks.components()
        healthy = all(state == "healthy" for state in components.values())
        self.send(
            {
                "status": "healthy" if healthy else "unhealthy",
                "version": __version__,
                "uptime": int(time.monotonic() - runtime.started_monotonic),
                "components": components,
            },
            200 if healthy else 503,
        )


class Checks:
    """Each component really checked (a store round trip, the actors pinged with a
    timeout), one check at a time: probes that arrive while a check runs share its
    answer, so many balancers probing at once cost one check, not one each. IOLoop
    thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._running: asyncio.Future[dict[str, str]] | None = None

    async def components(self) -> dict[str, str]:
        if self._running is None:
            self._running = asyncio.ensure_future(self._check())
            self._running.add_done_callback(self._done)
        return dict(await asyncio.shield(self._running))

    def _done(self, _: object) -> None:
        self._running = None

    async def _check(self) -> dict[str, str]:
        runtime = self.runtime

        async def storage() -> object:
            return await runtime.read_quick(runtime.store.ping)

        async def engine() -> object:
            await runtime.bridge.ask(runtime.supervisor, Ping, CHECK_TIMEOUT)
            return await asyncio.wait_for(runtime.aio.ping(), CHECK_TIMEOUT)

        async def events() -> object:
            await runtime.bridge.ask(runtime.bus, Ping, CHECK_TIMEOUT)
            return await runtime.bridge.ask(runtime.subscriptions, Ping, CHECK_TIMEOUT)

        async def cluster() -> object:
            """This node's heartbeat is acknowledged (docs/cluster.md)."""
            keeper = runtime.keeper
            if keeper is None or not keeper.healthy:
                raise RuntimeError("no heartbeat acknowledged lately")
            return True

        names = COMPONENTS[1:]
        checks = (storage, engine, events, cluster)
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), CHECK_TIMEOUT) for check in checks),
            return_exceptions=True,
        )
        components = {"api": "healthy"}
        components.update(
            {
                name: "unhealthy" if isinstance(result, BaseException) else "healthy"
                for name, result in zip(names, results, strict=True)
            }
        )
        return components


_CHECKS: weakref.WeakKeyDictionary[Runtime, Checks] = weakref.WeakKeyDictionary()


default_handlers = [(r"/health", HealthHandler)]
