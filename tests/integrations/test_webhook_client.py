"""The webhook client (integrations/webhook_client.py) against real loopback servers: one
connection kept alive, a connection the callback closes between posts, the timeout, the
answer's framing, `--deny-private-targets` and TLS verification."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from synthesis.integrations.http import TargetRefused
from synthesis.integrations.webhook_client import MAX_BODY, ClosedUnanswered, WebhookClient

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
FIXED = {"Content-Type": "application/json", "User-Agent": "test"}


class Callback:
    """A raw HTTP/1.1 server: `answer(connection, request)` (both counted from 0) gives the
    bytes to answer, or None to close the connection unanswered; after `close_after` the
    connection is closed once answered (without saying so)."""

    def __init__(
        self,
        answer: Callable[[int, int], bytes | None] = lambda _c, _r: OK,
        close_after: bool = False,
    ) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self.connections = 0
        self.port = 0

    async def start(self, tls: ssl.SSLContext | None = None) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, self.connections = self.connections, self.connections + 1
        try:
            for index in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append((connection, head, body))
                answer = self.answer(connection, index)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def run(
    callback: Callback, test: Callable[[int], Awaitable[Any]], tls: ssl.SSLContext | None = None
) -> Any:
    async def main() -> Any:
        server = await callback.start(tls)
        async with server:
            return await test(callback.port)

    return asyncio.run(main())


def assert_refused(answer: bytes, match: str | None = None) -> None:
    """A receiver that answers `answer` to a POST fails the attempt with a ValueError."""
    callback = Callback(lambda _c, _r: answer)

    async def test(port: int) -> None:
        client = WebhookClient(f"http://127.0.0.1:{port}/", FIXED, deny_private=False)
        with pytest.raises(ValueError, match=match):
            await client.post({}, b"{}", 5)
        client.close()

    run(callback, test)


async def post_all(client: WebhookClient, count: int) -> list[int]:
    try:
        return [(await client.post({"X-N": str(n)}, b"{}", 5)).code for n in range(count)]
    finally:
        client.close()


def test_one_connection_serves_every_post_with_the_head_of_each() -> None:
    callback = Callback()

    async def test(port: int) -> list[int]:
        url = f"http://us%20er:pw@127.0.0.1:{port}/hooks/a?x=1"
        client = WebhookClient(url, FIXED, deny_private=False)
        codes = await post_all(client, 3)
        assert client.connections == 1
        return codes

    assert run(callback, test) == [200, 200, 200]
    assert callback.connections == 1
    assert [(c, body) for c, _head, body in callback.requests] == [(0, b"{}")] * 3
    head = callback.requests[2][1].decode()
    token = base64.b64encode(b"us er:pw").decode()
    assert head == (
        "POST /hooks/a?x=1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{callback.port}\r\n"
        "Content-Type: application/json\r\nUser-Agent: test\r\n"
        f"Authorization: Basic {token}\r\n"
        "X-N: 2\r\nContent-Length: 2\r\n\r\n"
    )


def test_a_callback_that_closes_after_each_answer_gets_every_post() -> None:
    callback = Callback(close_after=True)

    async def test(port: int) -> list[int]:
        client = WebhookClient(f"http://127.0.0.1:{port}/", FIXED, deny_private=False)
        codes = []
        for n in range(3):
            codes += [(await client.post({}, b"{}", 5)).code]
            await asyncio.sleep(0.05 * n)  # the close seen before the next post, or not yet
        client.close()
        return codes

    assert run(callback, test) == [200, 200, 200]
    assert [c for c, _h, _b in callback.requests] == [0, 1, 2]


def test_a_reused_connection_closed_unanswered_is_posted_again_on_a_new_one() -> None:
    callback = Callback(lambda _c, request: OK if request == 0 else None)

    async def test(port: int) -> list[int]:
        return await post_all(WebhookClient(f"http://127.0.0.1:{port}/", FIXED, False), 4)

    assert run(callback, test) == [200] * 4
    sent = [(c, head.split(b"X-N: ")[1][:1]) for c, head, _body in callback.requests]
    # each connection answers its first request only: the second goes again on the next
    assert sent == [(0, b"0"), (0, b"1"), (1, b"1"), (1, b"2"), (2, b"2"), (2, b"3"), (3, b"3")]


def test_a_new_connection_closed_unanswered_fails_the_attempt() -> None:
    callback = Callback(lambda _c, _r: None)

    async def test(port: int) -> None:
        client = WebhookClient(f"http://127.0.0.1:{port}/", FIXED, deny_private=False)
        with pytest.raises(ClosedUnanswered):
            await client.post({}, b"{}", 5)

    run(callback, test)
    assert len(callback.requests) == 1


def test_the_timeout_covers_the_answer_and_the_connection_is_not_reused() -> None:
    callback = Callback(lambda c, _r: b"" if c == 0 else OK)  # connection 0: no answer

    async def test(port: int) -> int:
        client = WebhookClient(f"http://127.0.0.1:{port}/", FIXED, deny_private=False)
        with pytest.raises(TimeoutError):
            await client.post({}, b"{}", 0.2)
        code = (await client.post({}, b"{}", 5)).code
        client.close()
        return code

    assert run(callback, test) == 200
    assert callback.connections == 2


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", True),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1) + b"x" * 100, False),
    ],
)
def test_the_answer_is_read_to_its_end_or_the_connection_is_closed(
    answer: bytes, kept: bool
) -> None:
    callback = Callback(lambda _c, _r: answer)

    async def test(port: int) -> list[int]:
        return await post_all(WebhookClient(f"http://127.0.0.1:{port}/", FIXED, False), 2)

    codes = run(callback, test)
    assert codes[0] == codes[1] == (204 if b"204" in answer else 200)
    assert callback.connections == (1 if kept else 2)


def test_a_status_not_2xx_is_answered_with_its_reason() -> None:
    callback = Callback(lambda _c, _r: b"HTTP/1.1 503 Busy Now\r\nContent-Length: 0\r\n\r\n")

    async def test(port: int) -> tuple[int, str]:
        client = WebhookClient(f"http://127.0.0.1:{port}/", FIXED, deny_private=False)
        answer = await client.post({}, b"{}", 5)
        client.close()
        return answer.code, answer.reason

    assert run(callback, test) == (503, "Busy Now")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_refused_address_is_never_connected_to(host: str) -> None:
    callback = Callback()

    async def test(port: int) -> str:
        client = WebhookClient(f"http://{host}:{port}/", FIXED, deny_private=True)
        with pytest.raises(TargetRefused) as refused:
            await client.post({}, b"{}", 5)
        return str(refused.value)

    message = run(callback, test)
    assert message.startswith("refused by --deny-private-targets: ")
    assert "a loopback address" in message and callback.connections == 0


def test_https_is_verified(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    callback = Callback()

    async def test(port: int) -> None:
        client = WebhookClient(f"https://127.0.0.1:{port}/", FIXED, deny_private=False)
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.post({}, b"{}", 5)

    run(callback, test, tls)
    assert callback.requests == []


STALE = b"HTTP/1.1 500 Stale\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "first",
    [
        OK + STALE,  # an extra answer after the first one, in the same write
        b"HTTP/1.1 204 No Content\r\n\r\n" + STALE,  # a body where none may be
    ],
)
def test_bytes_left_after_an_answer_are_never_taken_for_the_next_answer(first: bytes) -> None:
    """A kept-alive connection with bytes left unread after an answer is not used again:
    they would be read as the answer to the next request (a desync)."""
    callback = Callback(
        lambda c, _r: first if c == 0 else b"HTTP/1.1 202 Taken\r\nContent-Length: 0\r\n\r\n"
    )

    async def test(port: int) -> list[int]:
        return await post_all(WebhookClient(f"http://127.0.0.1:{port}/", FIXED, False), 2)

    assert run(callback, test) == [200 if first.startswith(OK) else 204, 202]
    assert callback.connections == 2


@pytest.mark.parametrize(
    "size_line",
    [b"-2", b"+2", b"0x2", b"1_0", b""],
)
def test_a_chunk_size_that_is_not_hex_digits_fails_the_attempt(size_line: bytes) -> None:
    """Chunk sizes are hex digits only (RFC 9112 7.1): `int(x, 16)` also takes a sign, a
    0x prefix and underscores, and a negative size let the body's byte count shrink, so a
    later chunk over MAX_BODY was buffered whole and the connection kept."""
    body = b"%s\r\n" % size_line + b"ok\r\n0\r\n\r\n"
    assert_refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, "chunk")


def test_a_negative_chunk_size_cannot_lift_the_body_bound() -> None:
    big = 4 * MAX_BODY
    body = b"-2\r\n" * (big // 2) + b"%x\r\n" % big + b"x" * big + b"\r\n0\r\n\r\n"
    assert_refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)


@pytest.mark.parametrize("code", [b"99999999999999999999", b"2000", b"20"])
def test_a_status_code_is_three_digits(code: bytes) -> None:
    """RFC 9112 4: status-code = 3DIGIT (as Tornado's client held it). A longer one was
    taken as the code and stored in the delivery row: past the column's integer range the
    commit carrying this actor's records (and its position) was refused."""
    assert_refused(b"HTTP/1.1 %s Huge\r\nContent-Length: 0\r\n\r\n" % code, "status line")
