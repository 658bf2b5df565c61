"""StepActor: one step of one execution. It lives on the aio loop (a LoopActor: no thread
of its own), runs the step's capability there as a task, streams its output to the bus,
and tells its execution how the step ended. It stops as soon as the step is over (rule 9
of docs/architecture.md).
Timeouts and retries belong to the execution, which treats every step type alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pykka

from synthesis.actors import recording
from synthesis.actors.loop_actor import LoopActor
from synthesis.actors.messages import CancelStep, Commit, StepFinished
from synthesis.actors.services import Services
from synthesis.engine import clock
from synthesis.engine.events import STEP_OUTPUT, execution_event
from synthesis.engine.output import LiveOutput, pieces, truncation_marker
from synthesis.engine.secrets import NO_MASK, Masker, OutputMasker
from synthesis.integrations import processes
from synthesis.integrations.base import Capability, RunContext, StepResult
from synthesis.integrations.processes import ProcessGroup

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
        self._live_output: dict[str, LiveOutput] = {}  # per stream
        self._unsent_output: dict[str, list[str]] = {}
        self._unsent_markers: set[str] = set()  # streams whose live output just ran out
        self._output_timer: asyncio.TimerHandle | None = None
        self._process: ProcessGroup | None = None
        self._waiting: str | None = None  # why the step's row says it waits for room
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
        stream every OUTPUT_INTERVAL (more only to keep each within 64 KiB), so a chatty
        command cannot flood the sockets; past the output limit, one marker, then none.
        Secrets are masked first, so the limit counts what is shown."""
        self._admit(stream, self._output_mask.feed(stream, text))

    def _admit(self, stream: str, text: str) -> None:
        """aio loop thread: queue masked output for the next event, within the limit."""
        if not text:
            return
        limit = self._services.settings.output_limit_bytes
        kept, ran_out = self._live_output.setdefault(stream, LiveOutput(limit)).admit(text)
        if kept:
            self._unsent_output.setdefault(stream, []).append(kept)
        if ran_out:
            self._unsent_markers.add(stream)
        if (kept or ran_out) and self._output_timer is None:
            self._output_timer = self.loop.call_later(OUTPUT_INTERVAL, self._flush_output)

    def _flush_output(self) -> None:
        """aio loop thread."""
        if self._output_timer is not None:
            self._output_timer.cancel()
            self._output_timer = None
        pending, self._unsent_output = self._unsent_output, {}
        markers, self._unsent_markers = self._unsent_markers, set()
        limit = self._services.settings.output_limit_bytes
        outputs = [
            (stream, piece, False)
            for stream, chunks in pending.items()
            for piece in pieces("".join(chunks))
        ]
        outputs += [(stream, truncation_marker(stream, limit), True) for stream in sorted(markers)]
        events = tuple(
            execution_event(
                STEP_OUTPUT,
                self._execution_id,
                step_id=self._step_id,
                output=text,
                stream=stream,
                **({"truncated": True} if marker else {}),
            )
            for stream, text, marker in outputs
        )
        if events:
            self._services.bus.tell(Commit(events=events))

    def _on_process(self, group: ProcessGroup | None) -> None:
        """aio loop thread: the step's process group is on record while it runs, so a
        server that dies cannot leave it running unseen (integrations/processes.py)."""
        if group is not None:
            processes.track(group, True)
        elif self._process is not None:
            processes.track(self._process, False)
        if group is not None:
            commit = recording.process_started(
                self._execution_id, self._step_id, group, self._services.node_id
            )
        elif self._process is not None:
            commit = recording.process_ended(self._process.id)
        else:
            return
        self._process = group
        self._services.bus.tell(commit)

    def _on_wait(self, why: str | None) -> None:
        """aio loop thread: while the step waits for room to start its process, its
        `error` says so (it is `running`: its timeout counts); cleared once it started."""
        if why == self._waiting:
            return
        self._waiting = why
        self._services.bus.tell(recording.waiting(self._execution_id, self._step_id, why))

    async def _run(self) -> None:
        """aio loop thread: run the capability and always report back."""
        settings = self._services.settings
        ctx = RunContext(
            variables=self._variables,
            on_output=self._on_output,
            output_limit=settings.output_limit_bytes,
            kill_grace=settings.kill_grace_seconds,
            connections=self._services.connections,
            on_process=self._on_process,
            run_as=self._services.step_user,
            deny_private_targets=settings.deny_private_targets,
            room=self._services.room,
            on_wait=self._on_wait,
        )
        try:
            if self._services.gate is not None:
                await self._services.gate.passed()  # held while this node may be replaced
            result = (await self._capability.run(self._parameters, ctx)).within_depth()
        except asyncio.CancelledError:
            result = StepResult("cancelled", None, "cancelled")
        except Exception as exc:  # a bug in a capability must not leave the step running
            result = StepResult("failed", None, f"{type(exc).__name__}: {exc}")
        self._on_wait(None)  # a step stopped while it waited says so no more
        for stream, text in self._output_mask.drain():
            self._admit(stream, text)
        self._flush_output()  # the last output is stored before the step's end
        with contextlib.suppress(pykka.ActorDeadError):  # a crashed execution hears nothing
            self._parent.tell(
                StepFinished(
                    self._step_id, result, self._started_at, clock.now(), self._interrupted
                )
            )
            self.stop()
