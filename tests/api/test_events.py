"""The Events API and both WebSockets against a real server: replay then live, no gap
and no duplicate, filters, auth before the upgrade, and slow clients closed with 1013."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.support import (
    READ_TOKEN,
    TOKEN,
    Client,
    ServerThread,
    command,
    make_settings,
    wait_until,
)


def stored(server: ServerThread, execution_id: str) -> list[Any]:
    return server.runtime.store.events_for(execution_id)


async def read_all(ws: WebSocketClientConnection, timeout: float = 15) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    messages = []
    while True:
        message = await asyncio.wait_for(ws.read_message(), timeout)
        if message is None:
            return messages
        messages.append(orjson.loads(message))


async def read_n(ws: WebSocketClientConnection, n: int, timeout: float = 15) -> list[dict]:
    return [orjson.loads(await asyncio.wait_for(ws.read_message(), timeout)) for _ in range(n)]


def ws_url(server: ServerThread, path: str, token: str | None = TOKEN) -> str:
    sep = "&" if "?" in path else "?"
    return f"ws://127.0.0.1:{server.port}{path}" + (f"{sep}token={token}" if token else "")


def test_list_filter_and_get_events(server: ServerThread, client: Client) -> None:
    execution_id = client.create([command("a", "echo hi")])
    client.wait_for_status(execution_id)
    wait_until(lambda: stored(server, execution_id)[-1].type == "execution_completed")
    page = client.get(f"/api/events?execution_id={execution_id}&limit=100").json
    mine = stored(server, execution_id)
    assert page["total"] == len(mine)
    assert [e["event_id"] for e in page["events"]] == [e.event_id for e in reversed(mine)]
    record = page["events"][0]
    assert set(record) == {"event_id", "type", "timestamp", "execution_id", "payload"}
    assert record["type"] == "execution_completed"

    only = client.get(f"/api/events?execution_id={execution_id}&type=step_started").json
    assert [e["payload"]["step_id"] for e in only["events"]] == ["a"]
    paged = client.get(f"/api/events?execution_id={execution_id}&limit=2&offset=1").json
    assert [e["event_id"] for e in paged["events"]] == [e["event_id"] for e in page["events"][1:3]]
    assert (
        client.get(f"/api/events?execution_id={execution_id}&to_date=2000-01-01").json["total"] == 0
    )

    one = client.get(f"/api/events/{record['event_id']}").json
    assert one == record
    assert client.get(f"/api/events/{uuid.uuid4()}").status == 404
    bad = client.get("/api/events?type=nonsense")
    assert bad.status == 400 and bad.json["error"]["details"][0]["field"] == "type"


def test_execution_socket_replays_for_a_late_subscriber_then_closes(
    server: ServerThread, client: Client
) -> None:
    execution_id = client.create([command("a", "echo one"), command("b", "echo two")])
    client.wait_for_status(execution_id)

    async def scenario() -> list[dict[str, Any]]:
        ws = await websocket_connect(ws_url(server, f"/ws/executions/{execution_id}"))
        messages = await read_all(ws)
        assert ws.close_code == 1000
        return messages

    messages = asyncio.run(scenario())
    expected = [e.message() for e in stored(server, execution_id)]
    assert messages == expected
    assert messages[-1]["type"] == "execution_completed"
    assert set(messages[0]) == {"type", "timestamp", "data"}


def test_no_gap_and_no_duplicate_while_a_chatty_execution_runs(
    server: ServerThread, client: Client
) -> None:
    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        execution_id = client.create(
            [
                command("chatty", "for i in $(seq 1 3000); do echo line $i; done"),
                command("more", "seq 1 2000"),
            ]
        )
        ws = await websocket_connect(ws_url(server, f"/ws/executions/{execution_id}"))
        return execution_id, await read_all(ws)

    execution_id, messages = asyncio.run(scenario())
    assert messages == [e.message() for e in stored(server, execution_id)]
    text = "".join(
        m["data"]["output"]
        for m in messages
        if m["type"] == "step_output" and m["data"]["step_id"] == "chatty"
    )
    assert text == "".join(f"line {i}\n" for i in range(1, 3001))
    outputs = sum(1 for m in messages if m["type"] == "step_output")
    assert outputs < 100  # coalesced: thousands of lines, few messages


def test_unknown_execution_closes_with_4404(server: ServerThread) -> None:
    async def scenario() -> int | None:
        ws = await websocket_connect(ws_url(server, f"/ws/executions/{uuid.uuid4()}"))
        assert await ws.read_message() is None
        return ws.close_code

    assert asyncio.run(scenario()) == 4404


def test_events_socket_filters_live_events(server: ServerThread, client: Client) -> None:
    async def scenario() -> tuple[str, list[dict], list[dict]]:
        listening = len(server.runtime.hub)
        everything = await websocket_connect(ws_url(server, "/ws/events"))
        started = await websocket_connect(
            ws_url(server, "/ws/events?types=step_started,execution_completed")
        )
        # Both registered with the hub before the execution exists.
        wait_until(lambda: len(server.runtime.hub) >= listening + 2)
        execution_id = client.create([command("a", "true"), command("b", "true")])
        mine = wait_until(
            lambda: (
                (events := stored(server, execution_id))
                and events[-1].type == "execution_completed"
                and events
            )
        )
        all_messages = await read_n(everything, len(mine))
        some = await read_n(started, 3)
        return execution_id, all_messages, some

    execution_id, all_messages, some = asyncio.run(scenario())
    mine = stored(server, execution_id)
    assert [m["event_id"] for m in all_messages] == [e.event_id for e in mine]
    assert all_messages[0] == mine[0].record()
    assert [m["type"] for m in some] == ["step_started", "step_started", "execution_completed"]


def notify_loop(count: int) -> list[dict[str, Any]]:
    """A loop of `count` notify steps: each bus batch mixes step events and notifications."""
    notify = {"id": "n", "type": "notify", "parameters": {"message": "i ${index}"}}
    loop = {"count": count, "max_iterations": count, "steps": [notify]}
    return [{"id": "l", "type": "loop", "parameters": loop}]


def test_a_socket_for_one_type_gets_exactly_those_events_in_order(
    server: ServerThread, client: Client
) -> None:
    """A socket of one type and one of everything share the batches; each gets its
    events, in `seq` order, and nothing else: the next message after a first execution's
    notifications is the second execution's one notification."""

    async def scenario() -> tuple[str, list[dict], list[dict]]:
        listening = len(server.runtime.hub)
        notes = await websocket_connect(ws_url(server, "/ws/events?types=notification"))
        everything = await websocket_connect(ws_url(server, "/ws/events"))
        wait_until(lambda: len(server.runtime.hub) >= listening + 2)
        first = client.create(notify_loop(30))
        mine = await asyncio.to_thread(
            wait_until,
            lambda: (e := stored(server, first)) and e[-1].type == "execution_completed" and e,
        )
        got_notes = await read_n(notes, 30)
        got_all = await read_n(everything, len(mine))
        second = client.create(notify_loop(1))
        next_note = (await read_n(notes, 1))[0]
        assert next_note["execution_id"] == second
        client.wait_for_status(second)
        return first, got_notes, got_all

    first, got_notes, got_all = asyncio.run(scenario())
    mine = stored(server, first)
    assert [m["event_id"] for m in got_all] == [e.event_id for e in mine]
    wanted = [e.event_id for e in mine if e.type == "notification"]
    assert [m["event_id"] for m in got_notes] == wanted
    assert [m["payload"]["message"] for m in got_notes] == [f"i {i}" for i in range(30)]


