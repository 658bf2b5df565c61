"""Benchmark Synthesis event delivery: WebSocket fan-out against a bare Tornado broadcaster,
webhook throughput to a loopback receiver, and step-output coalescing.

    python benchmarks/events.py [--scenario fanout|webhook|chatty|all] [--clients N]
        [--rate R] [--seconds S] [--runs K] [--types notification|all] [--client raw|tornado]
        [--events M] [--subscriptions W] [--lines L] [--iteration-overhead S]

Each run starts a real `synthesis serve` (see run.py) with a fresh data dir and token. Events
come from executions of `notify` steps in a loop (with a `wait` between them to set the
rate). Clients run in this process on one asyncio loop (a minimal WebSocket client by
default: tornado's costs ~50 us per message here); each delivery's latency is its
receive time minus the event's `timestamp` (the server's clock, ms resolution). Server CPU
is read with psutil at the edges of each measured window. One JSON line per scenario and
run goes to stdout, then (with --runs > 1) a summary line of medians; progress to stderr.
Exits 1 if anything was lost, closed, failed or errored, or a server did not exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import tornado.web
import tornado.websocket
from tornado.ioloop import PeriodicCallback

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import (
    TERMINAL,
    Api,
    Problems,
    Sampler,
    Server,
    free_port,
    percentiles,
)

ITERATION_OVERHEAD = 0.001  # s an engine loop iteration takes beyond its `wait` (measured)
PER_EXECUTION_RATE = 20.0  # notifications/s one generator execution emits
CONNECT_BATCH = 100  # WebSocket handshakes in flight at once
SETTLE_SECONDS = 0.3  # after the last delivery, before reading CPU
DRAIN_SECONDS = 15.0  # how long deliveries may trail the end of generation
TARGET_CPU_RATIO = 1.5  # issue 13 (was 2.0)
TARGET_P99_MS = 100.0


# --- small helpers ---------------------------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def iso_ms(moment: float) -> str:
    """A time.time() value in the server's timestamp format (UTC, ms, Z)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    return f"{whole}.{int(moment * 1000) % 1000:03d}Z"


class Clock:
    """Parses event timestamps once each (many clients see the same one)."""

    def __init__(self) -> None:
        self.cache: dict[str, float] = {}

    def epoch(self, stamp: str) -> float:
        value = self.cache.get(stamp)
        if value is None:
            value = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            self.cache[stamp] = value
        return value


def latency_summary(values: list[float]) -> dict[str, float | None]:
    return {**percentiles(values), "max": round(max(values), 1) if values else None}


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- event generation on the server ----------------------------------------------------


@dataclass(frozen=True)
class Generator:
    """P executions, each a loop of K `notify` steps, `interval` apart, started 1/R apart
    so that together they emit about R notifications/s."""

    executions: int
    count: int
    interval: float
    rate: float

    @classmethod
    def for_rate(
        cls, rate: float, seconds: float, overhead: float = ITERATION_OVERHEAD
    ) -> Generator:
        """`overhead`: what an iteration takes beyond its `wait` on this box, now."""
        executions = max(1, math.ceil(rate / PER_EXECUTION_RATE))
        interval = max(0.0, executions / rate - overhead)
        return cls(executions, max(1, round(seconds * rate / executions)), interval, rate)

    @classmethod
    def burst(cls, events: int, executions: int = 4) -> Generator:
        """As fast as the engine goes: notify steps and no wait."""
        return cls(executions, max(1, math.ceil(events / executions)), 0.0, 0.0)

    @property
    def total(self) -> int:
        return self.executions * self.count

    def body(self, tag: str) -> dict[str, Any]:
        steps: list[dict[str, Any]] = [
            {"id": "n", "type": "notify", "parameters": {"message": "i ${index}"}}
        ]
        if self.interval > 0:
            steps.append({"id": "w", "type": "wait", "parameters": {"seconds": self.interval}})
        loop = {"count": self.count, "max_iterations": self.count, "steps": steps}
        return {
            "plan": {
                "name": "bench-events",
                "steps": [{"id": "l", "type": "loop", "parameters": loop}],
            },
            "metadata": {"tags": [tag]},
            "start": True,
        }


