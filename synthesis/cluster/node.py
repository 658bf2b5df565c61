"""This node's life in the database (docs/cluster.md).

Two daemon threads:
- `heartbeat`: every `heartbeat_seconds` writes this node's heartbeat (on a connection of
  its own, never behind the bus), and every half of that sweeps: declares dead the nodes
  silent for `node_timeout_seconds` on the database clock, which fences them and frees
  their work in the same transaction.
- `watchdog`: counts, on this process's monotonic clock, the time since the last
  heartbeat the database acknowledged (from when it was sent). Past 60 % of the timeout
  it closes the step gate (no new step starts); past 80 % it fences this node itself:
  stops its step processes and exits, before any other node may take its work over.

A heartbeat that finds this node fenced (it was only slow: paused, partitioned) fences
it the same way. Fencing is final: a node never comes back, a new one starts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, create_engine

from synthesis.config import Settings
from synthesis.store import Store
from synthesis.store import cluster as statements
from synthesis.store.database import POSTGRES_SESSION

log = logging.getLogger(__name__)

HOLD_AT = 0.6  # of the node timeout without an acknowledged heartbeat: start no step
FENCE_AT = 0.8  # of the node timeout: stop the step processes and exit


def coordination_engine(store: Store) -> Engine:
    """A small engine of its own, with timeouts, so a heartbeat never waits behind the
    bus's pool or hangs on a database that stopped answering."""
    if store.dialect != "postgresql":
        return store.engine
    return create_engine(
        store.url,
        pool_size=1,
        max_overflow=1,
        pool_pre_ping=True,
        pool_recycle=300,
        hide_parameters=True,
        connect_args={
            **POSTGRES_SESSION,
            "connect_timeout": 2,
            "options": "-c statement_timeout=3000 -c idle_in_transaction_session_timeout=3000",
        },
    )


class NodeKeeper:
    def __init__(
        self,
        store: Store,
        node_id: str,
        settings: Settings,
        *,
        on_fenced: Callable[[str], None],
        on_hold: Callable[[bool], None],
        engine_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._node_id = node_id
        self._dialect = store.dialect
        self._interval = settings.heartbeat_seconds
        self._timeout = settings.node_timeout_seconds
        self._on_fenced = on_fenced
        self._on_hold = on_hold
        self._engine_alive = engine_alive  # a node whose actors died must not look alive
        self._engine = coordination_engine(store)
        self._stopping = threading.Event()
        self._last_ack = time.monotonic()
        self._held = False
        self._fenced = threading.Lock()
        self.dead_found = 0  # nodes this one declared dead
        self._threads = [
            threading.Thread(target=self._beat_forever, name="synthesis-heartbeat", daemon=True)
        ]
        self._threads.append(
            threading.Thread(target=self._watch_forever, name="synthesis-watchdog", daemon=True)
        )

    @property
    def heartbeat_age(self) -> float:
        """Seconds since the last heartbeat the database acknowledged was sent."""
        return time.monotonic() - self._last_ack

    @property
    def healthy(self) -> bool:
        return not self._held

    def fresh(self) -> bool:
        """Any thread: a heartbeat was acknowledged recently enough to start a step."""
        return self._dialect != "postgresql" or self.heartbeat_age < HOLD_AT * self._timeout

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """IOLoop thread, at shutdown."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._engine is not self._store.engine:
            self._engine.dispose()

    # ---- heartbeat thread ----

    def _beat_forever(self) -> None:
        tick = self._interval / 2
        beats = 0
        while not self._stopping.wait(tick * random.uniform(0.9, 1.1)):
            if beats % 2 == 0 and not self._beat():
                return
            beats += 1
            if self._dialect == "postgresql" and not self._held:
                self._sweep()

    def _beat(self) -> bool:
        sent = time.monotonic()
        try:
            with self._engine.begin() as conn:
                alive = statements.heartbeat(conn, self._dialect, self._node_id)
        except Exception as exc:
            log.warning(
                "heartbeat failed (%.1f s since the last one): %s",
                sent - self._last_ack,
                type(exc).__name__,
            )
            return True
        if not alive:
            self._fence("the cluster declared this node dead (it was silent too long)")
            return False
        self._last_ack = sent
        if self._held:
            self._held = False
            log.warning("heartbeats are acknowledged again: steps start again")
        self._on_hold(False)  # also reopens a gate a step start found stale
        return True

    def _sweep(self) -> None:
        try:
            with self._engine.begin() as conn:
                dead = statements.sweep(conn, self._dialect, self._timeout)
        except Exception as exc:
            log.warning("sweeping for dead nodes failed: %s", type(exc).__name__)
            return
        if dead:
            self.dead_found += len(dead)
            log.warning(
                "declared dead after %.0f s without a heartbeat: %s", self._timeout, ", ".join(dead)
            )

    # ---- watchdog thread ----

    def _watch_forever(self) -> None:
        while not self._stopping.wait(0.2):
            if not self._engine_alive():
                self._fence("its actors stopped (an error no actor handles)")
                return
            if self._dialect != "postgresql":  # on SQLite no other node could take over
                continue
            silent = self.heartbeat_age
            if silent > FENCE_AT * self._timeout:
                self._fence(f"no heartbeat acknowledged for {silent:.1f} s")
                return
            if silent > HOLD_AT * self._timeout and not self._held:
                self._held = True
                self._on_hold(True)
                log.warning("no heartbeat acknowledged for %.1f s: starting no step", silent)

    def _fence(self, reason: str) -> None:
        if self._fenced.acquire(blocking=False) and not self._stopping.is_set():
            self._on_fenced(reason)
