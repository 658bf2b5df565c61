"""The tail: this node's one source of stored events and of the other nodes' wake-ups
(docs/cluster.md, "Events").

A daemon thread holds one LISTEN connection of its own (a direct one: PgBouncer in
transaction mode breaks LISTEN) on the channels of store/cluster.py. Whenever it is woken
(a `NOTIFY` carries a seq or a node id, never a payload) or every `POLL_SECONDS` anyway,
it reads the events stored after its cursor, in `seq` order, and hands each batch to
every listener: the WebSocket hub, the webhook supervisor and the execution supervisor,
this node's own events included, so every node tells one story in one order. Work and
control wake-ups go to their callbacks. If the connection is lost (the database
restarted, `pg_terminate_backend`), it polls meanwhile and listens again as soon as it
can.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from synthesis.engine.cursor import EventCursor
from synthesis.engine.events import Event
from synthesis.store import Store
from synthesis.store import cluster as statements

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
PAGE = 1000


class EventTail:
    def __init__(
        self,
        store: Store,
        *,
        on_work: Callable[[], None],
        on_control: Callable[[], None],
        on_answer: Callable[[], None],
        on_subscriptions: Callable[[], None],
    ) -> None:
        self._store = store
        self._wakes = {
            statements.WORK_CHANNEL: on_work,
            statements.CONTROL_CHANNEL: on_control,
            statements.ANSWER_CHANNEL: on_answer,
            statements.SUBSCRIPTIONS_CHANNEL: on_subscriptions,
        }
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._lock = threading.Lock()
        self._cursor = EventCursor(store.last_event_seq(), page_size=PAGE)
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[object] | None = None
        self.listening = False  # for /health
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name="synthesis-tail", daemon=True)

    def listen(self, listener: Callable[[list[Event]], None]) -> None:
        """Any thread: `listener(events)` is called on the tail thread with each batch
        after this call; it must not block."""
        with self._lock:
            self._listeners.append(listener)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    # ---- tail thread ----

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._conn is None:
                self._connect()
            woke = self._wait()
            for channel, wake in self._wakes.items():
                if channel in woke:
                    wake()
            self._read_events()
        if self._conn is not None:
            self._conn.close()

    def _connect(self) -> None:
        url = self._store.engine.url.set(drivername="postgresql")
        try:
            conn = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True, connect_timeout=2
            )
            for channel in statements.CHANNELS:
                conn.execute(f"LISTEN {channel}")
        except Exception as exc:
            log.warning("cannot LISTEN (polling meanwhile): %s", type(exc).__name__)
            self._stopping.wait(POLL_SECONDS)
            return
        if self.reconnects or not self.listening:
            log.info("listening for the other nodes again" if self.reconnects else "listening")
        self._conn = conn
        self.listening = True
        for wake in self._wakes.values():  # what came while not listening, looked at now
            wake()

    def _wait(self) -> set[str]:
        """The channels notified before the poll interval ran out (none: a poll)."""
        if self._conn is None:
            return set()
        woke: set[str] = set()
        try:
            for note in self._conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                woke.add(note.channel)
            # drain what else is queued without waiting
            for note in self._conn.notifies(timeout=0, stop_after=64):
                woke.add(note.channel)
        except Exception as exc:
            log.warning("lost the LISTEN connection (polling meanwhile): %s", type(exc).__name__)
            self.listening = False
            self.reconnects += 1
            try:
                self._conn.close()
            finally:
                self._conn = None
            return set()
        return woke

    def _read_events(self) -> None:
        """Every event stored after the cursor, in seq order, page by page."""
        cursor = self._cursor
        cursor.caught_up = False
        while not cursor.caught_up and not self._stopping.is_set():
            try:
                cursor.page(self._store.events_after(cursor.position, limit=cursor.page_size))
            except Exception as exc:
                log.warning("reading events failed: %s", type(exc).__name__)
                self._stopping.wait(POLL_SECONDS)
                return
            fresh = cursor.drain()
            if fresh:
                with self._lock:
                    listeners = list(self._listeners)
                for listener in listeners:
                    try:
                        listener(fresh)
                    except Exception:
                        log.exception("event listener %r failed", listener)
