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
import contextlib
import logging
import os
import random
import socket
import threading
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
from synthesis.actors.messages import (
    Commit,
    ExecutionsCompleted,
    LookForAnswers,
    LookForRequests,
    LookForWork,
    Shutdown,
    Tick,
)
from synthesis.actors.services import Services
from synthesis.actors.subscriptions import SubscriptionSupervisor
from synthesis.actors.supervisor import ExecutionSupervisor
from synthesis.auth import Authenticator
from synthesis.cluster.gate import StepGate
from synthesis.cluster.node import NodeKeeper
from synthesis.cluster.tail import EventTail
from synthesis.config import ConfigError, Settings
from synthesis.engine import clock
from synthesis.engine.errors import ApiError
from synthesis.engine.events import EXECUTION_COMPLETED, Event
from synthesis.engine.secrets import Masker
from synthesis.integrations import disabled_integrations, processes, room
from synthesis.integrations.mcp import McpConnections
from synthesis.integrations.room import ProcessRoom
from synthesis.integrations.run_as import StepUser
from synthesis.store import Pruned, Store, cluster
from synthesis.web.hub import EventHub
from synthesis.web.read_lane import ReadLane

log = logging.getLogger(__name__)
T = TypeVar("T")
TICK_SECONDS = 0.5


FENCED_EXIT = 3  # the exit status of a node that was declared dead


def exit_fenced(reason: str) -> None:
    """What a fenced node does by default: its steps stop and the process exits at once
    (a new node may start in its place; docs/cluster.md)."""
    processes.refuse_new()  # a step starting on another thread meanwhile is killed too
    killed = processes.kill_running()
    log.critical("this node is fenced (%s): killed %d step process groups, exiting", reason, killed)
    logging.shutdown()
    os._exit(FENCED_EXIT)


def process_room() -> ProcessRoom:
    """Raise the soft open files limit to the hard one and size the room for step
    processes from it (integrations/room.py); says so once in the log."""
    before, limit = room.raise_open_files_limit()
    capacity = room.room_for(limit)
    raised = f" (raised from {before})" if limit > before else ""
    log.info("open files limit %d%s: room for %d step processes at once", limit, raised, capacity)
    return ProcessRoom(capacity, f"open files limit {limit}")