async def call(api: Api, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """An Api call off the event loop, so the clients keep reading meanwhile."""
    return await asyncio.to_thread(api.call, method, path, body)


async def generate(api: Api, gen: Generator, problems: Problems, timeout: float) -> int:
    """Start the executions (staggered), wait until all have ended; returns how many
    completed."""
    tag = f"bench-events-{uuid.uuid4().hex[:8]}"
    ids: list[str] = []
    start = time.monotonic()
    for index in range(gen.executions):
        if gen.rate > 0:
            await asyncio.sleep(max(0.0, start + index / gen.rate - time.monotonic()))
        status, data = await call(api, "POST", "/api/executions", gen.body(tag))
        if status != 201 or not isinstance(data, dict):
            problems.add(f"POST /api/executions -> {status}: {data}")
            continue
        ids.append(data["execution_id"])
    deadline = time.monotonic() + timeout
    completed = 0
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        still = []
        for execution_id in pending:
            status, data = await call(api, "GET", f"/api/executions/{execution_id}")
            state = data.get("status") if isinstance(data, dict) else None
            if state not in TERMINAL:
                still.append(execution_id)
            elif state == "completed":
                completed += 1
            else:
                problems.add(f"execution {execution_id} ended {state}: {data.get('error')}")
        pending = still
    for execution_id in pending:
        problems.add(f"execution {execution_id} not finished after {timeout:.0f}s")
    return completed


def run_time(gen: Generator) -> float:
    return gen.count * (gen.interval + ITERATION_OVERHEAD) + gen.executions / max(gen.rate, 1)


# --- WebSocket clients -----------------------------------------------------------------


class RawSocket(asyncio.Protocol):
    """A minimal WebSocket client on asyncio: the upgrade, then unmasked frames in, pong
    and close out. Far cheaper per message than tornado's client, so the harness does not
    starve the servers it measures of the 2 cores."""

    def __init__(self, path: str, host: str, on_message: Callable[[bytes], None]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_message = on_message
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_us = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode(errors="replace")
            del buf[: end + 4]
            if not head.startswith("HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(head.splitlines()[0] if head else head))
                self.closed_by_us = True
                self._abort()
                return
            self.upgraded = True
            self.ready.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, length, head = buf[pos], buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            self._frame(first, bytes(buf[pos + head : end]))
            pos = end
        del buf[:pos]

    def _frame(self, first: int, payload: bytes) -> None:
        opcode, final = first & 0x0F, first & 0x80
        if opcode in (0, 1, 2):
            self.fragments.append(payload)
            if final:
                message = b"".join(self.fragments) if len(self.fragments) > 1 else payload
                self.fragments = []
                self.on_message(message)
        elif opcode == 9:  # ping
            self._send(0xA, payload)
        elif opcode == 8:  # close: answer and hang up
            if self.close_code is None:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_code, self.close_reason = code, payload[2:].decode(errors="replace")
                self._send(0x8, payload[:2])
            self._abort()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, repr(exc) if exc else "connection lost"
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.close_reason))

    @property
    def is_open(self) -> bool:
        return self.close_code is None

    def close(self) -> None:
        if self.close_code is None:
            self.closed_by_us = True
            self.close_code = 1000
            self._send(0x8, (1000).to_bytes(2, "big"))
            self._abort()


class TornadoSocket:
    """tornado.websocket's client behind RawSocket's face (--client tornado)."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.closed_by_us = False

    @property
    def close_code(self) -> int | None:
        if self.conn.close_code is None and self.conn.protocol is None:
            return 1006
        return self.conn.close_code

    @property
    def close_reason(self) -> str:
        return self.conn.close_reason or ""

    @property
    def is_open(self) -> bool:
        return self.close_code is None

    def close(self) -> None:
        self.closed_by_us = True
        self.conn.close()


Socket = RawSocket | TornadoSocket


async def open_socket(url: str, kind: str, on_message: Callable[[Any], None]) -> Socket:
    if kind == "tornado":

        def heard(message: str | bytes | None) -> None:
            if message is not None:
                on_message(message)

        conn = await tornado.websocket.websocket_connect(
            url, on_message_callback=heard, connect_timeout=30
        )
        return TornadoSocket(conn)
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: RawSocket(path, f"{host}:{port}", on_message), host, port
    )
    await asyncio.wait_for(proto.ready, 30)
    return proto


class Fleet:
    """N WebSocket clients on this loop. Each message's latency is its receive time
    minus its `timestamp`."""

    def __init__(self, kind: str, count_type: str = "notification") -> None:
        self.kind = kind
        self.count_type = count_type
        self.conns: list[Socket] = []
        self.counted: list[int] = []  # messages of count_type, per client
        self.latencies: list[float] = []  # ms, every message
        self.sizes: Counter[int] = Counter()
        self.first_stamp = math.inf
        self.last_stamp = 0.0
        self.last_receive = 0.0
        self.failed_connects = 0
        self.clock = Clock()
        self.outputs: list[list[str]] = []  # step_output text per client (chatty)

    async def connect(self, url: str, clients: int, problems: Problems) -> None:
        async def one(index: int) -> Socket | None:
            try:
                return await open_socket(url, self.kind, lambda m: self._heard(index, m))
            except Exception as exc:
                self.failed_connects += 1
                problems.add(f"WebSocket connect {index} failed: {exc!r}")
                return None

        self.counted = [0] * clients
        self.outputs = [[] for _ in range(clients)]
        for first in range(0, clients, CONNECT_BATCH):
            batch = range(first, min(clients, first + CONNECT_BATCH))
            for conn in await asyncio.gather(*(one(i) for i in batch)):
                if conn is not None:
                    self.conns.append(conn)

    def _heard(self, index: int, message: str | bytes) -> None:
        now = time.time()
        record = orjson.loads(message)
        stamp = self.clock.epoch(record["timestamp"])
        self.latencies.append((now - stamp) * 1000)
        self.sizes[len(message)] += 1
        self.first_stamp = min(self.first_stamp, stamp)
        self.last_stamp = max(self.last_stamp, stamp)
        self.last_receive = now
        if record["type"] == self.count_type:
            self.counted[index] += 1
            if self.count_type == "step_output":
                self.outputs[index].append(record["payload"].get("output", ""))

    def open_count(self) -> int:
        return sum(1 for c in self.conns if c.is_open)

    def closes(self) -> dict[str, int]:
        """Close codes (and reasons) of sockets the server closed or lost."""
        found = Counter(
            f"{c.close_code} {c.close_reason}".strip()
            for c in self.conns
            if c.close_code is not None and not c.closed_by_us
        )
        return dict(found)

    async def wait_for(self, expected: int, deadline: float) -> None:
        """Until every open client has counted `expected` messages, or the deadline."""
        while time.monotonic() < deadline:
            if all(self.counted[i] >= expected for i, c in enumerate(self.conns) if c.is_open):
                return
            await asyncio.sleep(0.05)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()

    def deliveries(self) -> int:
        return len(self.latencies)

    def message_bytes(self) -> int | None:
        return self.sizes.most_common(1)[0][0] if self.sizes else None


@dataclass
class Window:
    """A measured stretch: server CPU and wall time between `start` and `stop`."""

    pid: int
    cpu0: float = 0.0
    wall0: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    own0: float = 0.0
    own_cpu_s: float = 0.0

    def start(self) -> Window:
        self.cpu0, self.wall0 = cpu_seconds(self.pid), time.monotonic()
        self.own0 = cpu_seconds(os.getpid())
        return self

    async def stop(self) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        self.cpu_s = cpu_seconds(self.pid) - self.cpu0
        self.wall_s = time.monotonic() - self.wall0
        self.own_cpu_s = cpu_seconds(os.getpid()) - self.own0


def fleet_figures(fleet: Fleet, window: Window, expected: int, clients: int) -> dict[str, Any]:
    deliveries = fleet.deliveries()
    span = fleet.last_receive - fleet.first_stamp if deliveries else 0.0
    counted = sum(fleet.counted)
    stamps = fleet.last_stamp - fleet.first_stamp if deliveries > 1 else 0.0
    return {
        "connected": len(fleet.conns),
        "open_at_end": fleet.open_count(),
        "failed_connects": fleet.failed_connects,
        "closed_by_server": fleet.closes(),
        "deliveries": deliveries,
        "expected": expected * clients,
        "missing": expected * clients - counted,
        "events_per_s": round((expected - 1) / stamps, 1) if stamps else None,
        "deliveries_per_s": round(deliveries / span, 1) if span else None,
        "latency_ms": latency_summary(fleet.latencies),
        "message_bytes": fleet.message_bytes(),
        "window_s": round(window.wall_s, 2),
        "cpu_s": round(window.cpu_s, 3),
        "harness_cpu_s": round(window.own_cpu_s, 2),
    }


# --- the bare Tornado broadcaster (a subprocess) -----------------------------------------


class BareSocket(tornado.websocket.WebSocketHandler):
    clients: set[BareSocket] = set()

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        BareSocket.clients.add(self)

    def on_close(self) -> None:
        BareSocket.clients.discard(self)


class BareStart(tornado.web.RequestHandler):
    """POST {rate, count, size}: broadcast `count` messages of `size` bytes at `rate`/s."""

    def post(self) -> None:
        spec = orjson.loads(self.request.body)
        sent = 0
        execution_id = str(uuid.uuid4())

        def tick() -> None:
            nonlocal sent
            record = {
                "event_id": str(uuid.uuid4()),
                "type": "notification",
                "timestamp": iso_ms(time.time()),
                "execution_id": execution_id,
                "payload": {
                    "execution_id": execution_id,
                    "step_id": f"l[{sent}].n",
                    "message": "",
                    "data": None,
                },
            }
            pad = max(0, spec["size"] - len(orjson.dumps(record)))
            record["payload"]["message"] = "x" * pad
            message = orjson.dumps(record)
            for client in list(BareSocket.clients):
                try:
                    client.write_message(message)
                except tornado.websocket.WebSocketClosedError:
                    BareSocket.clients.discard(client)
            sent += 1
            if sent >= spec["count"]:
                timer.stop()

        timer = PeriodicCallback(tick, 1000 / spec["rate"])
        timer.start()
        self.write({"clients": len(BareSocket.clients)})


class BareHealth(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"clients": len(BareSocket.clients)})


def bare_server(port: int) -> None:
    """Serve /ws, /start and /health on 127.0.0.1:port until SIGTERM."""

    async def serve() -> None:
        app = tornado.web.Application(
            [(r"/ws", BareSocket), (r"/start", BareStart), (r"/health", BareHealth)]
        )
        server = app.listen(port, "127.0.0.1")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.stop()

    asyncio.run(serve())


@dataclass
class Bare:
    proc: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls) -> Bare:
        port = free_port()
        argv = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)]
        return cls(subprocess.Popen(argv, stdout=subprocess.DEVNULL), port)

    async def wait_ready(self, api: Api, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare server exited with {self.proc.returncode}")
            try:
                if (await call(api, "GET", "/health"))[0] == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("bare server not ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


async def run_bare(
    args: argparse.Namespace, gen: Generator, size: int, problems: Problems
) -> dict[str, Any]:
    """The same clients, rate, count and message size against the bare broadcaster."""
    bare = Bare.start()
    fleet = Fleet(args.client)
    result: dict[str, Any] = {}
    try:
        api = Api(bare.port, "")
        await bare.wait_ready(api)
        await fleet.connect(f"ws://127.0.0.1:{bare.port}/ws", args.clients, problems)
        await asyncio.sleep(1.0)
        window = Window(bare.proc.pid).start()
        spec = {"rate": args.rate, "count": gen.total, "size": size}
        await call(api, "POST", "/start", spec)
        deadline = time.monotonic() + gen.total / args.rate + DRAIN_SECONDS
        await fleet.wait_for(gen.total, deadline)
        await window.stop()
        result = fleet_figures(fleet, window, gen.total, args.clients)
    finally:
        fleet.close()
        await asyncio.sleep(0.2)
        result["exit_code"] = bare.stop()
    return result


# --- scenarios ---------------------------------------------------------------------------


@dataclass
class Context:
    """One server, its API connection, a sampler and what went wrong."""

    server: Server
    api: Api
    sampler: Sampler
    problems: Problems = field(default_factory=Problems)

    @classmethod
    def start(cls) -> Context:
        server = Server.start(None, None)
        try:
            server.wait_ready()
        except RuntimeError as exc:
            server.stop()
            tail = " | ".join(server.log_lines()[-3:])
            server.cleanup()
            raise RuntimeError(f"{exc}: {tail}") from None
        sampler = Sampler(server.proc.pid)
        sampler.start()
        return cls(server, Api(server.port, server.token), sampler)

    def ws_url(self, query: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws/events?token={self.server.token}{query}"

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Stop the server and add its exit code, peak RSS, log oddities and errors."""
        self.sampler.halt.set()
        self.sampler.join()
        result["server_peak_rss_mib"] = round(self.sampler.peak_rss / 2**20, 1)
        result["server_peak_threads"] = self.sampler.peak_threads
        result["server_exit_code"] = self.server.stop()
        lines = self.server.log_lines()
        unusual = [line for line in lines if " INFO " not in line]
        closing = [line for line in lines if "does not keep up" in line]
        if unusual or closing:
            result["server_log_unusual"] = (unusual + closing)[:20]
        result["errors"] = self.problems.count
        if self.problems.samples:
            result["error_samples"] = self.problems.samples
        self.server.cleanup()
        return result


async def warm_up(ctx: Context) -> None:
    await generate(ctx.api, Generator(1, 3, 0.01, 0.0), ctx.problems, 30)


async def run_fanout(args: argparse.Namespace) -> dict[str, Any]:
    """Baseline (no clients), then N clients on /ws/events, then the bare broadcaster."""
    gen = Generator.for_rate(args.rate, args.seconds, args.iteration_overhead)
    timeout = run_time(gen) + 60
    result: dict[str, Any] = {
        "scenario": "fanout",
        "clients": args.clients,
        "rate": args.rate,
        "seconds": args.seconds,
        "types": args.types,
        "generator": {"executions": gen.executions, "count": gen.count, "wait_s": gen.interval},
    }
    ctx = Context.start()
    fleet = Fleet(args.client)
    try:
        await warm_up(ctx)
        log(f"fanout: baseline, {gen.total} notifications, no clients")
        base = Window(ctx.server.proc.pid).start()
        await generate(ctx.api, gen, ctx.problems, timeout)
        await base.stop()
        # what an iteration took beyond its wait, here and now (the baseline's window
        # less the staggered starts; the 0.25 s polls of the end and the POSTs stay in it,
        # under 2% of a 20 s run): the clients' run asks for the wait that makes the
        # asked rate (the baseline's own rate is reported below)
        stagger = (gen.executions - 1) / gen.rate if gen.rate else 0.0
        overhead = (base.wall_s - SETTLE_SECONDS - stagger) / gen.count - gen.interval
        result["generator"]["baseline_wait_s"] = round(gen.interval, 4)
        result["generator"]["iteration_overhead_s"] = round(overhead, 4)
        gen = Generator.for_rate(args.rate, args.seconds, max(overhead, 0.0))
        result["generator"]["wait_s"] = round(gen.interval, 4)

        query = "&types=notification" if args.types == "notification" else ""
        log(f"fanout: connecting {args.clients} clients")
        await fleet.connect(ctx.ws_url(query), args.clients, ctx.problems)
        await asyncio.sleep(1.0)
        log(f"fanout: {gen.total} notifications at {args.rate}/s to {len(fleet.conns)} clients")
        window = Window(ctx.server.proc.pid).start()
        done = asyncio.create_task(generate(ctx.api, gen, ctx.problems, timeout))
        await fleet.wait_for(gen.total, time.monotonic() + run_time(gen) + DRAIN_SECONDS)
        await done
        await window.stop()
        synthesis = fleet_figures(fleet, window, gen.total, args.clients)
        synthesis["baseline_cpu_s"] = round(base.cpu_s, 3)
        synthesis["baseline_window_s"] = round(base.wall_s, 2)
        generated_s = base.wall_s - SETTLE_SECONDS  # to the last end seen (0.25 s polls)
        synthesis["baseline_events_per_s"] = round(gen.total / generated_s, 1)
        deliveries = synthesis["deliveries"]
        if deliveries:
            synthesis["cpu_us_per_delivery"] = round(
                (window.cpu_s - base.cpu_s) / deliveries * 1e6, 2
            )
            synthesis["gross_cpu_us_per_delivery"] = round(window.cpu_s / deliveries * 1e6, 2)
        result["synthesis"] = synthesis
    except Exception as exc:
        ctx.problems.add(f"run aborted: {exc!r}")
        result["error"] = repr(exc)
    finally:
        fleet.close()
        await asyncio.sleep(0.3)
        result = await asyncio.to_thread(ctx.finish, result)
    if "error" in result:
        return result

    log(f"fanout: bare Tornado, same {args.clients} clients and rate")
    problems = Problems()
    size = result["synthesis"]["message_bytes"] or 280
    try:
        bare = await run_bare(args, gen, size, problems)
    except Exception as exc:
        problems.add(f"bare run aborted: {exc!r}")
        bare = {"error": repr(exc)}
    if bare.get("deliveries"):
        bare["cpu_us_per_delivery"] = round(bare["cpu_s"] / bare["deliveries"] * 1e6, 2)
    bare["errors"] = problems.count
    if problems.samples:
        bare["error_samples"] = problems.samples
    result["bare"] = bare

    ours, theirs = result["synthesis"].get("cpu_us_per_delivery"), bare.get("cpu_us_per_delivery")
    ratio = round(ours / theirs, 2) if ours is not None and theirs else None
    p99 = result["synthesis"]["latency_ms"]["p99"]
    result["cpu_ratio"] = ratio
    result["targets"] = {
        "cpu_per_delivery_at_most_1_5x_bare": ratio is not None and ratio <= TARGET_CPU_RATIO,
        "p99_under_100ms": p99 is not None and p99 < TARGET_P99_MS,
    }
    return result


class Receiver:
    """A loopback webhook receiver on this loop: answers 200 with no body. `raw` (the
    default) is a minimal HTTP/1.1 server on an asyncio Protocol with keep-alive (about
    4x cheaper per request than tornado's, so that the receiver sharing the box's two
    cores with the server is not what is measured); `tornado` is a tornado application."""

    def __init__(self, kind: str = "raw") -> None:
        self.clock = Clock()
        self.latencies: list[float] = []
        self.receipts: list[float] = []
        self.stamps: list[float] = []
        self.seen: Counter[tuple[str, str]] = Counter()  # (path, event_id)
        self.last_index: dict[tuple[str, str], int] = {}  # (path, execution) -> message index
        self.out_of_order = 0
        self.bad_headers = 0
        self.connections = 0  # opened by the server
        self.port = free_port()
        self.server: Any = None
        self.kind = kind
        receiver = self

        class Hook(tornado.web.RequestHandler):
            def post(self, path: str) -> None:
                receiver.connections = len(receiver.peers)
                headers = {k.lower(): v for k, v in self.request.headers.get_all()}
                receiver.heard(path, headers, self.request.body)
                self.set_status(200)
                self.finish()

            def prepare(self) -> None:
                receiver.peers.add(self.request.connection.context.address)

        self.peers: set[Any] = set()
        if kind == "tornado":
            app = tornado.web.Application([(r"/hook/(\d+)", Hook)])
            self.server = app.listen(self.port, "127.0.0.1")

    async def start(self) -> None:
        if self.kind == "raw":
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(lambda: RawHook(self), "127.0.0.1", self.port)

    def stop(self) -> None:
        if self.kind == "tornado":
            self.server.stop()
        elif self.server is not None:
            self.server.close()

    def heard(self, path: str, headers: dict[str, str], body: bytes) -> None:
        now = time.time()
        record = orjson.loads(body)
        stamp = self.clock.epoch(record["timestamp"])
        self.receipts.append(now)
        self.stamps.append(stamp)
        self.latencies.append((now - stamp) * 1000)
        self.seen[(path, record["event_id"])] += 1
        if (
            headers.get("x-synthesis-event") != record["type"]
            or headers.get("x-synthesis-delivery") != record["event_id"]
        ):
            self.bad_headers += 1
        key = (path, record["execution_id"])
        index = int(record["payload"]["message"].split()[-1])
        if index <= self.last_index.get(key, -1):
            self.out_of_order += 1
        self.last_index[key] = index

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{index}"


class RawHook(asyncio.Protocol):
    """One connection to the raw receiver: requests with a Content-Length body, in order."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.receiver.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = lines[0].split(" ")[1].rsplit("/", 1)[-1]
            self.receiver.heard(path, headers, body)
            if headers.get("connection", "").lower() == "close":
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()
                return
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


async def run_webhook(args: argparse.Namespace) -> dict[str, Any]:
    """Baseline (no subscription), then W subscriptions for `notification` to a loopback
    receiver while M notifications are generated as fast as the engine goes. With
    --backlog the subscriptions are paused while the notifications are generated, and
    the window is their resume until all is delivered: delivery alone, from the store."""
    gen = Generator.burst(args.events)
    expected = gen.total * args.subscriptions
    result: dict[str, Any] = {
        "scenario": "webhook",
        "events": gen.total,
        "subscriptions": args.subscriptions,
        "backlog": args.backlog,
    }
    ctx = Context.start()
    receiver = Receiver(args.receiver)
    try:
        await receiver.start()
        await warm_up(ctx)
        log(f"webhook: baseline, {gen.total} notifications, no subscription")
        base = Window(ctx.server.proc.pid).start()
        await generate(ctx.api, gen, ctx.problems, 120)
        await base.stop()

        ids = []
        for index in range(args.subscriptions):
            body = {"callback_url": receiver.url(index), "types": ["notification"]}
            status, data = await call(ctx.api, "POST", "/api/events/subscriptions", body)
            if status != 201 or not isinstance(data, dict):
                raise RuntimeError(f"POST /api/events/subscriptions -> {status}: {data}")
            ids.append(data["subscription_id"])
        log(f"webhook: {gen.total} notifications to {args.subscriptions} subscription(s)")
        if args.backlog:
            await control(ctx.api, ids, "pause")
        window = Window(ctx.server.proc.pid).start()
        generated = time.monotonic()
        await generate(ctx.api, gen, ctx.problems, 120)
        generated = time.monotonic() - generated
        if args.backlog:
            log("webhook: generated while paused; resuming")
            window = Window(ctx.server.proc.pid).start()
            await control(ctx.api, ids, "resume")
            base = Window(ctx.server.proc.pid)  # nothing generated in the window
        deadline = time.monotonic() + args.webhook_timeout
        while len(receiver.receipts) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await window.stop()

        failed = 0
        for sid in ids:
            path = f"/api/events/subscriptions/{sid}/deliveries?status=failed&limit=1"
            status, data = await call(ctx.api, "GET", path)
            failed += data.get("total", 0) if isinstance(data, dict) else 0
        got = len(receiver.receipts)
        span = max(receiver.receipts) - min(receiver.receipts) if got > 1 else 0.0
        end_to_end = max(receiver.receipts) - min(receiver.stamps) if got else 0.0
        if args.backlog and got:
            end_to_end = max(receiver.receipts) - (window.wall0 - time.monotonic() + time.time())
        stamps = max(receiver.stamps) - min(receiver.stamps) if got > 1 else 0.0
        result.update(
            {
                "deliveries": got,
                "expected": expected,
                "missing": expected - len(receiver.seen),
                "duplicates": got - len(receiver.seen),
                "out_of_order": receiver.out_of_order,
                "bad_headers": receiver.bad_headers,
                "failed_deliveries": failed,
                "events_per_s": round((gen.total - 1) / stamps, 1) if stamps else None,
                "generation_s": round(generated, 2),
                "deliveries_per_s": round(got / span, 1) if span else None,
                "end_to_end_s": round(end_to_end, 2),
                "latency_ms": latency_summary(receiver.latencies),
                "cpu_s": round(window.cpu_s, 3),
                "baseline_cpu_s": round(base.cpu_s, 3),
                "cpu_us_per_delivery": (
                    round((window.cpu_s - base.cpu_s) / got * 1e6, 1) if got else None
                ),
                "harness_cpu_s": round(window.own_cpu_s, 2),
                "harness_baseline_cpu_s": round(base.own_cpu_s, 2),
                "receiver_cpu_us_per_delivery": (
                    round((window.own_cpu_s - base.own_cpu_s) / got * 1e6, 1) if got else None
                ),
                "receiver": args.receiver,
                "receiver_connections": receiver.connections,
            }
        )
    except Exception as exc:
        ctx.problems.add(f"run aborted: {exc!r}")
        result["error"] = repr(exc)
    finally:
        receiver.stop()
        result = await asyncio.to_thread(ctx.finish, result)
    return result


async def control(api: Api, ids: list[str], action: str) -> None:
    for sid in ids:
        status, data = await call(api, "POST", f"/api/events/subscriptions/{sid}/{action}")
        if status != 200:
            raise RuntimeError(f"{action} {sid} -> {status}: {data}")


def chatty_body(lines: int) -> dict[str, Any]:
    script = f"import time\nfor i in range({lines}):\n    print('line', i)\n    time.sleep(0.0005)"
    command = f'{sys.executable} -u -c "{script}"'
    step = {"id": "c", "type": "command", "parameters": {"command": command}}
    return {"plan": {"name": "bench-chatty", "steps": [step]}, "start": True}


async def run_chatty(args: argparse.Namespace) -> dict[str, Any]:
    """One command printing L lines (one write each, 0.5 ms sleep between) to N clients
    of `step_output`: how many events does each client get, and is the output whole?"""
    clients = min(args.clients, 100)
    result: dict[str, Any] = {"scenario": "chatty", "lines": args.lines, "clients": clients}
    ctx = Context.start()
    fleet = Fleet(args.client, "step_output")
    try:
        await warm_up(ctx)
        await fleet.connect(ctx.ws_url("&types=step_output"), clients, ctx.problems)
        await asyncio.sleep(0.5)
        window = Window(ctx.server.proc.pid).start()
        status, data = await call(ctx.api, "POST", "/api/executions", chatty_body(args.lines))
        if status != 201 or not isinstance(data, dict):
            raise RuntimeError(f"POST /api/executions -> {status}: {data}")
        execution_id = data["execution_id"]
        deadline = time.monotonic() + 60
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            _, view = await call(ctx.api, "GET", f"/api/executions/{execution_id}")
            if view.get("status") in TERMINAL:
                break
        await asyncio.sleep(0.5)
        await window.stop()
        wanted = "".join(f"line {i}\n" for i in range(args.lines))
        whole = sum(1 for chunks in fleet.outputs[: len(fleet.conns)] if "".join(chunks) == wanted)
        per_client = fleet.counted[: len(fleet.conns)]
        result.update(
            {
                "status": view.get("status"),
                "command_s": round((view.get("duration_ms") or 0) / 1000, 2),
                "events_per_client": statistics.median(per_client) if per_client else None,
                "lines_per_event": (
                    round(args.lines / statistics.median(per_client), 1)
                    if per_client and statistics.median(per_client)
                    else None
                ),
                "clients_with_whole_output": whole,
                "closed_by_server": fleet.closes(),
                "latency_ms": latency_summary(fleet.latencies),
                "cpu_s": round(window.cpu_s, 3),
            }
        )
    except Exception as exc:
        ctx.problems.add(f"run aborted: {exc!r}")
        result["error"] = repr(exc)
    finally:
        fleet.close()
        await asyncio.sleep(0.2)
        result = await asyncio.to_thread(ctx.finish, result)
    return result


# --- results ---------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every numeric figure over the runs of one scenario."""
    good = [flatten(r) for r in results if "error" not in r]
    medians: dict[str, float] = {}
    for key in good[0] if good else {}:
        values = [r.get(key) for r in good]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values):
            medians[key] = round(statistics.median(numbers), 2)
    targets = {
        key: [r.get(key) for r in good] for key in (good[0] if good else {}) if "targets." in key
    }
    return {
        "summary": True,
        "scenario": results[0]["scenario"],
        "runs": len(results),
        "good_runs": len(good),
        "medians": medians,
        "targets_per_run": targets,
    }


