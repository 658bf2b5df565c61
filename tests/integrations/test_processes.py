"""Process groups on record: proving a group is the one a step started, and stopping the
ones a dead server left behind, with real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from synthesis.integrations import processes
from synthesis.integrations.base import RunContext
from synthesis.integrations.cli import execute_command
from synthesis.integrations.processes import MARKER, ProcessGroup
from tests.support import process_running, wait_until


def start_group(command: str) -> tuple[subprocess.Popen[bytes], ProcessGroup]:
    """A process group of its own, as a step would start it, and its record."""
    record_id = str(uuid.uuid4())
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        env={**os.environ, MARKER: record_id},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    group = processes.process_group(record_id, proc.pid)
    assert group is not None
    return proc, group


@pytest.fixture
def groups() -> list[subprocess.Popen[bytes]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:  # whatever a failing test left behind
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


def test_a_group_whose_leader_has_another_start_time_is_never_signalled(groups) -> None:
    proc, group = start_group("sleep 30")
    groups.append(proc)
    reused = replace(group, start_time=str(int(group.start_time) - 1))  # the same PID, reused

    assert processes.stop_groups([reused], grace=0.2) == []
    assert proc.poll() is None and process_running(proc.pid)


def test_a_recorded_group_gets_term_then_kill(groups) -> None:
    proc, group = start_group("trap '' TERM; echo ready; sleep 30")
    groups.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"

    assert processes.stop_groups([group], grace=0.2) == [group]
    assert proc.wait(5) == -9  # TERM was ignored; the group was killed after the grace


def test_a_group_whose_leader_is_gone_is_found_by_its_marker(groups) -> None:
    proc, group = start_group("sleep 30 & echo $!")
    groups.append(proc)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert proc.wait(5) == 0  # the leader is gone; its child is still in the group
    assert process_running(grandchild)

    stranger = replace(group, id=str(uuid.uuid4()))  # a record this group does not carry
    assert processes.stop_groups([stranger], grace=0.2) == []
    assert process_running(grandchild)

    assert processes.stop_groups([group], grace=0.2) == [group]
    assert not process_running(grandchild)


def test_a_member_that_dropped_its_environment_is_found_by_its_start_time(groups) -> None:
    """`env -i` (or a daemon) leaves no marker: a member started after the recorded leader
    and before the recovering server is the group's; one started later is not proven."""
    proc, group = start_group("env -i /bin/sleep 30 & echo $!")
    groups.append(proc)
    assert proc.stdout is not None
    member = int(proc.stdout.readline())
    assert proc.wait(5) == 0 and process_running(member)  # its leader is gone
    environ = Path(f"/proc/{member}/environ")
    wait_until(lambda: MARKER.encode() not in environ.read_bytes())  # `env` has exec'd
    member_start = int(processes.start_time(member) or 0)

    earlier = str(member_start - 1)  # a server that started before the member did
    assert processes.stop_groups([group], grace=0.2, started=earlier) == []
    assert process_running(member)

    assert processes.stop_groups([group], grace=0.2, started=str(member_start + 100)) == [group]
    assert not process_running(member)


def test_only_groups_of_this_host_whose_server_is_gone_are_orphans() -> None:
    me = processes.process_group("mine", os.getpid())
    assert me is not None
    dead_owner = replace(me, id="dead-owner", owner_start=str(int(me.owner_start) - 1))
    elsewhere = replace(dead_owner, id="elsewhere", host=me.host + ".other")
    other_boot = replace(dead_owner, id="other-boot", boot_id="another-boot")

    found = processes.orphans([me, dead_owner, elsewhere, other_boot])

    assert [g.id for g in found] == ["dead-owner", "other-boot"]


def test_a_step_reports_its_group_while_it_runs_then_clears_it() -> None:
    seen: list[ProcessGroup | None] = []
    ctx = RunContext(on_process=seen.append)
    result = asyncio.run(execute_command({"command": f"echo ${MARKER} $$; sleep 0.3"}, ctx))

    assert result.status == "completed"
    group = seen[0]
    assert group is not None and seen[1:] == [None]
    assert result.output == f"{group.id} {group.pgid}\n"
    assert group.host == processes.host_name() and group.boot_id == processes.boot_id()
    assert (group.owner_pid, group.owner_start) == (os.getpid(), processes.start_time(os.getpid()))
    wait_until(lambda: not process_running(group.pgid))


def test_a_group_whose_leader_ended_at_once_is_kept_by_its_marker(groups) -> None:
    proc, started = start_group("sleep 30 & echo $!")
    groups.append(proc)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.wait(5)  # the leader is reaped before the step could read its start time

    group = processes.process_group(started.id, proc.pid)

    assert group is not None and (group.pgid, group.start_time) == (proc.pid, "")
    assert processes.stop_groups([group], grace=0.2) == [group]
    assert not process_running(child)


def test_a_group_already_empty_is_not_recorded(groups) -> None:
    proc, started = start_group("true")
    groups.append(proc)
    proc.wait(5)
    assert processes.process_group(started.id, proc.pid) is None
