"""/metrics: the reference's JSON, or the same figures in the Prometheus text format."""

from __future__ import annotations

import math
import os
import resource
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from synthesis.engine.transitions import (
    CANCELLED,
    COMPLETED,
    CREATED,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    SKIPPED,
)
from synthesis.integrations.room import ProcessRoom
from synthesis.store import metrics as store_metrics
from synthesis.store.cluster import ALIVE
from synthesis.store.database import Store
from synthesis.web.base import ApiHandler
from synthesis.web.declare import Endpoint, Query, choice, shape

# "Recent work": the last RECENT timed executions and steps, newest completed_at first.
RECENT = 1000
# Histogram bucket upper bounds, in milliseconds (the store's unit) and seconds (Prometheus's).
BUCKETS_MS = (10, 50, 100, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 300_000)
BUCKETS_SECONDS = tuple(ms / 1000 for ms in BUCKETS_MS)
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FORMATS = ("json", "prometheus")
FORMAT: Query = choice(
    "format",
    FORMATS,
    "Without it, an Accept header preferring text/plain gives the Prometheus text format",
)


def _counts(*names: str) -> dict[str, Any]:
    return shape({name: {"type": "integer", "minimum": 0} for name in names})


SCHEMAS: dict[str, dict[str, Any]] = {
    "Metrics": shape(
        {
            "executions": _counts("total", "active", "completed", "failed", "cancelled"),
            "steps": _counts("total", "succeeded", "failed"),
            "performance": _counts(
                "average_execution_time_ms",
                "average_step_time_ms",
                "p95_execution_time_ms",
                "p95_step_time_ms",
            ),
            "resource_usage": shape(
                {
                    "memory_mb": {"type": "number", "minimum": 0},
                    "cpu_percent": {"type": "number", "minimum": 0},
                    "open_files": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "File descriptors the process has open",
                    },
                    "open_files_limit": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Its soft limit (raised to the hard limit at start)",
                    },
                }
            ),
            "process_room": shape(
                {
                    "capacity": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Step processes the node that answered runs at once"
                        " at most: its open files limit, less a reserve, over what one holds",
                    },
                    "running": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Step processes starting or running there",
                    },
                    "waiting": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Steps there waiting for room to start their process"
                        " (running steps whose `error` says so)",
                    },
                }
            ),
            "cluster": shape(
                {
                    "nodes_alive": {"type": "integer", "minimum": 0},
                    "nodes_dead": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Listed for an hour after their death",
                    },
                    "node_executions": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Running executions the node that answered owns",
                    },
                }
            ),
        }
    )
}

# One Process for the module: cpu_percent(interval=None) measures from the previous call,
# so each scrape reports the CPU used since the one before (the first since import). The
# lock keeps two scrapes on the read pool from interleaving on its saved CPU times.
_PROCESS = psutil.Process()
_PROCESS.cpu_percent(interval=None)
_PROCESS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Figures:
    snapshot: store_metrics.Snapshot
    rss_bytes: int
    cpu_percent: float
    nodes_alive: int = 1
    nodes_dead: int = 0  # listed for an hour after their death
    node_executions: int = 0  # running executions this node owns
    open_files: int = 0
    open_files_limit: int = 0
    room: tuple[int, int, int] = (0, 0, 0)  # process room: capacity, running, waiting


def collect(store: Store, node_id: str | None = None, room: ProcessRoom | None = None) -> Figures:
    """Blocking: the store's queries and the process's figures. Runs on the read pool."""
    global _PROCESS
    snapshot = store_metrics.snapshot(store, RECENT, BUCKETS_MS)
    nodes = store.list_nodes()
    alive = sum(1 for node in nodes if node["status"] == ALIVE)
    mine = sum(node["executions"] for node in nodes if node["node_id"] == node_id)
    with _PROCESS_LOCK:
        if _PROCESS.pid != os.getpid():  # imported before a fork: measure this process
            _PROCESS = psutil.Process()
            _PROCESS.cpu_percent(interval=None)
        with _PROCESS.oneshot():
            rss = _PROCESS.memory_info().rss
            cpu = _PROCESS.cpu_percent(interval=None)
            files = _PROCESS.num_fds()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    counts = (room.capacity, room.running, room.waiting) if room is not None else (0, 0, 0)
    return Figures(snapshot, rss, cpu, alive, len(nodes) - alive, mine, files, limit, counts)


