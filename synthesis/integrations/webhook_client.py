"""A small keep-alive HTTP/1.1 client for webhook POSTs (actors/subscriptions.py).

Tornado's SimpleAsyncHTTPClient opens a connection for every request (and resolves the
name each time). A subscription posts one event at a time to one callback, so one
connection, kept alive between deliveries, serves it: `WebhookClient` holds at most one,
opens a new one when it has none or the callback closed it, and sends a request once more
on a new connection when a reused one closed before a byte of the answer came (the
callback may close an idle connection at any moment; delivery is at least once anyway).

What the Tornado client gave is kept:
- `--deny-private-targets`: the name is resolved and every address it resolves to is
  checked (integrations/http.py `refuse_any`), and the connection is made to exactly
  those addresses, so DNS rebinding between check and connect is impossible.
- one timeout covers an attempt (resolve, connect, TLS, request and answer); on timeout
  or any error the connection is dropped, never reused.
- https is verified (system CAs, the URL's host name); redirects are not followed.
- the answer's head is bounded (64 KiB); its body is read and dropped, up to 64 KiB
  (then the connection is closed rather than read on): only the status matters.
- user:password in the URL is sent as Basic authorization, Host without it.

aio loop thread only.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import http
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from synthesis.integrations.http import refuse_any

MAX_HEAD = 64 * 1024  # the answer's status line and headers
MAX_BODY = 64 * 1024  # read and dropped to keep the connection; more closes it
IDLE_SECONDS = 4.0  # an idle connection is closed (servers often close theirs at 5 s)


class ClosedUnanswered(ConnectionError):
    """The callback closed the connection before answering."""


@dataclass(frozen=True)
class Target:
    """Where a callback URL posts to, and the fixed part of its request head."""

    host: str
    port: int
    tls: bool
    head: bytes  # request line and fixed headers, each ending in CRLF

    @classmethod
    def parse(cls, url: str, fixed: Mapping[str, str]) -> Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        tls = parts.scheme == "https"
        netloc = parts.netloc.rpartition("@")[2]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": netloc, **fixed}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        return cls(
            parts.hostname,
            parts.port or (443 if tls else 80),
            tls,
            _lines(lines),
        )


def _lines(lines: list[str]) -> bytes:
    """Head lines, each ended with CRLF; a line with a CR or LF of its own is refused."""
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"illegal characters (CR or LF) in the request head: {line!r}")
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


@dataclass(frozen=True)
class Answer:
    code: int
    reason: str


class WebhookClient:
    """One callback's connection, kept alive between POSTs. aio loop thread."""

    def __init__(self, url: str, fixed: Mapping[str, str], deny_private: bool) -> None:
        self._url = url
        self._fixed = dict(fixed)
        self._deny_private = deny_private
        self._target: Target | None = None  # parsed on first use: a bad URL fails an attempt
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.connections = 0  # opened so far

    async def post(self, headers: Mapping[str, str], body: bytes, timeout: float) -> Answer:
        """POST `body` with `headers` (besides the fixed ones); raises TimeoutError past
        `timeout`, TargetRefused, OSError (ConnectionError, ssl errors) or ValueError."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        try:
            async with asyncio.timeout(timeout):
                answer, keep = await self._exchange(headers, body)
        except BaseException:
            self.close()
            raise
        if keep:
            self._idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self.close)
        else:
            self.close()
        return answer

    def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _exchange(self, headers: Mapping[str, str], body: bytes) -> tuple[Answer, bool]:
        if self._target is None:
            self._target = Target.parse(self._url, self._fixed)
        request = b"".join(
            (
                self._target.head,
                _lines([f"{k}: {v}" for k, v in headers.items()]),
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        reused = self._reader is not None and _idle(self._reader)
        if not reused:
            self.close()
            await self._connect(self._target)
        try:
            return await self._send(request)
        except ClosedUnanswered:
            if not reused:
                raise
        self.close()  # closed while idle: once more on a new connection
        await self._connect(self._target)
        return await self._send(request)

    async def _connect(self, target: Target) -> None:
        """Connect to the checked addresses of the target's host, in the resolver's order."""
        addresses = await _addresses(target.host, target.port)
        if self._deny_private:
            refuse_any(target.host, [address for _family, address in addresses])
        failure: OSError | None = None
        for family, address in addresses:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    address,
                    target.port,
                    family=family,
                    ssl=_tls_context() if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                    limit=MAX_HEAD,
                )
            except OSError as exc:
                failure = exc
                continue
            self.connections += 1
            return
        assert failure is not None
        raise failure

    async def _send(self, request: bytes) -> tuple[Answer, bool]:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readuntil(b"\r\n")
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ClosedUnanswered("the callback closed the connection before answering") from exc
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionError("the callback closed the connection mid-answer") from exc
            raise ClosedUnanswered("the callback closed the connection before answering") from exc
        while True:
            version, code, reason = _status(line)
            headers = await _headers(reader)
            if not (100 <= code < 200) or code == 101:
                break
            line = await reader.readuntil(b"\r\n")  # an interim answer: the real one follows
        keep = await _drop_body(reader, code, headers)
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep = keep and "keep-alive" in connection
        keep = keep and "close" not in connection and _idle(reader)
        return Answer(code, reason), keep


def _idle(reader: asyncio.StreamReader) -> bool:
    """Whether a kept connection can carry the next request: open, and nothing unread
    (bytes the callback sent past its answer would be read as the next answer)."""
    return not reader.at_eof() and not reader._buffer  # (no public peek)


async def _addresses(host: str, port: int) -> list[tuple[int, str]]:
    """(family, IP address) to connect to: a literal IP as it is, a name resolved by the
    loop (getaddrinfo in its executor)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr[0]) for family, _t, _p, _c, sockaddr in infos]


def _status(line: bytes) -> tuple[str, int, str]:
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/1.")
        or len(parts[1]) != 3
        or not parts[1].isascii()
        or not parts[1].isdigit()
    ):  # status-code = 3DIGIT (RFC 9112 4)
        raise ValueError(f"not an HTTP/1 status line: {line[:100]!r}")
    code = int(parts[1])
    reason = parts[2] if len(parts) == 3 and parts[2] else _phrase(code)
    return parts[0], code, reason


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size += len(line)
        if size > MAX_HEAD:
            raise ValueError(f"the answer's head is over {MAX_HEAD} bytes")
        if line == b"\r\n":
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def _chunk_size(line: bytes) -> int:
    """A chunk's size line: hex digits, perhaps extensions after `;` (RFC 9112 7.1)."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or digits.strip(b"0123456789abcdefABCDEF"):
        raise ValueError(f"a bad chunk size in the answer: {line[:40]!r}")
    return int(digits, 16)


async def _drop_body(reader: asyncio.StreamReader, code: int, headers: dict[str, str]) -> bool:
    """Read the answer's body and drop it; whether the connection can be used again."""
    if code in (204, 304):
        return True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        size = 0
        while True:
            chunk = _chunk_size(await reader.readuntil(b"\r\n"))
            size += chunk
            if size > MAX_BODY:
                return False
            if chunk == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return True
            if (await reader.readexactly(chunk + 2))[-2:] != b"\r\n":
                raise ValueError("a chunk of the answer does not end with CRLF")
    length = headers.get("content-length")
    if length is None:  # the body runs to the end of the connection
        size = 0
        while size <= MAX_BODY and (data := await reader.read(MAX_BODY)):
            size += len(data)
        return False
    if not length.isdigit():
        raise ValueError(f"a bad Content-Length: {length[:40]!r}")
    if int(length) > MAX_BODY:
        return False
    await reader.readexactly(int(length))
    return True
