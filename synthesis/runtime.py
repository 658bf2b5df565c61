"""The Runtime builds and wires everything: store, event bus, aio loop, supervisor, and the
web routes. It starts them in order and stops them in reverse. A Tornado application that
embeds Synthesis holds one Runtime, started on its own IOLoop:

    runtime = Runtime(Settings(tokens=("secret",)))
    await runtime.start()
    app = tornado.web.Application([*my_routes, *runtime.handlers("/synthesis")])
    ...
    await runtime.stop()
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pykka

from synthesis.actors.aio import AsyncioRunner
from synthesis.actors.bridge import Bridge, Reply
from synthesis.actors.bus import EventBus
from synthesis.actors.messages import Commit, Listen, Shutdown
from synthesis.actors.services import Services
from synthesis.actors.subscriptions import SubscriptionSupervisor
from synthesis.actors.supervisor import ExecutionSupervisor
from synthesis.auth import Authenticator
from synthesis.config import ConfigError, Settings
from synthesis.engine import clock
from synthesis.engine.secrets import Masker
from synthesis.integrations import disabled_integrations
from synthesis.integrations.mcp import McpConnections
from synthesis.integrations.run_as import StepUser
from synthesis.store import Pruned, Store
from synthesis.web.hub import EventHub

log = logging.getLogger(__name__)
T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.disabled = disabled_integrations(settings.integrations)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.masker = Masker(settings.secret_values)  # tokens too: a step may print them
        self.auth = Authenticator(
            settings.tokens, settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience
        )
        self.step_user = StepUser.lookup(settings.run_as) if settings.run_as else None
        self.store = Store(settings.database)
        self.aio = AsyncioRunner()
        self.connections = McpConnections()  # used on the aio loop only
        self.started_monotonic = time.monotonic()
        self.node_id = str(uuid.uuid4())  # new at every start (docs/cluster.md)
        self._read_pool = ThreadPoolExecutor(4, thread_name_prefix="synthesis-read")
        self.bus: pykka.ActorRef[Any]
        self.supervisor: pykka.ActorRef[Any]
        self.subscriptions: pykka.ActorRef[Any]  # webhook subscriptions
        self.bridge: Bridge
        self._retention: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start on the running IOLoop: store, aio loop, bus, supervisor. IOLoop thread."""
        self.bridge = Bridge(asyncio.get_running_loop(), self.settings.actor_timeout_seconds)
        self.store.hold()  # a SQLite file is one server's: a second one is refused
        await self.read(self.store.create_tables)
        node = {"id": self.node_id, "host": socket.gethostname(), "port": self.settings.port}
        await self.read(self.store.register_node, {**node, "pid": os.getpid()})
        self.aio.start()
        self.bus = EventBus.start(self.store)
        self.hub = EventHub(asyncio.get_running_loop())
        self.bus.tell(Listen(self.hub.bus_listener()))
        services = Services(
            self.settings,
            self.store,
            self.bus,
            self.aio,
            self.connections,
            self.step_user,
            self.masker,
            self.disabled,
        )
        self.subscriptions = SubscriptionSupervisor.start(services)
        self.supervisor = ExecutionSupervisor.start(services)
        if self.settings.retention_days is not None or self.settings.retention_events is not None:
            self._retention = asyncio.get_running_loop().create_task(self._prune_forever())
        log.info("synthesis runtime started on %s", self.store.dialect)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting work, let running steps finish for `grace` seconds, stop them,
        store everything, then stop in reverse order. IOLoop thread."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._retention is not None:
            self._retention.cancel()
        limit = grace + self.settings.kill_grace_seconds + 10
        try:
            await self.bridge.ask(self.supervisor, lambda reply: Shutdown(grace, reply), limit)
        except Exception:
            log.exception("executions did not drain in time")
        loop = asyncio.get_running_loop()
        closing = asyncio.run_coroutine_threadsafe(self.connections.close_all(), self.aio.loop)
        try:
            await asyncio.wait_for(asyncio.wrap_future(closing), 10)
        except Exception:
            log.exception("MCP connections did not close in time")
        # the bus stores what it holds (deliveries recorded at the last moment too), then stops
        for actor in (self.supervisor, self.subscriptions, self.bus):
            await loop.run_in_executor(None, actor.stop)
        await loop.run_in_executor(None, self.aio.stop)
        self._read_pool.shutdown(wait=True)
        self.store.close()
        log.info("synthesis runtime stopped")

    async def _prune_forever(self) -> None:
        """IOLoop thread: retention, in small steps through the bus, so nothing waits long."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.retention_interval_seconds)
            older_than = None
            if settings.retention_days is not None:
                cutoff = datetime.now(UTC) - timedelta(days=settings.retention_days)
                older_than = clock.format_time(cutoff)
            prune = Pruned(older_than, settings.retention_events)
            try:
                await self.bridge.ask(
                    self.bus, lambda reply, p=prune: Commit(changes=(p,), on_stored=reply)
                )
            except Exception:
                log.exception("pruning old events failed; trying again later")

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call on the read pool. IOLoop thread."""
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    async def ask_supervisor(self, make_message: Callable[[Reply], Any]) -> Any:
        return await self.bridge.ask(self.supervisor, make_message)

    def handlers(self, prefix: str = "") -> list[Any]:
        from synthesis.web.app import handlers

        return handlers(self, prefix)
