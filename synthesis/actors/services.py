"""What every actor may use, bundled once by the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka

from synthesis.actors.aio import AsyncioRunner
from synthesis.config import Settings
from synthesis.engine.secrets import NO_MASK, Masker
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
