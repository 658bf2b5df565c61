"""Built-in capabilities behind control steps that do I/O-like waiting (`wait`), so they
run as StepActors and get timeouts, retries, pause and cancel like any other step."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from synthesis.engine.schema import seconds
from synthesis.integrations.base import Capability, RunContext, StepResult


async def wait(params: Mapping[str, Any], _ctx: RunContext) -> StepResult:
    await asyncio.sleep(params["seconds"])
    return StepResult("completed")


WAIT = Capability(
    "wait",
    "Wait",
    "Wait a number of seconds",
    {"seconds": seconds("Seconds to wait", required=True, minimum=0)},
    wait,
)