def healthy(result: dict[str, Any]) -> bool:
    if "error" in result or result.get("errors") or result.get("server_exit_code") != 0:
        return False
    parts = [result.get("synthesis"), result.get("bare")] if "synthesis" in result else [result]
    for part in parts:
        if not part or part.get("error") or part.get("errors"):
            return False
        if part.get("missing") or part.get("closed_by_server") or part.get("failed_connects"):
            return False
        if part.get("duplicates") or part.get("failed_deliveries") or part.get("out_of_order"):
            return False
    if result["scenario"] == "chatty":
        return result.get("clients_with_whole_output") == result["clients"]
    return True


SCENARIOS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "fanout": run_fanout,
    "webhook": run_webhook,
    "chatty": run_chatty,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="fanout")
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients (1000)")
    parser.add_argument("--rate", type=float, default=20.0, help="notifications/s (20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="generation time (20)")
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario K times")
    parser.add_argument(
        "--iteration-overhead",
        type=float,
        default=ITERATION_OVERHEAD,
        help="fanout: s a generator loop iteration takes beyond its wait (0.001), for the "
        "baseline; the clients' run uses what the baseline measured",
    )
    parser.add_argument(
        "--types",
        choices=("notification", "all"),
        default="notification",
        help="fanout: clients subscribe to notifications only, or to every event",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "tornado"),
        default="raw",
        help="WebSocket client: a minimal asyncio one (raw) or tornado.websocket's",
    )
    parser.add_argument("--events", type=int, default=2000, help="webhook: notifications (2000)")
    parser.add_argument("--subscriptions", type=int, default=1, help="webhook: subscriptions")
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="webhook: generate while paused, then measure the resumed delivery alone",
    )
    parser.add_argument(
        "--receiver", choices=("raw", "tornado"), default="raw", help="webhook: receiver kind"
    )
    parser.add_argument(
        "--webhook-timeout", type=float, default=120.0, help="webhook: max wait for deliveries"
    )
    parser.add_argument("--lines", type=int, default=4000, help="chatty: lines printed (4000)")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    limit = raise_fd_limit()
    if limit < args.clients * 2 + 100:
        log(f"warning: RLIMIT_NOFILE is {limit}, tight for {args.clients} clients")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    ok = True
    for name in names:
        results = []
        for run in range(args.runs):
            log(f"{name}: run {run + 1}/{args.runs}")
            try:
                result = asyncio.run(SCENARIOS[name](args))
            except Exception as exc:  # the server did not start, or the harness broke
                result = {"scenario": name, "error": repr(exc)}
            print(orjson.dumps(result).decode(), flush=True)
            results.append(result)
            ok = ok and healthy(result)
        if args.runs > 1:
            print(orjson.dumps(summarize(results)).decode(), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
