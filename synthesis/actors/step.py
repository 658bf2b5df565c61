"""StepActor: one step of one execution. It lives on the aio loop (a LoopActor: no thread
of its own), runs the step's capability there as a task, streams its output to the bus,
and tells its execution how the step ended. It stops as soon as the step is over (rule 9).
Timeouts and retries belong to the execution, which treats every step type alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pykka

from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.messages import CancelStep, Commit, StepFinished
from synthesis.actors.services import Services
from synthesis.engine import clock
from synthesis.engine.events import STEP_OUTPUT, execution_event
from synthesis.engine.secrets import NO_MASK, Masker, OutputMasker
from synthesis.integrations.base import Capability, RunContext, StepResult

OUTPUT_INTERVAL = 0.05  # seconds


class StepActor(LoopActor):
    def __init__(
        self,
        services: Services,
        parent: pykka.ActorRef[Any],
        execution_id: str | None,  # None for a direct invocation
        step_id: str,
        capability: Capability,
        parameters: Mapping[str, Any],
        variables: Mapping[str, Any],
        masker: Masker = NO_MASK,
    ) -> None:
        super().__init__()
        self.loop = services.aio.loop
        self._services = services
        self._parent = parent
        self._execution_id = execution_id
        self._step_id = step_id
        self._capability = capability
        self._parameters = parameters
        self._variables = variables
        self._started_at = clock.now()
        self._interrupted = False
        self._task: asyncio.Task[None] | None = None
        self._unsent_output: dict[str, list[str]] = {}
        self._output_timer: asyncio.TimerHandle | None = None
        self._output_mask = OutputMasker(masker)  # live output shows no secret either

    def on_start(self) -> None:
        """aio loop thread."""
        self._task = self.loop.create_task(self._run())

    def on_receive(self, message: object) -> None:
        """aio loop thread."""
        if isinstance(message, CancelStep) and self._task is not None:
            self._interrupted = message.interrupted
            self._task.cancel()

    def on_failure(self, *_exc_info: object) -> None:
        """Rule 6: a step actor that dies still tells its execution how the step ended."""
        result = StepResult("failed", None, "internal error while running the step")
        self._parent.tell(StepFinished(self._step_id, result, self._started_at, clock.now()))

    def _on_output(self, stream: str, text: str) -> None:
        """aio loop thread. Output is coalesced: at most one `step_output` event per
        stream every OUTPUT_INTERVAL, so a chatty command cannot flood the sockets."""
        text = self._output_mask.feed(stream, text)
        if not text:
            return
        self._unsent_output.setdefault(stream, []).append(text)
        if self._output_timer is None:
            self._output_timer = self.loop.call_later(OUTPUT_INTERVAL, self._flush_output)

    def _flush_output(self) -> None:
        """aio loop thread."""
        if self._output_timer is not None:
            self._output_timer.cancel()
            self._output_timer = None
        pending, self._unsent_output = self._unsent_output, {}
        events = tuple(
            execution_event(
                STEP_OUTPUT,
                self._execution_id,
                step_id=self._step_id,
                output="".join(chunks),
                stream=stream,
            )
            for stream, chunks in pending.items()
        )
        if events:
            self._services.bus.tell(Commit(events=events))

    async def _run(self) -> None:
        """aio loop thread: run the capability and always report back."""
        settings = self._services.settings
        ctx = RunContext(
            variables=self._variables,
            on_output=self._on_output,
            output_limit=settings.output_limit_bytes,
            kill_grace=settings.kill_grace_seconds,
            connections=self._services.connections,
        )
        try:
            result = await self._capability.run(self._parameters, ctx)
        except asyncio.CancelledError:
            result = StepResult("cancelled", None, "cancelled")
        except Exception as exc:  # a bug in a capability must not leave the step running
            result = StepResult("failed", None, f"{type(exc).__name__}: {exc}")
        for stream, text in self._output_mask.drain():
            self._unsent_output.setdefault(stream, []).append(text)
        self._flush_output()  # the last output is stored before the step's end
        with contextlib.suppress(pykka.ActorDeadError):  # a crashed execution hears nothing
            self._parent.tell(
                StepFinished(
                    self._step_id, result, self._started_at, clock.now(), self._interrupted
                )
            )
            self.stop()
