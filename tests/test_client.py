"""synthesis.client.SynthesisClient against a real server (SQLite and PostgreSQL): the
reference's example as written, every method, errors as SynthesisError, and waiting and
subscribing over the WebSockets (with the polling fallback and the timeout)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tornado.websocket import WebSocketClientConnection

from synthesis.client import SynthesisClient, SynthesisError, SynthesisTimeout
from tests.api.test_nodes import NODE_FIELDS
from tests.receiver import Receiver
from tests.support import READ_TOKEN, TOKEN, ServerThread, command, eventually

T = TypeVar("T")


def base_url(server: ServerThread) -> str:
    return f"http://127.0.0.1:{server.port}"


def make_client(server: ServerThread, **kwargs: Any) -> SynthesisClient:
    return SynthesisClient(base_url=base_url(server), **{"token": TOKEN, **kwargs})


def gated(step_id: str, gate: Path, text: str = "opened") -> dict[str, Any]:
    """A command step that runs until `gate` exists."""
    return command(step_id, f"while [ ! -e {gate} ]; do sleep 0.02; done; echo {text}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def step_status(
    client: SynthesisClient, execution_id: str, step_id: str, status: str
) -> dict[str, Any] | None:
    step = await client.get_execution_step(execution_id, step_id)
    return step if step["status"] == status else None


# ---- the reference's example ---------------------------------------------------------


def test_reference_example_runs_as_written(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNTHESIS_TOKEN", TOKEN)
    url = base_url(server)

    # From the reference, "API Clients / Python Client", with only base_url changed.
    async def example():
        # Create client
        client = SynthesisClient(base_url=url)

        try:
            # Create and execute a simple plan
            execution_id = await client.execute_plan(
                {
                    "name": "Example Plan",
                    "description": "An example execution plan",
                    "steps": [
                        {
                            "id": "step1",
                            "type": "command",
                            "parameters": {"command": "echo Hello, World!"},
                        }
                    ],
                }
            )

            # Wait for completion
            result = await client.wait_for_execution(execution_id)

            print(f"Execution completed with status: {result['status']}")

            # Get step outputs
            steps = await client.get_execution_steps(execution_id)
            for step in steps["steps"]:
                print(f"Step {step['id']} output: {step['output']}")

        finally:
            # Close client
            await client.close()

    # Run the example
    asyncio.run(example())

    assert capsys.readouterr().out == (
        "Execution completed with status: completed\nStep step1 output: Hello, World!\n\n"
    )


def test_token_argument_beats_the_environment(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHESIS_TOKEN", "not-the-token")
    assert SynthesisClient().token == "not-the-token"
    assert SynthesisClient().base_url == "http://localhost:8009"

    async def main() -> None:
        async with make_client(server) as client:
            assert (await client.list_integrations())["integrations"]
        async with SynthesisClient(base_url=base_url(server)) as client:
            with pytest.raises(SynthesisError) as caught:
                await client.list_integrations()
            assert caught.value.code == "unauthenticated"

    asyncio.run(main())


# ---- executions ----------------------------------------------------------------------


def test_execution_lifecycle(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    tag = f"t-{uuid.uuid4().hex[:8]}"
    plan = {"name": "lifecycle", "steps": [gated("first", gate), command("second", "echo ${who}")]}

    async def main() -> None:
        async with make_client(server) as client:
            created = await client.create_execution(
                plan, variables={"who": "ana"}, metadata={"tags": [tag], "created_by": "ana"}
            )
            execution_id = created["execution_id"]
            assert created["status"] == "created"
            assert created["plan"]["name"] == "lifecycle"

            listed = await client.list_executions(tag=tag, created_by="ana", limit=5, offset=0)
            assert listed["total"] == 1 and listed["limit"] == 5
            assert listed["executions"][0]["execution_id"] == execution_id
            assert (await client.list_executions(tag=tag, status="running"))["total"] == 0
            since = datetime.now(UTC) - timedelta(hours=1)
            assert (await client.list_executions(tag=tag, from_date=since))["total"] == 1
            assert (await client.list_executions(tag=tag, to_date="2000-01-01"))["total"] == 0

            started = await client.start_execution(execution_id)
            assert started["status"] == "running" and "started_at" in started
            await eventually(lambda: step_status(client, execution_id, "first", "running"))

            paused = await client.pause_execution(execution_id)
            assert paused["status"] == "paused"
            gate.touch()
            await eventually(lambda: step_status(client, execution_id, "first", "completed"))
            assert (await client.get_execution(execution_id))["status"] == "paused"
            assert (await client.get_execution_step(execution_id, "second"))["status"] == "pending"

            resumed = await client.resume_execution(execution_id)
            assert resumed["status"] == "running"
            done = await client.wait_for_execution(execution_id, timeout=15)
            assert done["status"] == "completed"
            assert [s["id"] for s in done["steps"]] == ["first", "second"]

            steps = await client.get_execution_steps(execution_id)
            assert steps["execution_id"] == execution_id
            assert [s["output"] for s in steps["steps"]] == ["opened\n", "ana\n"]
            step = await client.get_execution_step(execution_id, "second")
            assert step["parameters"] == {"command": "echo ana"}  # as it ran, substituted
            assert step["status"] == "completed"
            variables = (await client.get_execution_variables(execution_id))["variables"]
            assert variables["who"] == "ana"
            assert variables["second_output"] == "ana\n"

            with pytest.raises(SynthesisError) as caught:
                await client.start_execution(execution_id)
            assert (caught.value.code, caught.value.status) == ("invalid_state", 409)

    asyncio.run(main())


def test_cancel_a_running_execution(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "never"

    async def main() -> None:
        async with make_client(server) as client:
            execution_id = await client.execute_plan(
                {"name": "cancel", "steps": [gated("hold", gate), command("after", "echo no")]}
            )
            await eventually(lambda: step_status(client, execution_id, "hold", "running"))
            cancelled = await client.cancel_execution(execution_id)
            assert cancelled["status"] == "cancelled"
            done = await client.wait_for_execution(execution_id, timeout=15)
            assert done["status"] == "cancelled"
            assert [s["status"] for s in done["steps"]] == ["cancelled", "cancelled"]

    asyncio.run(main())


# ---- plans ---------------------------------------------------------------------------


def test_plans_crud_and_execute(server: ServerThread) -> None:
    tag = f"p-{uuid.uuid4().hex[:8]}"
    plan = {
        "name": "greet",
        "description": "says hello",
        "variables": {"who": "world"},
        "steps": [command("hello", "echo hello ${who}")],
        "metadata": {"tags": [tag], "created_by": "ana"},
    }

    async def main() -> None:
        async with make_client(server) as client:
            created = await client.create_plan(plan)
            plan_id = created["plan_id"]
            assert created["name"] == "greet" and created["metadata"]["tags"] == [tag]

            listed = await client.list_plans(tag=tag, created_by="ana", limit=10, offset=0)
            assert [p["plan_id"] for p in listed["plans"]] == [plan_id]
            assert (await client.list_plans(tag=tag, to_date=datetime(2000, 1, 1)))["total"] == 0
            assert (await client.get_plan(plan_id))["steps"] == plan["steps"]

            updated = await client.update_plan(plan_id, {**plan, "name": "greet v2"})
            assert updated["name"] == "greet v2" and updated["updated_at"]
            assert (await client.get_plan(plan_id))["name"] == "greet v2"

            run = await client.execute_plan_by_id(
                plan_id, variables={"who": "ana"}, metadata={"tags": ["run"]}
            )
            assert run["plan_id"] == plan_id and run["status"] == "running"
            done = await client.wait_for_execution(run["execution_id"], timeout=15)
            assert done["status"] == "completed"
            assert done["steps"][0]["output"] == "hello ana\n"
            assert done["plan_id"] == plan_id

            deleted = await client.delete_plan(plan_id)
            assert deleted == {"success": True, "message": "Plan deleted successfully"}
            with pytest.raises(SynthesisError) as caught:
                await client.get_plan(plan_id)
            assert caught.value.code == "not_found"

    asyncio.run(main())


def test_secret_variables_through_the_client(server: ServerThread) -> None:
    plan = {"name": "secret", "steps": [command("say", 'echo "$SYNTHESIS_VAR_PIN"')]}

    async def main() -> None:
        async with make_client(server) as client:
            execution_id = await client.execute_plan(
                plan, variables={"pin": "2468-1357"}, secret_variables=["pin"]
            )
            done = await client.wait_for_execution(execution_id, timeout=15)
            assert (done["variables"]["pin"], done["steps"][0]["output"]) == ("***", "***\n")
            plan_id = (await client.create_plan(plan))["plan_id"]
            run = await client.execute_plan_by_id(
                plan_id, variables={"pin": "2468-1357"}, secret_variables=["pin"]
            )
            done = await client.wait_for_execution(run["execution_id"], timeout=15)
            assert done["variables"]["pin"] == "***"
            await client.delete_plan(plan_id)


def test_idempotency_keys_make_retried_creates_safe(server: ServerThread) -> None:
    tag = f"i-{uuid.uuid4().hex[:8]}"
    plan = {"name": "once", "steps": [command("a", "true")], "metadata": {"tags": [tag]}}

    async def main() -> None:
        async with make_client(server) as client:
            key = f"k-{tag}"
            first = await client.create_execution(plan, start=True, idempotency_key=key)
            again = await client.create_execution(plan, start=True, idempotency_key=key)
            assert again == first
            assert await client.execute_plan(plan, idempotency_key=key) == first["execution_id"]
            with pytest.raises(SynthesisError) as caught:
                await client.create_execution(plan, idempotency_key=key)  # not started
            assert caught.value.code == "idempotency_key_reused"
            assert caught.value.status == 409

            stored = await client.create_plan(plan, idempotency_key=f"p-{tag}")
            assert await client.create_plan(plan, idempotency_key=f"p-{tag}") == stored
            run = await client.execute_plan_by_id(stored["plan_id"], idempotency_key=f"r-{tag}")
            rerun = await client.execute_plan_by_id(stored["plan_id"], idempotency_key=f"r-{tag}")
            assert rerun == run
            assert (await client.list_executions(tag=tag))["total"] == 2
            assert (await client.list_plans(tag=tag))["total"] == 1
            for execution_id in (first["execution_id"], run["execution_id"]):
                await client.wait_for_execution(execution_id, timeout=15)

    asyncio.run(main())


# ---- integrations --------------------------------------------------------------------


def test_integrations_and_invocations(server: ServerThread, tmp_path: Path) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            ids = [i["id"] for i in (await client.list_integrations())["integrations"]]
            assert {"cli", "api", "mcp"} <= set(ids)
            cli = await client.get_integration("cli")
            assert "execute_command" in cli["capabilities"]
            assert cli["parameters"]["execute_command"]["command"]["required"] is True
            capabilities = await client.get_integration_capabilities("cli")
            assert capabilities["integration_id"] == "cli"
            assert "execute_script" in [c["id"] for c in capabilities["capabilities"]]

            sync = await client.invoke_capability(
                "cli",
                "execute_command",
                {"command": "pwd; echo Hello, Integration!", "working_directory": str(tmp_path)},
            )
            assert sync["status"] == "completed"
            assert sync["output"] == f"{tmp_path}\nHello, Integration!\n"
            again = await client.get_invocation(sync["invocation_id"])
            assert again["output"] == sync["output"]
            assert again["parameters"]["working_directory"] == str(tmp_path)

            started = await client.invoke_capability(
                "cli", "execute_command", {"command": "echo later"}, async_=True
            )
            assert started["status"] in ("running", "completed")

            async def finished() -> dict[str, Any] | None:
                invocation = await client.get_invocation(started["invocation_id"])
                return invocation if invocation["status"] != "running" else None

            done = await eventually(finished)
            assert done["status"] == "completed" and done["output"] == "later\n"

            with pytest.raises(SynthesisError) as caught:
                await client.invoke_capability("cli", "execute_command", {"nope": 1})
            assert caught.value.code == "validation_error"
            fields = {d["field"] for d in caught.value.details}
            assert {"parameters.nope", "parameters.command"} <= fields

    asyncio.run(main())


# ---- events and subscriptions --------------------------------------------------------


def test_list_and_get_events(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            execution_id = await client.execute_plan(
                {"name": "ev", "steps": [command("a", "true")]}
            )
            await client.wait_for_execution(execution_id, timeout=15)
            page = await client.list_events(execution_id=execution_id, limit=100, offset=0)
            assert page["total"] == len(page["events"]) >= 4
            newest = page["events"][0]
            assert newest["type"] == "execution_completed"
            assert await client.get_event(newest["event_id"]) == newest
            only = await client.list_events(type="step_started", execution_id=execution_id)
            assert [e["payload"]["step_id"] for e in only["events"]] == ["a"]
            since = datetime.now(UTC) + timedelta(hours=1)
            later = await client.list_events(execution_id=execution_id, from_date=since)
            assert later["total"] == 0

    asyncio.run(main())


def test_subscriptions(server: ServerThread) -> None:
    callback = f"http://127.0.0.1:{closed_port()}/hook"
    expiration = datetime.now(UTC) + timedelta(days=1)

    async def main() -> None:
        async with make_client(server) as client:
            created = await client.create_subscription(
                callback,
                types=["execution_completed"],
                filter={"execution_id": "x"},
                expiration=expiration,
                secret="s3cret",
            )
            subscription_id = created["subscription_id"]
            assert created["callback_url"] == callback
            assert created["types"] == ["execution_completed"]
            assert created["filter"] == {"execution_id": "x"}
            assert created["has_secret"] is True
            assert created["expiration"].startswith(expiration.strftime("%Y-%m-%dT%H:%M"))

            listed = await client.list_subscriptions()
            assert subscription_id in [s["subscription_id"] for s in listed["subscriptions"]]
            assert await client.get_subscription(subscription_id) == created
            deliveries = await client.list_deliveries(subscription_id, limit=10, offset=0)
            assert deliveries["subscription_id"] == subscription_id
            assert deliveries["deliveries"] == []
            assert (await client.list_deliveries(subscription_id, status="failed"))["total"] == 0

            paused = await client.pause_subscription(subscription_id)
            assert (paused["status"], paused["paused_reason"]) == ("paused", "paused by request")
            assert (await client.resume_subscription(subscription_id))["status"] == "active"
            with pytest.raises(SynthesisError) as caught:
                await client.resume_subscription(subscription_id)
            assert caught.value.code == "invalid_state"
            with pytest.raises(SynthesisError) as caught:
                await client.redeliver(subscription_id, str(uuid.uuid4()))
            assert caught.value.code == "not_found"

            deleted = await client.delete_subscription(subscription_id)
            assert deleted["success"] is True
            with pytest.raises(SynthesisError) as caught:
                await client.get_subscription(subscription_id)
            assert caught.value.code == "not_found"

            with pytest.raises(SynthesisError) as caught:
                await client.create_subscription("ftp://nowhere", types=["nonsense"])
            assert {d["field"] for d in caught.value.details} == {"callback_url", "types"}

    asyncio.run(main())


def test_redeliver(server: ServerThread) -> None:
    receiver = Receiver().start()
    hook = f"hook-{uuid.uuid4().hex[:12]}"

    async def main() -> None:
        async with make_client(server) as client:
            created = await client.create_subscription(
                receiver.url(hook), types=["plan_created"], filter={"name": hook}
            )
            sid = created["subscription_id"]
            try:
                await client.create_plan({"name": hook, "steps": [command("a", "true")]})
                [first] = await wait_for(lambda: client.list_deliveries(sid, status="delivered"))
                again = await client.redeliver(sid, first["delivery_id"])
                assert again["status"] == "pending"
                assert again["redelivery_of"] == first["delivery_id"]
                both = await wait_for(lambda: client.list_deliveries(sid, status="delivered"), 2)
                assert {d["event_id"] for d in both} == {first["event_id"]}
                assert receiver.event_ids(hook) == [first["event_id"]] * 2
            finally:
                await client.delete_subscription(sid)

    async def wait_for(
        listing: Callable[[], Awaitable[dict[str, Any]]], count: int = 1
    ) -> list[dict[str, Any]]:
        async def rows() -> list[dict[str, Any]] | None:
            found = (await listing())["deliveries"]
            return found if len(found) == count else None

        return await eventually(rows)

    try:
        asyncio.run(main())
    finally:
        receiver.stop()


# ---- system --------------------------------------------------------------------------


def test_health_and_metrics(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            health = await client.health()
            assert health["status"] == "healthy"
            assert set(health["components"]) == {
                "api",
                "execution_engine",
                "storage",
                "event_system",
                "cluster",
            }
            figures = await client.metrics()
            assert isinstance(figures, dict)
            assert set(figures) == {
                "executions",
                "steps",
                "performance",
                "resource_usage",
                "cluster",
                "process_room",
            }
            again = await client.metrics(format="json")
            assert isinstance(again, dict) and set(again) == set(figures)
            text = await client.metrics(format="prometheus")
            assert isinstance(text, str)
            assert "# TYPE synthesis_executions_total counter" in text
            with pytest.raises(SynthesisError) as caught:
                await client.metrics(format="xml")
            assert caught.value.details[0]["field"] == "format"

    asyncio.run(main())


def test_list_nodes_includes_the_server_itself(server: ServerThread) -> None:
    assert server.runtime is not None
    me = server.runtime.node_id

    async def main() -> None:
        async with make_client(server) as client:
            listed = await client.list_nodes()
            assert set(listed) == {"nodes"}
            [node] = [n for n in listed["nodes"] if n["node_id"] == me]
            assert node["pid"] == os.getpid()
            assert node["status"] == "alive"
            assert set(node) == NODE_FIELDS

    asyncio.run(main())


def test_get_me_names_the_token_scopes(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            assert await client.get_me() == {"subject": None, "scopes": ["read", "write"]}
        async with make_client(server, token=READ_TOKEN) as reader:
            assert (await reader.get_me())["scopes"] == ["read"]

    asyncio.run(main())


# ---- errors --------------------------------------------------------------------------


def test_errors_carry_code_message_and_details(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            missing = str(uuid.uuid4())
            with pytest.raises(SynthesisError) as caught:
                await client.get_execution(missing)
            error = caught.value
            assert (error.status, error.code, error.details) == (404, "not_found", [])
            assert missing in error.message and missing in str(error)

            with pytest.raises(SynthesisError) as caught:
                await client.create_execution({"name": "empty", "steps": []})
            error = caught.value
            assert (error.status, error.code) == (400, "validation_error")
            assert error.details and error.details[0]["field"] == "plan.steps"
            assert error.details[0]["message"]
            assert "plan.steps" in str(error)

            with pytest.raises(SynthesisError) as caught:
                await client.list_executions(limit=0)
            assert caught.value.details == [
                {"field": "limit", "message": "must be between 1 and 1000"}
            ]

        async with SynthesisClient(base_url=base_url(server), token="wrong") as client:
            with pytest.raises(SynthesisError) as caught:
                await client.list_plans()
            assert (caught.value.status, caught.value.code) == (401, "unauthenticated")
            with pytest.raises(SynthesisError) as caught:
                async for _ in client.subscribe_to_events():
                    pass
            assert (caught.value.status, caught.value.code) == (401, "unauthenticated")
            assert (await client.health())["status"] == "healthy"  # /health is open

        async with SynthesisClient(f"http://127.0.0.1:{closed_port()}", token=TOKEN) as client:
            with pytest.raises(SynthesisError) as caught:
                await client.get_execution(missing)
            assert (caught.value.status, caught.value.code) == (None, "unavailable")
            with pytest.raises(SynthesisError) as caught:
                await client.wait_for_execution(missing, timeout=5)
            assert caught.value.code == "unavailable"

        with socket.socket() as silent:  # accepts connections, never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            async with SynthesisClient(url, token=TOKEN, timeout=0.2) as client:
                with pytest.raises(SynthesisTimeout) as caught:
                    await client.health()
                assert (caught.value.status, caught.value.code) == (None, "timeout")
                with pytest.raises(SynthesisTimeout):
                    await client.wait_for_execution(missing, timeout=5)

    asyncio.run(main())


def test_socket_errors(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            with pytest.raises(SynthesisError) as caught:
                async for _ in client.subscribe_to_execution(str(uuid.uuid4())):
                    pass
            assert (caught.value.status, caught.value.code) == (404, "not_found")
            with pytest.raises(SynthesisError) as caught:
                async for _ in client.subscribe_to_events(types=["nonsense"], since="x"):
                    pass
            assert caught.value.code == "validation_error"
            with pytest.raises(SynthesisError) as caught:
                async for _ in client.subscribe_to_events(since=str(uuid.uuid4())):
                    pass
            assert caught.value.code == "not_found"
            with pytest.raises(SynthesisError) as caught:
                await client.wait_for_execution(str(uuid.uuid4()), timeout=5)
            assert caught.value.code == "not_found"
            assert client._sockets == set()

    asyncio.run(main())


# ---- waiting -------------------------------------------------------------------------


class CountingClient(SynthesisClient):
    """Counts the GETs of an execution, and can refuse to open WebSockets."""

    def __init__(self, *args: Any, sockets: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sockets = sockets
        self.polled: list[str] = []

    async def get_execution(self, execution_id: str) -> dict[str, Any]:
        execution = await super().get_execution(execution_id)
        self.polled.append(execution["status"])
        return execution

    async def _connect(self, path: str, query: Any = None) -> WebSocketClientConnection:
        if not self.sockets:
            raise SynthesisError("unavailable", "sockets are switched off")
        return await super()._connect(path, query)


def test_wait_for_execution_listens_on_the_socket(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> None:
        async with CountingClient(base_url(server), token=TOKEN) as client:
            execution_id = await client.execute_plan({"name": "w", "steps": [gated("a", gate)]})
            waiting = asyncio.create_task(client.wait_for_execution(execution_id, timeout=15))
            await eventually(lambda: asyncio.sleep(0, bool(client._sockets)))
            gate.touch()
            done = await waiting
            assert done["status"] == "completed"
            assert client.polled == ["completed"]  # one GET, after the socket said it ended
            assert client._sockets == set()

    asyncio.run(main())


def test_wait_for_execution_falls_back_to_polling(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    async def main() -> None:
        async with CountingClient(base_url(server), token=TOKEN, sockets=False) as client:
            execution_id = await client.execute_plan({"name": "p", "steps": [gated("a", gate)]})
            waiting = asyncio.create_task(client.wait_for_execution(execution_id, timeout=15))
            await eventually(lambda: asyncio.sleep(0, "running" in client.polled))
            gate.touch()
            done = await waiting
            assert done["status"] == "completed"
            assert client.polled[-1] == "completed" and len(client.polled) >= 2

    asyncio.run(main())


def test_wait_for_execution_times_out(server: ServerThread, tmp_path: Path) -> None:
    gate = tmp_path / "never"

    async def main() -> None:
        for sockets in (True, False):
            async with CountingClient(base_url(server), token=TOKEN, sockets=sockets) as client:
                execution_id = await client.execute_plan(
                    {"name": "slow", "steps": [gated("a", gate)]}
                )
                with pytest.raises(SynthesisTimeout) as caught:
                    await client.wait_for_execution(execution_id, timeout=0.3)
                assert isinstance(caught.value, asyncio.TimeoutError)
                assert caught.value.code == "timeout"
                assert client._sockets == set()
                await client.cancel_execution(execution_id)
                assert (await client.wait_for_execution(execution_id, timeout=15))[
                    "status"
                ] == "cancelled"

    asyncio.run(main())


# ---- subscribing ---------------------------------------------------------------------


def test_subscribe_to_execution_yields_messages_in_order(server: ServerThread) -> None:
    plan = {"name": "two", "steps": [command("a", "echo one"), command("b", "echo two")]}

    async def main() -> None:
        async with make_client(server) as client:
            execution_id = await client.execute_plan(plan)
            messages = [m async for m in client.subscribe_to_execution(execution_id)]
            assert client._sockets == set()
            types = [m["type"] for m in messages]
            assert types[0] == "execution_created" and types[-1] == "execution_completed"
            assert types.index("step_started") < types.index("step_completed")
            assert messages[-1]["data"]["status"] == "completed"
            assert all(set(m) == {"type", "timestamp", "data"} for m in messages)

            stored = (await client.list_events(execution_id=execution_id, limit=100))["events"]
            stored.reverse()
            assert [(m["type"], m["data"]) for m in messages] == [
                (e["type"], e["payload"]) for e in stored
            ]
            # Connecting after the end replays the same messages, then ends.
            again = [m async for m in client.subscribe_to_execution(execution_id)]
            assert again == messages

    asyncio.run(main())


def test_subscribe_to_events_with_since_then_live(server: ServerThread) -> None:
    async def main() -> None:
        async with make_client(server) as client:
            first = await client.execute_plan({"name": "one", "steps": [command("a", "true")]})
            await client.wait_for_execution(first, timeout=15)
            stored = (await client.list_events(execution_id=first, limit=100))["events"][::-1]

            replayed = []
            async for event in client.subscribe_to_events(
                execution_id=first, since=stored[0]["event_id"]
            ):
                replayed.append(event)
                if len(replayed) == len(stored) - 1:
                    break
            assert replayed == stored[1:]
            assert client._sockets == set()  # stopping the iteration closed the socket

            # Replay from the first execution's end, then the second execution, live.
            stream = client.subscribe_to_events(
                types=["execution_started", "execution_completed"],
                since=stored[0]["event_id"],
            )
            seen = [await anext(stream)]
            second = await client.execute_plan({"name": "two", "steps": [command("b", "true")]})
            async for event in stream:
                seen.append(event)
                if event["execution_id"] == second and event["type"] == "execution_completed":
                    break
            await stream.aclose()
            assert seen[0]["execution_id"] == first
            assert [e["type"] for e in seen if e["execution_id"] == second] == [
                "execution_started",
                "execution_completed",
            ]
            assert {e["type"] for e in seen} <= {"execution_started", "execution_completed"}
            assert client._sockets == set()

    asyncio.run(main())


def test_close_ends_open_subscriptions_and_client_can_be_reused(server: ServerThread) -> None:
    client = make_client(server)

    async def main(close_at_end: bool) -> None:
        collected: list[dict[str, Any]] = []

        async def listen() -> None:
            async for event in client.subscribe_to_events(types=["notification"]):
                collected.append(event)

        listener = asyncio.create_task(listen())
        await eventually(lambda: asyncio.sleep(0, bool(client._sockets)))
        await client.close()
        await asyncio.wait_for(listener, 10)  # ends quietly, without an error
        assert collected == [] and client._sockets == set() and client._http is None
        assert (await client.health())["status"] == "healthy"  # reconnects on demand
        if close_at_end:
            await client.close()

    asyncio.run(main(close_at_end=False))
    asyncio.run(main(close_at_end=True))  # the same client, on a second event loop
