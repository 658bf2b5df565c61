"""The two WebSockets: /ws/executions/{id} (the reference's `{type, timestamp, data}`
messages of one execution, closed after its end) and /ws/events (event records, with
`types`, `execution_id` and `since`). Both replay, then stream live; see web/hub.py."""

from __future__ import annotations

import contextlib
import logging
import struct
from asyncio import Future
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import tornado.websocket
from tornado.iostream import StreamClosedError

from synthesis.auth import require_scope
from synthesis.engine.cursor import EventCursor
from synthesis.engine.errors import ApiError
from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import EVENT_TYPES, EXECUTION_COMPLETED, Event
from synthesis.web.base import MAX_URI_BYTES
from synthesis.web.declare import path_param, ref, text

if TYPE_CHECKING:
    from synthesis.runtime import Runtime

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_TRY_AGAIN = 1013
REPLAY_PAGE = 1000
REPLAY_BATCH = 100  # events per write while replaying


def text_frames(messages: list[bytes]) -> bytes:
    """RFC 6455 text frames, one per message, as a server sends them: final, unmasked,
    uncompressed (the sockets do not override `get_compression_options`)."""
    parts: list[bytes] = []
    for message in messages:
        size = len(message)
        if size < 126:
            parts.append(bytes((0x81, size)))
        elif size <= 0xFFFF:
            parts.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            parts.append(struct.pack("!BBQ", 0x81, 127, size))
        parts.append(message)
    return b"".join(parts)