def test_events_socket_since_replays_exactly_what_came_after(
    server: ServerThread, client: Client
) -> None:
    execution_id = client.create([command("a", "echo x"), command("b", "echo y")])
    client.wait_for_status(execution_id)
    mine = wait_until(
        lambda: (e := stored(server, execution_id))[-1].type == "execution_completed" and e
    )
    cut = mine[2]

    async def scenario() -> list[dict[str, Any]]:
        ws = await websocket_connect(
            ws_url(server, f"/ws/events?since={cut.event_id}&execution_id={execution_id}")
        )
        return await read_n(ws, len(mine) - 3)

    assert [m["event_id"] for m in asyncio.run(scenario())] == [e.event_id for e in mine[3:]]


@pytest.mark.parametrize(
    ("path", "code"),
    [("/ws/events?since=nope", 4404), ("/ws/events?types=bogus", 4400)],
)
def test_events_socket_bad_queries_close(server: ServerThread, path: str, code: int) -> None:
    async def scenario() -> int | None:
        ws = await websocket_connect(ws_url(server, path))
        assert await ws.read_message() is None
        return ws.close_code

    assert asyncio.run(scenario()) == code


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_bad_token_never_gets_a_socket(server: ServerThread, token: str | None) -> None:
    async def scenario() -> None:
        await websocket_connect(ws_url(server, "/ws/events", token))

    with pytest.raises(Exception) as caught:
        asyncio.run(scenario())
    assert getattr(caught.value, "code", None) == 401


