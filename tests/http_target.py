"""A real HTTP server on loopback for integration tests: it echoes what it gets, answers
any status on demand, redirects, and can be slow."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

import orjson
import tornado.httpserver
import tornado.netutil
import tornado.web


class Echo(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE")

    def _echo(self) -> None:
        body = self.request.body
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode()
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Echo", "yes")
        self.finish(
            orjson.dumps(
                {
                    "method": self.request.method,
                    "path": self.request.path,
                    "query": {
                        k: [v.decode() for v in vs]
                        for k, vs in self.request.query_arguments.items()
                    },
                    "headers": {k.lower(): v for k, v in self.request.headers.items()},
                    "body": parsed,
                }
            )
        )

    get = post = put = delete = _echo  # type: ignore[assignment]


class Status(tornado.web.RequestHandler):
    def get(self, code: str) -> None:
        self.set_status(int(code))
        self.finish(f"status {code}")


class Slow(tornado.web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(float(self.get_argument("seconds", "5")))
        self.finish("late")


class Redirect(tornado.web.RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("to"))


class Text(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("plain text")


class Deep(tornado.web.RequestHandler):
    """JSON nested `levels` deep: [[[...]]]."""

    def get(self, levels: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("[" * int(levels) + "]" * int(levels))


class LoopbackServer:
    """A Tornado application on a free loopback port, on an IOLoop thread of its own."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=type(self).__name__, daemon=True)

    def application(self) -> tornado.web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(self.application())
        self._server.add_sockets(sockets)
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class HttpTarget(LoopbackServer):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def application(self) -> tornado.web.Application:
        return tornado.web.Application(
            [
                (r"/echo.*", Echo),
                (r"/status/(\d+)", Status),
                (r"/slow", Slow),
                (r"/text", Text),
                (r"/redirect", Redirect),
                (r"/deep/(\d+)", Deep),
            ]
        )
