"""Sampling profiles of a running server with py-spy, summarized where the time goes.

`record` attaches `py-spy record` (from PyPI: `pip install py-spy`) to a process for some
seconds and writes its raw collapsed stacks; `summarize` reads them and says, of the
samples where a thread was busy (its innermost frame is not a wait: `select`, a
condition or queue wait), how they split over threads and which functions they were in
(inclusive: a function counts once per sample it is anywhere on the stack).

    python benchmarks/profile.py RAW_FILE [--top 40] [--match synthesis/]

prints the summary of a raw file; `run.py --profile S` records the server during the
scenario and adds the summary to its result line.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 100  # samples per second
IDLE_LEAVES = (
    "select (selectors.py",
    "Condition.wait",
    "Event.wait",
    "Queue.get",
    "_worker (concurrent/futures/thread.py",
    "Connection.wait (psycopg/connection.py",
)


# Where a busy sample goes, the first that matches a frame of its stack (run.py's runs).
BUCKETS = {
    "process starts": ("BaseEventLoop.subprocess_exec",),
    "store writes": ("Store.apply",),
    "cross-thread wake-ups": ("call_soon_threadsafe", "_read_from_self"),
    "HTTP requests": ("RequestHandler._execute", "HTTP1Connection", "BaseIOStream"),
    "store reads": ("_WorkItem.run",),
    "step coroutines (pipes, exits, timers)": (
        "_UnixReadPipeTransport",
        "ChildWatcher",
        "SubprocessStreamProtocol",
        "execute_command",
    ),
    "execution actors": ("ExecutionActor.", "ExecutionSupervisor."),
    "step actors": ("StepActor.", "pykka/_actor.py"),
}


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` into `out` (py-spy's raw format); wait on the
    returned process before reading `out`."""
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    argv = [tool, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(RATE)]
    argv += ["--format", "raw", "--threads", "--nonblocking", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(text: str) -> str:
    """`Class.method (package/module.py:12)` -> `Class.method (package/module.py)`."""
    text = re.sub(r" \(/.*?([^/]+/[^/]+\.py)", r" (\1", text)
    return re.sub(r":\d+\)$", ")", text)


def summarize(raw: Path, top: int = 25, match: str = "") -> dict[str, Any]:
    """Busy cores, each thread's share of the busy samples, and the `top` functions by
    inclusive share (only those containing `match`, when given)."""
    samples = busy = 0
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, n = stack.split(";"), int(count)
        samples += n
        if any(idle in frames[-1] for idle in IDLE_LEAVES):
            continue
        busy += n
        threads[re.sub(r"thread \(\d+\): ", "", frames[0]).strip()] += n
        for name in {_frame(f) for f in frames[1:]}:
            if match in name:
                inclusive[name] += n
        buckets[_bucket(stack)] += n
    share = 100 / busy if busy else 0
    return {
        "samples": samples,
        "busy_samples": busy,
        "threads_pct": {name: round(n * share, 1) for name, n in threads.most_common()},
        "buckets_pct": {name: round(n * share, 1) for name, n in buckets.most_common()},
        "top_pct": {name: round(n * share, 1) for name, n in inclusive.most_common(top)},
    }


def _bucket(stack: str) -> str:
    for name, marks in BUCKETS.items():
        if any(mark in stack for mark in marks):
            return name
    return "the loops themselves, and the rest"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="a file written by py-spy record --format raw")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="only functions whose name contains this")
    args = parser.parse_args()
    summary = summarize(args.raw, args.top, args.match)
    print(f"{summary['busy_samples']} busy of {summary['samples']} samples")
    for section in ("threads_pct", "buckets_pct", "top_pct"):
        print(f"--- {section}")
        for name, pct in summary[section].items():
            print(f"{pct:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