def test_header_and_read_only_tokens_work(server: ServerThread) -> None:
    async def scenario() -> None:
        from tornado.httpclient import HTTPRequest

        ws = await websocket_connect(
            HTTPRequest(
                ws_url(server, "/ws/events", None), headers={"Authorization": f"Bearer {TOKEN}"}
            )
        )
        ws.close()
        ws = await websocket_connect(ws_url(server, "/ws/events", READ_TOKEN))
        ws.close()

    asyncio.run(scenario())


RECEIVE_BUFFER = 256 * 1024


def _raw_socket_that_never_reads(port: int, path: str) -> socket.socket:
    """A WebSocket client that never reads, with a small kernel receive buffer (Linux
    would grow it to tens of MiB on loopback and hide the server's backlog)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def _close_code(sock: socket.socket) -> tuple[int | None, int]:
    """Read what a server sends after its 101 until its close frame, keeping only the
    frame header being read (frames from a server are not masked): the close code (None
    if the stream ends first) and how many bytes came before it."""
    pending, seen = b"", 0

    def need(size: int) -> None:
        nonlocal pending, seen
        while len(pending) < size:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            pending += chunk
            seen += len(chunk)

    try:
        while b"\r\n\r\n" not in pending:
            need(len(pending) + 1)
        pending = pending.partition(b"\r\n\r\n")[2]
        seen = len(pending)
        while True:
            need(2)
            opcode, length, at = pending[0] & 0x0F, pending[1] & 0x7F, 2
            if length >= 126:
                width = 2 if length == 126 else 8
                need(2 + width)
                length, at = int.from_bytes(pending[2 : 2 + width], "big"), 2 + width
            if opcode == 0x8:
                need(at + 2)
                return int.from_bytes(pending[at : at + 2], "big"), seen
            skip = at + length
            while skip > len(pending):
                skip -= len(pending)
                pending = sock.recv(min(skip, 1 << 16))
                seen += len(pending)
                if not pending:
                    return None, seen
            pending = pending[skip:]
    except (EOFError, OSError):  # the end, a reset, or nothing for too long
        return None, seen


def _kernel_send_buffer_max() -> int:
    """The most a TCP socket's kernel send buffer grows to on this machine (Linux)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


STEPS, STEP_BYTES, STUCK = 24, 1_000_000, 3