class MetricsHandler(ApiHandler):
    """GET /metrics (the `read` scope).

    Counts cover every execution and step in the store: `executions.total` is all of them
    in any status, `active` those running or paused (created ones are waiting, not active);
    `steps.total` is every step row in any status (pending ones included), `succeeded` the
    completed ones.

    Times cover recent work: the last 1000 executions and the last 1000 steps that
    completed or failed (cancelled work stopped early and is left out), newest
    `completed_at` first. An execution's time is `completed_at - started_at`; a step's is its
    `duration_ms`. Averages and p95 (nearest rank) are whole milliseconds, 0 when nothing
    has finished yet.

    `memory_mb` is this process's resident set size in MiB; `cpu_percent` is the CPU this
    process used since the previous scrape, as `top` shows it (100 is one core);
    `open_files` its open descriptors and `open_files_limit` its soft limit.
    `process_room`: the step processes this node runs at once at most, those running, and
    the steps waiting for room to start theirs (integrations/room.py).

    `?format=prometheus`, or an Accept header preferring `text/plain` to JSON, gives the
    Prometheus text format (0.0.4). There the duration histograms count every timed
    execution and step ever (so their buckets only grow and `rate()` works), while the
    `_average_seconds` and `_p95_seconds` gauges are the JSON's recent-work figures.
    """

    endpoints = (
        Endpoint(
            "get",
            "/metrics",
            "getMetrics",
            "System",
            "Counts, recent timings and resource use (JSON or Prometheus text)",
            ok=(200, "The figures", "Metrics"),
            query=(FORMAT,),
            text="Prometheus text format 0.0.4",
        ),
    )

    async def get(self) -> None:
        wanted = self.query()["format"]
        if wanted is None:
            wanted = "prometheus" if prefers_text(self.request.headers.get("Accept")) else "json"
        runtime = self.runtime
        figures = await self.read(collect, runtime.store, runtime.node_id, runtime.room)
        self.set_header("Vary", "Accept")
        if wanted == "json":
            self.send(to_json(figures))
        else:
            self.set_header("Content-Type", PROMETHEUS_TYPE)
            self.finish(to_prometheus(figures).encode("utf-8"))


def prefers_text(accept: str | None) -> bool:
    """Whether an Accept header rates text/plain above application/json (ties go to JSON)."""
    if not accept:
        return False
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((media.lower(), q))
    return _quality(ranges, "text/plain") > _quality(ranges, "application/json")


def _quality(ranges: list[tuple[str, float]], media: str) -> float:
    """The q of the most specific range matching `media` (RFC 9110 section 12.5.1)."""
    kind = media.split("/")[0]
    best = (-1, 0.0)
    for given, q in ranges:
        if given == media:
            rank = 2
        elif given == f"{kind}/*":
            rank = 1
        elif given == "*/*":
            rank = 0
        else:
            continue
        if rank > best[0]:
            best = (rank, q)
    return best[1]


# ---- JSON -----------------------------------------------------------------------------


def average(values: Sequence[int]) -> int:
    return round(sum(values) / len(values)) if values else 0


