"""The event bus: the only writer to the store. Each `Commit` is stored, in the order it
arrived, before any listener hears of its events (rule 7 of docs/architecture.md).

Group commit: a Commit is queued and a Flush is told to the bus itself; by the time the
Flush comes out of the inbox, every Commit that arrived before it is queued too, so under
load one transaction carries many commits and at rest each commit is stored at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pykka

from synthesis.actors.messages import Commit, Flush, Listen, Ping
from synthesis.engine.events import Event
from synthesis.store import Store
from synthesis.store.cluster import Fenced

log = logging.getLogger(__name__)

MAX_BATCH = 512


class EventBus(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, store: Store, on_fenced: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._store = store
        self._on_fenced = on_fenced  # this node was declared dead (docs/cluster.md)
        self._pending: list[Commit] = []
        self._flush_told = False
        self._listeners: list[Callable[[list[Event]], None]] = []

    def on_receive(self, message: object) -> None:
        """Bus thread."""
        match message:
            case Commit():
                self._pending.append(message)
                if not self._flush_told:
                    self._flush_told = True
                    self.actor_ref.tell(Flush())
            case Flush():
                self._flush_told = False
                self._flush()
            case Listen(listener=listener):
                self._listeners.append(listener)
            case Ping(reply=reply):
                reply("pong")

    def on_stop(self) -> None:
        """Nothing accepted is dropped: whatever is queued is stored before the bus stops."""
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            commits, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                stored = self._store.apply([c.batch for c in commits])
            except Fenced as exc:
                self._fenced(commits, exc)
                return
            except Exception:
                log.exception(
                    "storing a batch of %d commits failed; storing one by one", len(commits)
                )
                stored = [self._store_alone(c) for c in commits]
            heard: list[Event] = []
            for commit, events in zip(commits, stored, strict=True):
                try:
                    commit.on_stored(events)
                except Exception:  # one caller's bug: the others still hear, the bus lives
                    log.exception("a commit's on_stored callback failed")
                if not isinstance(events, BaseException):
                    heard += events
            if heard:  # once per transaction: one crossing into each listener's thread
                self._tell_listeners(heard)

    def _fenced(self, commits: list[Commit], exc: Fenced) -> None:
        """Nothing this node writes may be kept any more: refuse everything, then stop
        the node (the runtime's `on_fenced` exits the process)."""
        for commit in [*commits, *self._pending]:
            commit.on_stored(exc)
        self._pending = []
        if self._on_fenced is not None:
            self._on_fenced(str(exc))

    def _store_alone(self, commit: Commit) -> list[Event] | BaseException:
        try:
            return self._store.apply([commit.batch])[0]
        except Exception as exc:
            log.error("a commit was refused by the store: %s", exc)
            return exc

    def _tell_listeners(self, events: list[Event]) -> None:
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("event listener %r failed", listener)
