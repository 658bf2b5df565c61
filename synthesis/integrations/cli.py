"""The command-line integration: `execute_command` (run by `sh -c`) and `execute_script`.

Each run gets its own process group. When it ends, is cancelled or times out, the whole
group is stopped (SIGTERM, then SIGKILL after the grace period), so no child or
grandchild outlives its step.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import os
import re
import shlex
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from synthesis.engine.events import new_event_id
from synthesis.engine.schema import Param, seconds, with_defaults
from synthesis.engine.secrets import SECRET_ENV_PREFIX
from synthesis.engine.substitution import as_text
from synthesis.integrations.base import Capability, Integration, RunContext, StepResult
from synthesis.integrations.processes import MARKER, process_group
from synthesis.integrations.room import NO_ROOM, ProcessRoom

# The server's own secrets never reach a user's command (a step gets the named secrets
# it references as SYNTHESIS_SECRET_<NAME> through its parameters, not from here).
_PRIVATE_ENV = (
    "SYNTHESIS_TOKENS",
    "SYNTHESIS_TOKEN_FILE",
    "SYNTHESIS_JWT_SECRET",
    "SYNTHESIS_DATABASE_URL",
    "SYNTHESIS_SECRETS_FILE",
)
_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")
RETRY_FIRST, RETRY_MOST = 0.05, 2.0  # seconds between starts refused for lack of room

_COMMON = {
    "working_directory": Param("string", "The working directory for the command"),
    "env": Param("object", "Extra environment variables", values="string"),
}
COMMAND_PARAMETERS = {
    "command": Param("string", "The command to execute", required=True),
    **_COMMON,
    "timeout": seconds("Timeout in seconds", default=60, minimum=1, type_name="integer"),
}
SCRIPT_PARAMETERS = {
    "script": Param("string", "The script to execute", required=True),
    "interpreter": Param("string", "The script interpreter", default="bash"),
    "working_directory": Param("string", "The working directory for the script"),
    "env": _COMMON["env"],
    "timeout": seconds("Timeout in seconds", default=300, minimum=1, type_name="integer"),
}


class CappedText:
    """Collects decoded output up to a byte limit, then counts what it leaves out."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes, final: bool = False) -> str:
        text = self._decoder.decode(chunk, final)
        room = self._limit - self._size
        if len(chunk) <= room:
            self._parts.append(text)
            self._size += len(chunk)
        else:
            kept = text.encode()[: max(room, 0)].decode("utf-8", errors="ignore")
            self._parts.append(kept)
            self._size += len(kept.encode())
            self._dropped += len(chunk) - len(kept.encode())
        return text

    def text(self) -> str:
        joined = "".join(self._parts)
        if self._dropped:
            joined += f"\n[output truncated: {self._dropped} more bytes not stored]\n"
        return joined


# Linux refuses to start a process (E2BIG) with one environment string over 128 KiB, or
# with arguments and environment together over ARG_MAX (commonly 2 MiB). Variables that
# would pass either are handed over in files instead (see `step_environment`).
ENV_STRING_LIMIT = 128 * 1024  # bytes of "NAME=value" and its NUL (MAX_ARG_STRLEN)
ENV_VARIABLES_BUDGET = os.sysconf("SC_ARG_MAX") // 2  # for SYNTHESIS_VAR_* together


def child_environment(ctx: RunContext, extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment minus its secrets (and, with --run-as, the step user's
    HOME and names), the variables as SYNTHESIS_VAR_*, then the step's own `env`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PRIVATE_ENV and not k.startswith(SECRET_ENV_PREFIX)
    }
    if ctx.run_as is not None:
        env.update(ctx.run_as.environment())
    for name, value in ctx.variables.items():
        env[variable_env_name(name)] = as_text(value)
    env.update(extra)
    return env


def variable_env_name(name: str) -> str:
    return "SYNTHESIS_VAR_" + _ENV_NAME.sub("_", name).upper()


def _env_bytes(key: str, value: str) -> int:
    return len(key.encode()) + len(value.encode()) + 2  # "=" and the NUL