class Runtime:
    def __init__(self, settings: Settings, on_fenced: Callable[[str], None] = exit_fenced) -> None:
        self.settings = settings
        self.on_fenced = on_fenced
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
        self._read_pool_closed = False  # once stopped, reads answer `unavailable`
        self._lane: ReadLane | None = None  # short reads by key, in batches (set at start)
        self.bus: pykka.ActorRef[Any]
        self.supervisor: pykka.ActorRef[Any]
        self.subscriptions: pykka.ActorRef[Any]  # webhook subscriptions
        self.bridge: Bridge
        self._retention: asyncio.Task[None] | None = None
        self._ticking: asyncio.Task[None] | None = None
        self.keeper: NodeKeeper | None = None
        self._stopping = False
        self.tail: EventTail | None = None
        self.room: ProcessRoom | None = None  # set at start

    @property
    def clustered(self) -> bool:
        """On PostgreSQL every server is a node of the cluster on that database."""
        return self.store.dialect == "postgresql"

    async def start(self) -> None:
        """Start on the running IOLoop: store, node, aio loop, bus, event source,
        supervisors, then the node's heartbeat and tail. IOLoop thread."""
        loop = asyncio.get_running_loop()
        self.bridge = Bridge(loop, self.settings.actor_timeout_seconds)
        self._lane = ReadLane(loop)
        self.store.hold()  # a SQLite file is one server's: a second one is refused
        await self.read(self.store.create_tables)
        node = {"id": self.node_id, "host": socket.gethostname(), "port": self.settings.port}
        await self.read(self.store.register_node, {**node, "pid": os.getpid()})
        if self.clustered:
            self.store.node_id = self.node_id  # every write proves this node is alive
        else:  # the file lock proves we are alone: earlier servers' work is ours
            await self.read(self.store.coordinate, cluster.fence_all_but, self.node_id)
        self.room = process_room()
        self.aio.start()
        self.gate = StepGate(self.aio.loop, lambda: self.keeper is None or self.keeper.fresh())
        self.bus = EventBus.start(self.store, self.on_fenced)
        self.hub = EventHub(loop)
        if self.clustered:
            self.tail = EventTail(
                self.store,
                on_work=self._look_for_work,
                on_control=lambda: self._tell_supervisor(LookForRequests()),
                on_answer=lambda: self._tell_supervisor(LookForAnswers()),
                on_subscriptions=lambda: self._tell(self.subscriptions, LookForWork()),
            )
        services = Services(
            self.settings,
            self.store,
            self.bus,
            self.aio,
            self.connections,
            self.step_user,
            self.masker,
            self.disabled,
            node_id=self.node_id,
            listen_events=self.tail.listen if self.tail is not None else None,
            gate=self.gate,
            room=self.room,
        )
        services.listen(self.hub.bus_listener())
        self.subscriptions = SubscriptionSupervisor.start(services)
        self.supervisor = ExecutionSupervisor.start(services)
        if self.tail is not None:
            self.tail.listen(self._children_ended)
            self.tail.start()
        self.keeper = NodeKeeper(
            self.store,
            self.node_id,
            self.settings,
            on_fenced=self.on_fenced,
            on_hold=lambda held: self.gate.set_open(not held),
            engine_alive=self._engine_alive,
        )
        self.keeper.start()
        self._ticking = loop.create_task(self._tick_forever())
        if self.settings.retention_days is not None or self.settings.retention_events is not None:
            self._retention = loop.create_task(self._prune_forever())
        log.info("synthesis runtime started on %s as node %s", self.store.dialect, self.node_id)

    def _engine_alive(self) -> bool:
        """Watchdog thread: the actors that run this node's work are alive (or it is
        stopping them)."""
        actors = (self.bus, self.supervisor, self.subscriptions)
        return self._stopping or all(actor.is_alive() for actor in actors)

    # ---- the cluster's wake-ups (tail thread) and polls (IOLoop) -------------------------

    def _tell(self, actor: pykka.ActorRef[Any], message: object) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            actor.tell(message)

    def _tell_supervisor(self, message: object) -> None:
        self._tell(self.supervisor, message)

    def _look_for_work(self) -> None:
        """Tail thread: a small random delay, so one wake-up does not send every node
        to claim the same rows at the same instant."""
        timer = threading.Timer(random.uniform(0, 0.05), self._tell_supervisor, (LookForWork(),))
        timer.daemon = True
        timer.start()

    def _children_ended(self, events: list[Event]) -> None:
        """Tail thread: executions that ended, perhaps on another node."""
        ended = tuple(e.execution_id for e in events if e.type == EXECUTION_COMPLETED)
        if ended:
            self._tell_supervisor(ExecutionsCompleted(ended))  # type: ignore[arg-type]

    async def _tick_forever(self) -> None:
        """IOLoop thread: the polls behind the wake-ups (claims, control requests and
        answers, subscription leases)."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._tell_supervisor(Tick())
            self._tell(self.subscriptions, Tick())

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting work, let running steps finish for `grace` seconds, stop them,
        store everything, then stop in reverse order. IOLoop thread."""
        self._stopping = True
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        for task in (self._retention, self._ticking):
            if task is not None:
                task.cancel()
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
        for actor in (self.supervisor, self.subscriptions):
            await loop.run_in_executor(None, actor.stop)
        if self.tail is not None:  # the drain's last events reached this node's sockets
            await loop.run_in_executor(None, self.tail.stop)
        await loop.run_in_executor(None, self.bus.stop)
        if self.keeper is not None:  # first: once it has left, a heartbeat would be refused
            await loop.run_in_executor(None, self.keeper.stop)
        try:  # what it still owns goes to the other nodes at once (or the next start)
            await self.read(self.store.coordinate, cluster.leave, self.node_id)
        except Exception:
            log.exception("could not hand this node's work over; the others will in time")
        await loop.run_in_executor(None, self.aio.stop)
        self._read_pool_closed = True
        self._read_pool.shutdown(wait=True)
        if self._lane is not None:
            await loop.run_in_executor(None, self._lane.close)
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
        """Run a blocking store call on the read pool. IOLoop thread. Once the runtime
        has stopped (a request still open on a kept-alive connection during the drain),
        the answer is `unavailable` (503), never an internal error."""
        if self._read_pool_closed:
            raise ApiError("unavailable", "the server is stopping: try again")
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    async def read_quick(self, fn: Callable[..., T], *args: Any) -> T:
        """`read` for a short read asked many times a second (a row by its key): on the
        read lane, in batches (web/read_lane.py). IOLoop thread."""
        if self._read_pool_closed or self._lane is None:
            raise ApiError("unavailable", "the server is stopping: try again")
        return await self._lane.submit(fn, *args)

    async def ask_supervisor(self, make_message: Callable[[Reply], Any]) -> Any:
        return await self.bridge.ask(self.supervisor, make_message)

    def handlers(self, prefix: str = "") -> list[Any]:
        from synthesis.web.app import handlers

        return handlers(self, prefix)
