"""What every actor may use, bundled once by the runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from synthesis.actors.aio import AsyncioRunner
from synthesis.actors.messages import Listen
from synthesis.config import Settings
from synthesis.engine.events import Event
from synthesis.engine.secrets import NO_MASK, Masker
from synthesis.integrations.room import ProcessRoom
from synthesis.integrations.run_as import StepUser
from synthesis.store import Store


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    bus: pykka.ActorRef[Any]
    aio: AsyncioRunner
    connections: Any = None  # MCP connections, on the aio loop (integrations/mcp.py)
    step_user: StepUser | None = None  # --run-as
    masker: Masker = NO_MASK  # the server's named secrets (engine/secrets.py)
    disabled: frozenset[str] = frozenset()  # integrations the operator turned off
    node_id: str | None = None  # this server as a node (docs/cluster.md)
    # registers a listener of stored events: the tail on PostgreSQL; None: the bus
    listen_events: Callable[[Callable[[list[Event]], None]], None] | None = None
    gate: Any = None  # the StepGate steps pass before they start (cluster/gate.py)
    room: ProcessRoom | None = None  # room for step processes (integrations/room.py)

    def listen(self, listener: Callable[[list[Event]], None]) -> None:
        """`listener(events)` hears every batch of stored events from now on, in order;
        called on the bus or tail thread, it must not block."""
        if self.listen_events is not None:
            self.listen_events(listener)
        else:
            self.bus.ask(Listen(listener), timeout=self.settings.actor_timeout_seconds)