def p95(values: Sequence[int]) -> int:
    """Nearest-rank 95th percentile: the smallest value at or above 95% of them."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def to_json(figures: Figures) -> dict[str, dict[str, int | float]]:
    snap = figures.snapshot
    runs, steps = snap.execution_counts, snap.step_counts
    return {
        "executions": {
            "total": sum(runs.values()),
            "active": runs.get(RUNNING, 0) + runs.get(PAUSED, 0),
            "completed": runs.get(COMPLETED, 0),
            "failed": runs.get(FAILED, 0),
            "cancelled": runs.get(CANCELLED, 0),
        },
        "steps": {
            "total": sum(steps.values()),
            "succeeded": steps.get(COMPLETED, 0),
            "failed": steps.get(FAILED, 0),
        },
        "performance": {
            "average_execution_time_ms": average(snap.recent_execution_ms),
            "average_step_time_ms": average(snap.recent_step_ms),
            "p95_execution_time_ms": p95(snap.recent_execution_ms),
            "p95_step_time_ms": p95(snap.recent_step_ms),
        },
        "resource_usage": {
            "memory_mb": round(figures.rss_bytes / (1024 * 1024), 1),
            "cpu_percent": round(figures.cpu_percent, 1),
            "open_files": figures.open_files,
            "open_files_limit": figures.open_files_limit,
        },
        "process_room": dict(zip(("capacity", "running", "waiting"), figures.room, strict=True)),
        "cluster": {
            "nodes_alive": figures.nodes_alive,
            "nodes_dead": figures.nodes_dead,
            "node_executions": figures.node_executions,
        },
    }


# ---- Prometheus ------------------------------------------------------------------------


def to_prometheus(figures: Figures) -> str:
    snap = figures.snapshot
    runs, steps = snap.execution_counts, snap.step_counts
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(samples)

    family(
        "synthesis_executions_total",
        "counter",
        "Executions that finished, by outcome.",
        (
            _sample("synthesis_executions_total", runs.get(s, 0), status=s)
            for s in (COMPLETED, FAILED, CANCELLED)
        ),
    )
    family(
        "synthesis_executions_active",
        "gauge",
        "Executions running or paused.",
        [_sample("synthesis_executions_active", runs.get(RUNNING, 0) + runs.get(PAUSED, 0))],
    )
    family(
        "synthesis_executions_waiting",
        "gauge",
        "Executions created and not started.",
        [_sample("synthesis_executions_waiting", runs.get(CREATED, 0))],
    )
    family(
        "synthesis_steps_total",
        "counter",
        "Steps that finished, by outcome.",
        (
            _sample("synthesis_steps_total", steps.get(s, 0), status=s)
            for s in (COMPLETED, FAILED, SKIPPED, CANCELLED)
        ),
    )
    family(
        "synthesis_steps_unfinished",
        "gauge",
        "Steps pending or running.",
        (
            _sample("synthesis_steps_unfinished", steps.get(s, 0), status=s)
            for s in (PENDING, RUNNING)
        ),
    )
    for what, histogram, recent in (
        ("execution", snap.execution_histogram, snap.recent_execution_ms),
        ("step", snap.step_histogram, snap.recent_step_ms),
    ):
        name = f"synthesis_{what}_duration_seconds"
        family(
            name,
            "histogram",
            f"Run time of every {what} that completed or failed.",
            _histogram_samples(name, histogram),
        )
        window = f"over the last {RECENT} {what}s that completed or failed"
        family(
            f"synthesis_{what}_duration_average_seconds",
            "gauge",
            f"Average {what} run time {window}.",
            [_sample(f"synthesis_{what}_duration_average_seconds", average(recent) / 1000)],
        )
        family(
            f"synthesis_{what}_duration_p95_seconds",
            "gauge",
            f"95th percentile {what} run time {window}.",
            [_sample(f"synthesis_{what}_duration_p95_seconds", p95(recent) / 1000)],
        )
    family(
        "synthesis_nodes",
        "gauge",
        "Nodes of the cluster on this database, alive or dead (dead ones for an hour).",
        [
            _sample("synthesis_nodes", figures.nodes_alive, status="alive"),
            _sample("synthesis_nodes", figures.nodes_dead, status="dead"),
        ],
    )
    family(
        "synthesis_node_executions",
        "gauge",
        "Running executions this node owns.",
        [_sample("synthesis_node_executions", figures.node_executions)],
    )
    capacity, running, waiting = figures.room
    family(
        "synthesis_process_room",
        "gauge",
        "Step processes this node runs at once at most (from its open files limit).",
        [_sample("synthesis_process_room", capacity)],
    )
    family(
        "synthesis_process_steps_running",
        "gauge",
        "Step processes starting or running on this node.",
        [_sample("synthesis_process_steps_running", running)],
    )
    family(
        "synthesis_steps_waiting_for_room",
        "gauge",
        "Steps on this node waiting for room to start their process.",
        [_sample("synthesis_steps_waiting_for_room", waiting)],
    )
    family(
        "synthesis_open_files",
        "gauge",
        "File descriptors the Synthesis process has open.",
        [_sample("synthesis_open_files", figures.open_files)],
    )
    family(
        "synthesis_open_files_limit",
        "gauge",
        "Its soft limit of open file descriptors.",
        [_sample("synthesis_open_files_limit", figures.open_files_limit)],
    )
    family(
        "synthesis_memory_bytes",
        "gauge",
        "Resident set size of the Synthesis process.",
        [_sample("synthesis_memory_bytes", figures.rss_bytes)],
    )
    family(
        "synthesis_cpu_percent",
        "gauge",
        "CPU used by the Synthesis process since the previous scrape (100 is one core).",
        [_sample("synthesis_cpu_percent", round(figures.cpu_percent, 1))],
    )
    return "\n".join(lines) + "\n"


def _histogram_samples(name: str, histogram: store_metrics.Histogram) -> list[str]:
    samples = [
        _sample(f"{name}_bucket", count, le=repr(bound))
        for bound, count in zip(BUCKETS_SECONDS, histogram.buckets, strict=True)
    ]
    samples.append(_sample(f"{name}_bucket", histogram.count, le="+Inf"))
    samples.append(_sample(f"{name}_sum", histogram.sum_ms / 1000))
    samples.append(_sample(f"{name}_count", histogram.count))
    return samples


def _sample(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
        name = f"{name}{{{inner}}}"
    return f"{name} {_number(value)}"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


default_handlers = [(r"/metrics", MetricsHandler)]