@contextlib.contextmanager
def step_environment(ctx: RunContext, extra: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """`child_environment`, where a variable too big for an environment string, or the
    biggest ones while all of them together pass ENV_VARIABLES_BUDGET, is written to a
    private file (mode 600, the step user's with --run-as) named by
    `SYNTHESIS_VAR_<NAME>_FILE` instead; the files are removed when the step ends."""
    env = child_environment(ctx, extra)
    sizes = {
        key: _env_bytes(key, value)
        for key, value in env.items()
        if key.startswith("SYNTHESIS_VAR_") and key not in extra
    }
    total = sum(sizes.values())
    files: list[str] = []
    try:
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            size = sizes[key]
            if size <= ENV_STRING_LIMIT and total <= ENV_VARIABLES_BUDGET:
                break  # sorted biggest first: the rest fit
            files.append(private_file(env.pop(key), ctx))
            env[key + "_FILE"] = files[-1]
            total -= size
        yield env
    finally:
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def private_file(text: str, ctx: RunContext, prefix: str = "synthesis-var-") -> str:
    """A temporary file holding `text`, readable by the step's user alone (mode 600)."""
    fd, path = tempfile.mkstemp(prefix=prefix)
    try:
        if ctx.run_as is not None:
            os.fchown(fd, ctx.run_as.uid, ctx.run_as.gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return path


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _pump(stream: asyncio.StreamReader, sink: CappedText, name: str, ctx: RunContext) -> None:
    while chunk := await stream.read(65536):
        text = sink.feed(chunk)
        if text:
            ctx.on_output(name, text)
    sink.feed(b"", final=True)


class _ExitWatch(asyncio.subprocess.SubprocessStreamProtocol):
    """Knows when the process itself exits, even while a child it left behind still holds
    the pipes (on Python 3.11, `Process.wait()` also waits for the pipes to close)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def run_process(
    argv: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    timeout: float,
    ctx: RunContext,
) -> StepResult:
    """Run argv in a process group of its own; any coroutine cancellation stops the group.
    The group is reported to `ctx.on_process` while it runs (processes.py). The process
    takes room in `ctx.room` first, waiting while there is none (room.py)."""
    room = ctx.room
    if room is None:
        return await _run_process(argv, cwd, env, timeout, ctx)
    await room.enter(ctx.on_wait)
    try:
        return await _run_process(argv, cwd, env, timeout, ctx)
    finally:
        room.leave()


async def _run_process(
    argv: list[str], cwd: str | None, env: dict[str, str], timeout: float, ctx: RunContext
) -> StepResult:
    """Start the process, trying again while the machine has no room for it (a start
    refused with one of room.NO_ROOM) for up to `timeout`, then supervise it."""
    loop = asyncio.get_running_loop()
    record_id = new_event_id()  # a random UUID, without a system call each time
    options: dict[str, Any] = {}
    env = {**env, MARKER: record_id}
    if ctx.run_as is not None:
        options = ctx.run_as.spawn_options()
        cwd = cwd or ctx.run_as.working_directory()
    deadline, pause = loop.time() + timeout, RETRY_FIRST
    while True:
        spawning = asyncio.ensure_future(
            _start(
                ctx.room,
                lambda: _ExitWatch(loop),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                **options,
            )
        )
        try:
            try:
                transport, watch = await asyncio.shield(spawning)
                break
            except asyncio.CancelledError:
                # Cancelled while starting: asyncio would kill only the leader. Let the
                # start finish, then stop the whole group as any cancelled run does.
                with contextlib.suppress(Exception):
                    transport, watch = await spawning
                    await _stop_group(transport.get_pid(), watch.exited, ctx.kill_grace)
                    transport.close()
                raise
        except FileNotFoundError as exc:
            missing = cwd if cwd and not os.path.isdir(cwd) else exc.filename
            return StepResult("failed", "", f"not found: {missing}")
        except (NotADirectoryError, PermissionError) as exc:
            return StepResult("failed", "", f"cannot run {argv[0]!r}: {exc.strerror}")
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                return StepResult(
                    "failed",
                    "",
                    f"cannot run {argv[0]!r}: the command or its `env` is too big for the "
                    "system (over 128 KiB in one string, or the system's limit in all): pass "
                    "big values through files or through SYNTHESIS_VAR_* variables instead",
                )
            if exc.errno not in NO_ROOM:
                raise
            if ctx.room is not None:
                ctx.room.refused()
            if loop.time() + pause > deadline:
                why = f"timed out after {timeout:g} seconds waiting for room to start"
                return StepResult("failed", "", f"{why}: {exc.strerror}")
            ctx.on_wait(f"waiting for room to start: {exc.strerror}")
            await (ctx.room.pause(pause) if ctx.room is not None else asyncio.sleep(pause))
            pause = min(pause * 2, RETRY_MOST)
    if ctx.room is not None:
        ctx.room.started()
    ctx.on_wait(None)  # no longer waiting, if it was

    group = process_group(record_id, transport.get_pid())
    if group is not None:
        ctx.on_process(group)
    try:
        return await _supervise(transport, watch, timeout, ctx)
    finally:
        if group is not None:
            ctx.on_process(None)


async def _start(
    room: ProcessRoom | None, protocol: Callable[[], _ExitWatch], *argv: str, **options: Any
) -> tuple[asyncio.SubprocessTransport, _ExitWatch]:
    """Start a process, in its turn when there is a room."""
    if room is not None:
        await room.turn()
    return await asyncio.get_running_loop().subprocess_exec(protocol, *argv, **options)


async def _supervise(
    transport: asyncio.SubprocessTransport, watch: _ExitWatch, timeout: float, ctx: RunContext
) -> StepResult:
    """Collect a started process's output until it ends, times out or is cancelled; its
    group is stopped in every case."""
    process = asyncio.subprocess.Process(transport, watch, asyncio.get_running_loop())
    stdout, stderr = CappedText(ctx.output_limit), CappedText(ctx.output_limit)
    assert process.stdout is not None and process.stderr is not None
    pumps = asyncio.gather(
        _pump(process.stdout, stdout, "stdout", ctx), _pump(process.stderr, stderr, "stderr", ctx)
    )
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(watch.exited), timeout)
        except TimeoutError:
            timed_out = True
            await _stop_group(process.pid, watch.exited, ctx.kill_grace)
        # The main process is gone; background children it left behind go too, so the
        # pipes close and nothing outlives the step.
        _signal_group(process.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(pumps, ctx.kill_grace)
        except TimeoutError:  # a process that left the group still holds a pipe
            transport.close()
    except asyncio.CancelledError:
        await asyncio.shield(_stop_group(process.pid, watch.exited, ctx.kill_grace))
        pumps.cancel()
        transport.close()
        raise

    out, err = stdout.text(), stderr.text()
    code = transport.get_returncode()
    variables = {"output": out, "exit_code": code}
    if timed_out:
        return StepResult("failed", out, f"timed out after {timeout:g} seconds", code, variables)
    if code != 0:
        reason = err or f"exited with code {code}"
        return StepResult("failed", out, reason, code, variables)
    return StepResult("completed", out, err or None, code, variables)


async def _stop_group(pgid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the whole group, wait up to `grace` for the leader, then SIGKILL the group."""
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), grace)
    _signal_group(pgid, signal.SIGKILL)
    await exited


