"""A real webhook receiver on loopback: it records what is POSTed to /hooks/<name> and can
be down, slow, failing or poisoned on demand."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
import tornado.httpserver
import tornado.netutil
import tornado.web

from tests.http_target import LoopbackServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.body)


class _Hook(tornado.web.RequestHandler):
    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def post(self, name: str) -> None:
        receiver = self.receiver
        with receiver.lock:
            receiver.arrived[name] += 1
            receiver.connections[name].add(self.request.connection.context.address)
        gate = receiver.gate_for(name)
        if gate is not None:
            await gate.wait()
        with receiver.lock:
            slow = receiver.slow_left.get(name)
            if slow is not None and slow[1] > 0:
                receiver.slow_left[name] = (slow[0], slow[1] - 1)
        if slow is not None and slow[1] > 0:
            await asyncio.sleep(slow[0])
        with receiver.lock:
            receiver.attempts[name] += 1
            if name in receiver.closed or self._poisoned(name):
                status = 503
            elif receiver.failures_left.get(name, 0) > 0:
                receiver.failures_left[name] -= 1
                status = 500
            else:
                headers = {k.lower(): v for k, v in self.request.headers.items()}
                receiver.received[name].append(Received(headers, self.request.body))
                status = 200
        self.set_status(status)
        self.finish("ok" if status == 200 else "no")

    def _poisoned(self, name: str) -> bool:
        poisoned = self.receiver.poisoned.get(name)
        return bool(poisoned) and orjson.loads(self.request.body)["event_id"] in poisoned


class Receiver(LoopbackServer):
    """POST /hooks/<name> is recorded under <name> when answered 200. Per name it can
    answer 503 (`close`, or `poison` for some events), fail the next N requests with 500,
    take S seconds to answer the next N requests, or hold every request until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.arrived: Counter[str] = Counter()  # requests that came in
        self.attempts: Counter[str] = Counter()  # requests answered
        self.connections: dict[str, set[Any]] = defaultdict(set)  # client (host, port)s
        self.failures_left: dict[str, int] = {}
        self.slow_left: dict[str, tuple[float, int]] = {}  # (seconds, requests)
        self.closed: set[str] = set()
        self.poisoned: dict[str, set[str]] = defaultdict(set)  # event ids answered 503
        self._gates: dict[str, asyncio.Event] = {}
        super().__init__()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def events(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received[name]]

    def event_ids(self, name: str) -> list[str]:
        return [e["event_id"] for e in self.events(name)]

    def close(self, name: str) -> None:
        with self.lock:
            self.closed.add(name)

    def open(self, name: str) -> None:
        with self.lock:
            self.closed.discard(name)

    def poison(self, name: str, event_id: str) -> None:
        with self.lock:
            self.poisoned[name].add(event_id)

    def fail_next(self, name: str, count: int) -> None:
        with self.lock:
            self.failures_left[name] = count

    def slow(self, name: str, seconds: float, count: int) -> None:
        with self.lock:
            self.slow_left[name] = (seconds, count)

    def hold(self, name: str) -> None:
        self._loop.call_soon_threadsafe(self._gates.setdefault, name, asyncio.Event())

    def release(self, name: str) -> None:
        def release() -> None:
            gate = self._gates.pop(name, None)
            if gate is not None:
                gate.set()

        self._loop.call_soon_threadsafe(release)

    def gate_for(self, name: str) -> asyncio.Event | None:
        return self._gates.get(name)

    def application(self) -> tornado.web.Application:
        return tornado.web.Application([(r"/hooks/([^/]+)", _Hook, {"receiver": self})])

    def stop(self) -> None:
        for name in list(self._gates):
            self.release(name)
        super().stop()


# ---- the actors on their own ----------------------------------------------------------
