"""An existing Tornado application embeds Synthesis on its own IOLoop, under a prefix."""

from __future__ import annotations

import asyncio
import threading

import orjson
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from synthesis.actors.messages import Listen
from synthesis.runtime import Runtime
from tests.support import TOKEN, make_settings


class HelloHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"hello": "from the host app"})


def test_host_app_mounts_synthesis_under_a_prefix(tmp_path) -> None:
    async def scenario() -> None:
        runtime = Runtime(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
        await runtime.start()
        app = tornado.web.Application([(r"/hello", HelloHandler), *runtime.handlers("/synthesis")])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        http = tornado.httpclient.AsyncHTTPClient()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": "Bearer test-token"}
        try:
            hello = await http.fetch(f"{base}/hello")
            assert orjson.loads(hello.body) == {"hello": "from the host app"}

            # The bus tells its listeners once an event is stored: wait for the end there.
            loop = asyncio.get_running_loop()
            completed: asyncio.Future[dict] = loop.create_future()

            def on_events(events: list) -> None:  # bus thread
                for event in events:
                    if event.type == "execution_completed":
                        loop.call_soon_threadsafe(
                            lambda data=dict(event.data): (
                                completed.done() or completed.set_result(data)
                            )
                        )

            runtime.bus.tell(Listen(on_events))
            plan = {
                "name": "embedded",
                "steps": [
                    {"id": "s", "type": "command", "parameters": {"command": "echo embedded"}}
                ],
            }
            created = await http.fetch(
                f"{base}/synthesis/api/executions",
                method="POST",
                headers=auth,
                body=orjson.dumps({"plan": plan, "start": True}),
            )
            execution_id = orjson.loads(created.body)["execution_id"]
            ended = await asyncio.wait_for(completed, 10)
            assert ended == {
                "execution_id": execution_id,
                "status": "completed",
                "duration_ms": ended["duration_ms"],
            }
            detail = orjson.loads(
                (
                    await http.fetch(
                        f"{base}/synthesis/api/executions/{execution_id}", headers=auth
                    )
                ).body
            )
            assert detail["status"] == "completed"
            assert detail["steps"][0]["output"] == "embedded\n"

            health = await http.fetch(f"{base}/synthesis/health")
            assert orjson.loads(health.body)["status"] == "healthy"
            # The host app's routes stay the host's: Synthesis claims only its prefix.
            missing = await http.fetch(f"{base}/api/executions", raise_error=False)
            assert missing.code == 404
        finally:
            server.stop()
            await runtime.stop()
            await server.close_all_connections()
        assert not [t for t in threading.enumerate() if t.name == "synthesis-aio"]

    asyncio.run(scenario())


def test_a_request_after_the_runtime_stopped_is_unavailable_not_an_internal_error(
    tmp_path,
) -> None:
    """A kept-alive connection can still bring a request while the server drains: once
    the runtime has stopped, it is answered 503 `unavailable` (try again), never 500."""

    async def scenario() -> None:
        runtime = Runtime(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
        await runtime.start()
        app = tornado.web.Application(runtime.handlers())
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        http = tornado.httpclient.AsyncHTTPClient()
        try:
            await runtime.stop()
            answer = await http.fetch(
                f"http://127.0.0.1:{port}/api/executions",
                headers={"Authorization": f"Bearer {TOKEN}"},
                raise_error=False,
            )
            assert answer.code == 503, answer.body
            assert orjson.loads(answer.body)["error"]["code"] == "unavailable"
        finally:
            server.stop()
            await server.close_all_connections()

    asyncio.run(scenario())