async def execute_command(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    p = with_defaults(params, COMMAND_PARAMETERS)
    with step_environment(ctx, p.get("env", {})) as env:
        return await run_process(
            ["/bin/sh", "-c", p["command"]],
            cwd=p.get("working_directory"),
            env=env,
            timeout=p["timeout"],
            ctx=ctx,
        )


async def execute_script(params: Mapping[str, Any], ctx: RunContext) -> StepResult:
    p = with_defaults(params, SCRIPT_PARAMETERS)
    interpreter = shlex.split(p["interpreter"])
    if not interpreter:
        return StepResult("failed", "", "interpreter must not be empty")
    path = private_file(p["script"], ctx, prefix="synthesis-script-")
    try:
        with step_environment(ctx, p.get("env", {})) as env:
            return await run_process(
                [*interpreter, path],
                cwd=p.get("working_directory"),
                env=env,
                timeout=p["timeout"],
                ctx=ctx,
            )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


EXECUTE_COMMAND = Capability(
    "execute_command",
    "Execute Command",
    "Execute a single command",
    COMMAND_PARAMETERS,
    execute_command,
)
EXECUTE_SCRIPT = Capability(
    "execute_script",
    "Execute Script",
    "Execute a multi-line script",
    SCRIPT_PARAMETERS,
    execute_script,
)
INTEGRATION = Integration(
    "cli", "Command Line", "Execute commands on the local system", (EXECUTE_COMMAND, EXECUTE_SCRIPT)
)