def test_clients_that_stop_reading_are_closed_with_1013_and_memory_stays_bounded(
    tmp_path,
) -> None:
    """The send buffer is bounded in bytes: a socket whose client never reads holds at
    most `websocket_buffer_bytes` unsent, then is closed with 1013; a reading client on
    the same stream gets everything. The output is many steps of 1 MB (to stderr, so no
    variable carries it), in 250 kB writes, so the volume is many events whatever one
    step's live output is capped at.

    Memory is what the server still holds once the flood is over (traced, after a
    collection): that is where a backlog lives. RSS is no measure here: the engine's
    passing peaks and the allocator's fragmentation move it by tens of MiB from one run
    to the next."""
    limit = 4 << 20
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", websocket_buffer_bytes=limit
    )
    server = ServerThread(settings).start()
    stuck = []
    try:
        client = server.client()
        stuck = [
            _raw_socket_that_never_reads(server.port, f"/ws/events?token={TOKEN}")
            for _ in range(STUCK)
        ]
        wait_until(lambda: len(server.runtime.hub) == STUCK)
        heard: list[tuple[int | None, int]] = []

        def read_one_stuck_socket_once_all_are_dropped() -> None:
            wait_until(lambda: len(server.runtime.hub) == 1, timeout=60)  # the reader stays
            stuck[0].settimeout(10)
            heard.append(_close_code(stuck[0]))

        drain = threading.Thread(target=read_one_stuck_socket_once_all_are_dropped, daemon=True)

        async def reader() -> tuple[int, int]:
            ws = await websocket_connect(ws_url(server, "/ws/events?types=step_output"))
            wait_until(lambda: len(server.runtime.hub) == STUCK + 1)
            drain.start()
            tracemalloc.start()
            write = f"head -c {STEP_BYTES // 4} /dev/zero | tr '\\0' x >&2"
            flood = [
                command(f"s{i}", f"for i in 1 2 3 4; do {write}; sleep 0.02; done")
                for i in range(STEPS)
            ]
            execution_id = client.create(flood)
            got = 0
            while got < STEPS * STEP_BYTES:
                message = orjson.loads(await asyncio.wait_for(ws.read_message(), 30))
                got += len(message["payload"]["output"])
            client.wait_for_status(execution_id)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            ws.close()
            return got, held

        got, held = asyncio.run(reader())
        assert got == STEPS * STEP_BYTES  # the reading client got everything
        # at most `limit` per stuck socket, and some slack for the rest
        assert held < STUCK * limit + (4 << 20), f"the server holds {held >> 20} MiB"
        drain.join(60)
        # its backlog (at most the bound, the kernel's buffers and one message), then 1013
        ((code, backlog),) = heard
        assert code == 1013
        in_kernel = _kernel_send_buffer_max() + 2 * RECEIVE_BUFFER  # Linux doubles SO_RCVBUF
        assert backlog <= limit + in_kernel + STEP_BYTES, f"{backlog >> 20} MiB before 1013"
        wait_until(lambda: len(server.runtime.hub) == 0)  # every stuck one was dropped
    finally:
        for sock in stuck:
            sock.close()
        server.stop()


def test_rest_and_both_sockets_tell_the_same_story(server: ServerThread, client: Client) -> None:
    execution_id = client.create([command("a", "seq 1 50"), command("b", "echo done")])
    client.wait_for_status(execution_id)
    listed = wait_until(
        lambda: (
            (
                page := client.get(f"/api/events?execution_id={execution_id}&limit=1000").json[
                    "events"
                ]
            )
            and page[0]["type"] == "execution_completed"
            and page
        )
    )
    in_order = list(reversed(listed))

    async def sockets() -> tuple[list[dict], list[dict]]:
        late = await websocket_connect(ws_url(server, f"/ws/executions/{execution_id}"))
        messages = await read_all(late)
        again = await websocket_connect(
            ws_url(
                server, f"/ws/events?since={in_order[0]['event_id']}&execution_id={execution_id}"
            )
        )
        replayed = await read_n(again, len(in_order) - 1)
        again.close()
        return messages, replayed

    messages, replayed = asyncio.run(sockets())
    assert messages == [
        {"type": e["type"], "timestamp": e["timestamp"], "data": e["payload"]} for e in in_order
    ]
    assert replayed == in_order[1:]


def test_tokens_in_urls_never_reach_the_access_log(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="tornado.access")

    async def scenario() -> None:
        with contextlib.suppress(Exception):
            await websocket_connect(ws_url(server, "/ws/events", "secret-looking-token"))

    asyncio.run(scenario())
    client = server.client(token=None)
    client.get("/api/executions?token=another-secret-token")

    def logged() -> str:
        return " ".join(r.getMessage() for r in caplog.records if r.name == "tornado.access")

    wait_until(lambda: "/ws/events" in logged() and "/api/executions" in logged())
    assert "secret" not in logged()