class EventSocket(tornado.websocket.WebSocketHandler):
    """What both sockets share: auth before the upgrade, replay-then-live through an
    EventCursor (engine/cursor.py: the order, no gap, no duplicate), and a send buffer
    bounded in bytes (a client that stops reading is closed with 1013, slowing nobody).

    Events go out one WebSocket frame each, but the frames of one delivery (the events of
    one bus batch the socket selects, or a slice of a replay) are written to the
    connection's IOStream in one `write`: one future and one `send` per batch, where
    Tornado's `write_message` builds a coroutine, a Task and a future per message. Tornado
    writes its own frames (pings, pongs, close) through the same stream, so frames never
    interleave. (`ws_connection.stream` is an attribute of Tornado's protocol object, not a
    documented API: tests/api/test_events.py reads these frames with Tornado's client.)

    What a socket holds unsent is counted in bytes through the stream's write futures: a
    batch counts from the moment it is handed to the stream until its future says it
    reached the kernel (the futures resolve in order; a write whose future is done at once
    means nothing is unsent). A message that would take the count past
    `websocket_buffer_bytes` closes the socket instead, after the messages before it (one
    message alone always goes). Events that arrive while the socket replays wait in its
    cursor, bounded the same way; the replay itself waits for the client whenever half the
    bound is unsent, so a slow but steady reader is not closed by the server's own burst."""

    runtime: Runtime

    def initialize(self, runtime: Runtime, prefix: str = "") -> None:
        self.runtime = runtime
        self._cursor = EventCursor(caught_up=True)  # open() sets the socket's own
        self._live = False  # replayed: what the hub delivers is sent at once
        self._unsent_bytes = 0  # handed to the stream, not yet to the kernel
        self._unsent: deque[tuple[Future[None], int]] = deque()  # those writes, in order
        self._closing = False

    @property
    def ping_interval(self) -> float:  # heartbeats notice dead peers
        return self.runtime.settings.websocket_ping_seconds

    @property
    def ping_timeout(self) -> float:
        return self.runtime.settings.websocket_ping_seconds

    def check_origin(self, origin: str) -> bool:
        return True  # a token, not a cookie, authorizes: cross-origin pages need one too

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            if len(self.request.uri or "") > MAX_URI_BYTES:
                raise ApiError("uri_too_long", f"the URL is over {MAX_URI_BYTES} bytes")
            principal = self.runtime.auth.authenticate(
                self.request.headers.get("Authorization"), self.get_query_argument("token", None)
            )
            require_scope(principal, "read")
        except ApiError as exc:
            self.set_status(exc.http_status)
            self.set_header("Content-Type", "application/json")
            if exc.code == "unauthenticated":
                self.set_header("WWW-Authenticate", "Bearer")
            self.finish(orjson.dumps(exc.to_json()))
            return
        await super().get(*args, **kwargs)

    @property
    def _limit(self) -> int:
        return self.runtime.settings.websocket_buffer_bytes

    def _new_cursor(self, after_seq: int, selector: EventSelector, live: bool) -> EventCursor:
        return EventCursor(
            after_seq,
            selector,
            page_size=REPLAY_PAGE,
            hold_limit=self._limit,
            size=lambda event: len(self.render(event)),
            caught_up=live,
        )

    # ---- subclasses say what they stream ----

    def render(self, event: Event) -> bytes:
        raise NotImplementedError

    def ends_with(self, event: Event) -> bool:
        return False

    # ---- replay, then live (IOLoop thread) ----

    def go_live(self, selector: EventSelector) -> None:
        """Send what is stored from now on: no replay."""
        self._cursor = self._new_cursor(0, selector, live=True)
        self._live = True
        self.runtime.hub.add(self, selector)

    async def stream_from(self, after_seq: int, selector: EventSelector) -> None:
        """Register for live events, send what is stored after `after_seq` and what
        arrived meanwhile, in order, then go live."""
        cursor = self._cursor = self._new_cursor(after_seq, selector, live=False)
        self.runtime.hub.add(self, selector)
        store = self.runtime.store
        half = self._limit // 2
        while not self._closing:
            batch: list[Event] = []
            while len(batch) < REPLAY_BATCH and (event := cursor.take()) is not None:
                batch.append(event)
            if batch:
                written = self._write(batch)
                if written is not None and self._unsent_bytes > half:
                    with contextlib.suppress(Exception):  # closed meanwhile: _closing says
                        await written
            elif cursor.caught_up:
                break
            else:
                read = partial(
                    store.events_after, cursor.position, cursor.selector, limit=cursor.page_size
                )
                cursor.page(await self.runtime.read(read))
        self._live = True

    def deliver(self, events: list[Event]) -> None:
        if self._closing:
            return
        if self._cursor.offer(events):
            self._give_up()
        elif self._live:
            self._write(self._cursor.drain())

    def _write(self, events: list[Event]) -> Future[None] | None:
        """Write these events, a frame each, in one stream write, up to the byte bound
        (past it: close with 1013) or the socket's last event; the write's future, or None
        when nothing was written."""
        if self._closing or not events:
            return None
        while self._unsent and self._unsent[0][0].done():
            self._unsent_bytes -= self._unsent.popleft()[1]
        room = self._limit - self._unsent_bytes
        messages: list[bytes] = []
        size = 0
        too_much = last = False
        for event in events:
            message = self.render(event)
            if size + len(message) > room and (messages or self._unsent_bytes):
                too_much = True
                break
            messages.append(message)
            size += len(message)
            if self.ends_with(event):
                last = True
                break
        connection = self.ws_connection
        if connection is None or connection.stream is None or connection.is_closing():
            self._stop()
            return None
        written: Future[None] | None = None
        if messages:
            try:
                written = connection.stream.write(text_frames(messages))
            except StreamClosedError:
                self._stop()
                return None
            if written.done():  # the kernel took it all, and so everything before it
                self._unsent.clear()
                self._unsent_bytes = 0
            else:
                self._unsent.append((written, size))
                self._unsent_bytes += size
        if too_much:
            self._give_up()
        elif last:
            self._stop()
            self.close(1000, "execution completed")
        return written

    def _give_up(self) -> None:
        log.info("closing a WebSocket that does not keep up (%s)", self.request.path)
        self._stop()
        self.close(CLOSE_TRY_AGAIN, "client too slow")  # queued behind the backlog

    def _stop(self) -> None:
        self._closing = True
        self.runtime.hub.remove(self)

    def on_close(self) -> None:
        self._stop()

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say; what they send is ignored."""


class ExecutionSocket(EventSocket):
    async def open(self, execution_id: str) -> None:
        if await self.runtime.read(self.runtime.store.execution_status, execution_id) is None:
            self._stop()
            self.close(CLOSE_NOT_FOUND, "execution not found")
            return
        await self.stream_from(0, EventSelector(execution_id=execution_id))

    def render(self, event: Event) -> bytes:
        return event.message_json

    def ends_with(self, event: Event) -> bool:
        return event.type == EXECUTION_COMPLETED


class EventsSocket(EventSocket):
    async def open(self) -> None:
        types = [t for t in self.get_query_argument("types", "").split(",") if t]
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            self._stop()
            self.close(CLOSE_BAD_REQUEST, f"unknown event types: {', '.join(unknown)}")
            return
        selector = EventSelector.of(types, self.get_query_argument("execution_id", None) or None)
        since = self.get_query_argument("since", None)
        if since is None:
            self.go_live(selector)
            return
        after = await self.runtime.read(self.runtime.store.event_seq, since)
        if after is None:
            self._stop()
            self.close(CLOSE_NOT_FOUND, "unknown event id in since")
            return
        await self.stream_from(after, selector)

    def render(self, event: Event) -> bytes:
        return event.record_json


_ID = r"([^/]+)"
TOKEN = text("token", "The bearer token, for clients that cannot set the Authorization header")
EVENTS_QUERY = (
    text("types", "Comma-separated event types: " + ", ".join(EVENT_TYPES)),
    text("execution_id", "Only this execution's events"),
    text("since", "Replay the events after this event id"),
    TOKEN,
)


def described() -> dict[str, Any]:
    """The sockets as the OpenAPI document's `x-websockets` shows them."""
    too_slow = {str(CLOSE_TRY_AGAIN): "the client did not keep up with the stream"}
    return {
        "/ws/executions/{execution_id}": {
            "description": "One execution's events as {type, timestamp, data} messages: "
            "first the earlier ones, then live; closed after execution_completed. Needs the "
            "`read` scope; an authentication failure answers the upgrade request with the "
            "Error body and status 401 or 403.",
            "parameters": [path_param("execution_id", "An execution id"), TOKEN.to_openapi()],
            "message": ref("ExecutionMessage"),
            "closeCodes": {
                "1000": "the execution completed",
                str(CLOSE_NOT_FOUND): "unknown execution id",
                **too_slow,
            },
        },
        "/ws/events": {
            "description": "Event records: live ones, or with `since` those after that "
            "event first. Needs the `read` scope.",
            "parameters": [q.to_openapi() for q in EVENTS_QUERY],
            "message": ref("Event"),
            "closeCodes": {
                str(CLOSE_BAD_REQUEST): "unknown event type in `types`",
                str(CLOSE_NOT_FOUND): "unknown event id in `since`",
                **too_slow,
            },
        },
    }


default_handlers = [
    (rf"/ws/executions/{_ID}", ExecutionSocket),
    (r"/ws/events", EventsSocket),
]
