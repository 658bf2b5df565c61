"""Process groups that must not outlive the server: what proves a group is the one a step
started, and stopping the groups a dead server left behind.

Every step process starts a group of its own (cli.py). As it starts, the step stores a
`ProcessGroup`: the group id, the leader's start time and the boot id (PIDs are reused;
the pair is not), the host, the server that owns it, and a marker id that is also in the
group's environment (`SYNTHESIS_PROCESS_GROUP`), so the group is still recognised once
its leader is gone. On start the supervisor stops the groups of this host whose server is
gone (`orphans`, `stop_groups`) before any interrupted step runs again.

Linux only (`/proc`); elsewhere nothing is recorded. Blocking calls (`stop_groups`) run on
the supervisor's thread, never on a loop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

MARKER = "SYNTHESIS_PROCESS_GROUP"  # in a step process's environment: its group's record id
_POLL = 0.05  # seconds between looks at /proc while waiting for groups to go
_KILLED_WAIT = 10.0  # seconds a SIGKILLed group may take to go before we give up on it


@dataclass(frozen=True)
class ProcessGroup:
    """A running step's process group as stored (table `step_processes`)."""

    id: str  # the record id, also the MARKER value in the group's environment
    pgid: int
    start_time: str  # the leader's start in clock ticks since boot (/proc/<pid>/stat 22),
    # or "" when the leader was gone before it could be read
    boot_id: str
    host: str
    owner_pid: int  # the server that started it, and that server's own start time
    owner_start: str

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProcessGroup:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


_running: dict[str, int] = {}  # record id: pgid, the groups this process runs now
_refusing = False  # set once this node is fenced: a group that starts now is killed


def track(group: ProcessGroup, running: bool) -> None:
    """Any thread: a step's group started (`running`) or ended."""
    if running:
        _running[group.id] = group.pgid
        if _refusing:
            _signal(group.pgid, signal.SIGKILL)
    else:
        _running.pop(group.id, None)


def refuse_new() -> None:
    """From now on every group this process starts is killed as it is recorded."""
    global _refusing
    _refusing = True


def kill_running() -> int:
    """SIGKILL every group this process runs (a fenced node stops its steps before it
    exits); returns how many."""
    pgids = set(_running.values())
    for pgid in pgids:
        _signal(pgid, signal.SIGKILL)
    return len(pgids)


@dataclass(frozen=True)
class _Proc:
    pid: int
    pgid: int
    start_time: str
    zombie: bool


def host_name() -> str:
    return socket.gethostname()


@functools.cache
def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _stat(pid: int) -> _Proc | None:
    """One process from /proc/<pid>/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()  # the name may hold spaces and ')'
    # fields[0] is field 3 (state), [2] field 5 (pgrp), [19] field 22 (starttime)
    return _Proc(pid, int(fields[2]), fields[19].decode(), fields[0] in (b"Z", b"X"))


def start_time(pid: int) -> str | None:
    proc = _stat(pid)
    return proc.start_time if proc else None


def process_group(record_id: str, pid: int) -> ProcessGroup | None:
    """The record for a group whose leader `pid` just started; None off Linux or when the
    whole group is already gone."""
    boot = boot_id()
    if boot is None:
        return None
    leader = start_time(pid)
    if leader is None:  # the leader ended (and was reaped) at once
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return None  # and nothing is left in its group, nor can anything join it
        except PermissionError:
            pass
        leader = ""  # what it left in its group is known by the marker alone
    owner = _own_start(os.getpid())
    return ProcessGroup(record_id, pid, leader, boot, host_name(), os.getpid(), owner)


@functools.cache
def _own_start(pid: int) -> str:
    """This server's start time (by pid: a forked worker is another process)."""
    return start_time(pid) or ""


def orphans(groups: Iterable[ProcessGroup]) -> list[ProcessGroup]:
    """The groups of this host whose server is gone (a live server stops its own)."""
    here, boot = host_name(), boot_id()
    return [
        g
        for g in groups
        if g.host == here and not (g.boot_id == boot and start_time(g.owner_pid) == g.owner_start)
    ]


def _by_group() -> dict[int, list[_Proc]]:
    groups: dict[int, list[_Proc]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if name.isdigit() and (proc := _stat(int(name))) is not None:
            groups[proc.pgid].append(proc)
    return groups


def _has_marker(pid: int, record_id: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return f"{MARKER}={record_id}".encode() in handle.read().split(b"\0")
    except OSError:
        return False


def _is_it(group: ProcessGroup, members: list[_Proc], before: int) -> bool:
    """Whether the live group `group.pgid` is the one recorded: its leader with the
    recorded start time, or, once the leader is gone, a member carrying the marker, or a
    member (one that dropped its environment: `env -i`, a daemon) started after the leader
    and before this server. (While any process is in a group, its id cannot be reused, so
    one proof is enough; a reused group would need its id to come round again between
    the old server's death and this one's start.)"""
    living = [p for p in members if not p.zombie]
    if not living:
        return False
    for proc in members:
        if proc.pid == group.pgid:
            return proc.start_time == group.start_time
    if any(_has_marker(p.pid, group.id) for p in living):
        return True
    return any(int(group.start_time) <= int(p.start_time) <= before for p in living)


def _signal(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_gone(pgids: set[int], timeout: float) -> set[int]:
    """Wait until no live process is in any of `pgids`; return those still there."""
    deadline = time.monotonic() + timeout
    while True:
        present = _by_group()
        pgids = {p for p in pgids if any(not m.zombie for m in present.get(p, ()))}
        if not pgids or time.monotonic() >= deadline:
            return pgids
        time.sleep(_POLL)


def stop_groups(
    groups: Iterable[ProcessGroup], grace: float, started: str | None = None
) -> list[ProcessGroup]:
    """Stop those of `groups` that are still alive on this boot and provably the recorded
    ones: SIGTERM, SIGKILL after `grace`, then wait until they are gone. A group that
    cannot be proven the same (a reused id) is never signalled. Returns those stopped.
    `started`: when the recovering server started (default: this process)."""
    boot, present = boot_id(), _by_group()
    before = int(started or start_time(os.getpid()) or 0)
    found = [
        g
        for g in groups
        if g.boot_id == boot
        and g.host == host_name()
        and _is_it(g, present.get(g.pgid, []), before)
    ]
    pgids = {g.pgid for g in found}
    for pgid in pgids:
        _signal(pgid, signal.SIGTERM)
    left = _wait_gone(pgids, grace)
    for pgid in left:
        _signal(pgid, signal.SIGKILL)
    if left and (stuck := _wait_gone(left, _KILLED_WAIT)):
        log.error("process groups %s survived SIGKILL", sorted(stuck))
    return found
