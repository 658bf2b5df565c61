"""The cli integration's process handling, run directly on an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import psutil

from synthesis.integrations.base import RunContext
from synthesis.integrations.cli import CappedText, execute_command, execute_script
from tests.support import wait_until


def run(coro):
    return asyncio.run(coro)


def test_streams_output_as_it_comes() -> None:
    seen: list[tuple[str, str, float]] = []
    ctx = RunContext(on_output=lambda stream, text: seen.append((stream, text, time.monotonic())))
    result = run(execute_command({"command": "echo one; sleep 0.3; echo two >&2"}, ctx))
    assert result.status == "completed"
    assert [(s, t) for s, t, _ in seen] == [("stdout", "one\n"), ("stderr", "two\n")]
    assert seen[1][2] - seen[0][2] >= 0.25  # the first chunk arrived before the sleep ended


def test_background_children_do_not_outlive_the_step() -> None:
    result = run(execute_command({"command": "sleep 30 & echo $!"}, RunContext()))
    pid = int(result.output)
    assert result.status == "completed"

    def alive() -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    wait_until(lambda: not alive(), timeout=5)  # killed with the group; gone once reaped


def test_cancel_stops_the_group_with_term_then_kill() -> None:
    async def scenario() -> float:
        ready = asyncio.Event()
        ctx = RunContext(kill_grace=0.3, on_output=lambda _stream, _text: ready.set())
        task = asyncio.ensure_future(
            execute_command({"command": "trap '' TERM; echo ready; sleep 30"}, ctx)
        )
        await asyncio.wait_for(ready.wait(), 10)  # the shell has installed its trap
        began = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - began

    elapsed = run(scenario())
    assert 0.25 <= elapsed < 5  # SIGTERM ignored, SIGKILL after the grace period


def test_a_pipeline_ends_on_sigpipe_as_in_a_terminal() -> None:
    """Python ignores SIGPIPE; a step's process finds it at its default again (Popen's
    restore_signals), or `yes` would write into the closed pipe and complain."""
    result = run(execute_command({"command": "yes | head -n 1"}, RunContext()))
    assert (result.status, result.output, result.error) == ("completed", "y\n", None)


def test_missing_working_directory_is_a_clear_failure() -> None:
    result = run(
        execute_command({"command": "true", "working_directory": "/no/such/dir"}, RunContext())
    )
    assert result.status == "failed"
    assert "/no/such/dir" in result.error


def test_script_with_unknown_interpreter_fails_cleanly() -> None:
    result = run(
        execute_script({"script": "print(1)", "interpreter": "no-such-interp"}, RunContext())
    )
    assert result.status == "failed"
    assert "no-such-interp" in result.error


def test_variables_reach_the_environment_without_shell_quoting() -> None:
    tricky = 'it\'s "quoted" $(not run) `nor this`'
    ctx = RunContext(variables={"msg": tricky, "step-1_output": "x", "n": 5})
    result = run(
        execute_command(
            {
                "command": 'printf "%s|%s|%s" "$SYNTHESIS_VAR_MSG" "$SYNTHESIS_VAR_STEP_1_OUTPUT" '
                '"$SYNTHESIS_VAR_N"'
            },
            ctx,
        )
    )
    assert result.output == f"{tricky}|x|5"


def test_variables_too_big_for_the_environment_come_in_files() -> None:
    """Linux refuses (E2BIG) one environment string over 128 KiB: such a variable (say the
    output of an earlier step) arrives as a file, and small ones stay as they are."""
    big = "x" * 300_000
    ctx = RunContext(variables={"big_output": big, "small": "s"})
    command = (
        'printf "%s|%s|" "${SYNTHESIS_VAR_BIG_OUTPUT-unset}" "$SYNTHESIS_VAR_SMALL"; '
        'f="$SYNTHESIS_VAR_BIG_OUTPUT_FILE"; printf "%s|" "$(stat -c %a "$f")"; '
        'wc -c < "$f"; echo "$f" >&2'
    )
    result = run(execute_command({"command": command}, ctx))
    assert result.status == "completed", result.error
    assert result.output == "unset|s|600|300000\n"
    path = result.error.strip()
    assert not os.path.exists(path)  # removed once the step ended
    script = run(
        execute_script(
            {"script": 'wc -c < "$SYNTHESIS_VAR_BIG_OUTPUT_FILE"', "interpreter": "sh"}, ctx
        )
    )
    assert script.status == "completed" and script.output.strip() == "300000"


def test_a_command_too_big_for_the_system_is_a_clear_failure() -> None:
    result = run(execute_command({"command": "true " + "x" * 200_000}, RunContext()))
    assert result.status == "failed"
    assert "too big for the system" in result.error


def test_capped_text_keeps_the_head_and_counts_the_rest() -> None:
    sink = CappedText(10)
    sink.feed(b"0123456789abc")
    sink.feed(b"def", final=True)
    text = sink.text()
    assert text.startswith("0123456789\n[output truncated: 6 more bytes")


def test_capped_text_never_splits_a_utf8_character() -> None:
    sink = CappedText(4)
    sink.feed("aéé".encode())  # 5 bytes
    assert sink.text().startswith("aé\n")


def test_cancel_while_the_process_is_starting_still_stops_the_group() -> None:
    marker = "37.123"  # a sleep length no other process here uses

    def sleepers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if marker in (proc.info["cmdline"] or []) and proc.info["status"] != "zombie":
                found.append(proc)
        return found

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            execute_command(
                {"command": f"sleep {marker} & sleep {marker}"}, RunContext(kill_grace=0.5)
            )
        )
        turn = loop.create_future()  # one turn of the loop: the spawn has begun, not ended
        loop.call_soon(turn.set_result, None)
        await turn
        began = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - began

    assert asyncio.run(scenario()) < 5
    wait_until(lambda: not sleepers(), timeout=5)
