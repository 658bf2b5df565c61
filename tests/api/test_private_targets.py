"""--deny-private-targets through the API, on SQLite and PostgreSQL: http steps, api
invocations and webhook callbacks refuse loopback targets (the other API tests, with the
policy off by default, use loopback targets throughout)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.http_target import HttpTarget
from tests.receiver import Receiver
from tests.support import Client, ServerThread, command, wait_until

SUBSCRIPTIONS = "/api/events/subscriptions"


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {"deny_private_targets": True}


@pytest.fixture(scope="module", autouse=True)
def no_subscription_left(server: ServerThread) -> Iterator[None]:
    yield
    client = server.client()
    for sub in client.get(SUBSCRIPTIONS).json["subscriptions"]:
        client.request("DELETE", f"{SUBSCRIPTIONS}/{sub['subscription_id']}")


def test_an_http_step_and_an_invocation_to_loopback_fail_with_the_policy_message(
    client: Client, target: HttpTarget
) -> None:
    url = f"{target.url}/echo"
    refusal = "refused by --deny-private-targets: 127.0.0.1 is a loopback address"
    execution_id = client.create(
        [{"id": "call", "type": "http", "parameters": {"url": url}}, command("after", "true")]
    )
    done = client.wait_for_status(execution_id)
    steps = {s["id"]: s for s in done["steps"]}
    assert (done["status"], steps["call"]["status"]) == ("failed", "failed")
    assert steps["call"]["error"] == f"GET {url}: {refusal}"

    invoked = client.post(
        "/api/integrations/api/capabilities/http_get", {"parameters": {"url": url}}
    )
    assert invoked.status == 201, invoked  # our refusal, not the far side's (502)
    assert (invoked.json["status"], invoked.json["error"]) == ("failed", f"GET {url}: {refusal}")


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("[::1]", "a loopback"),
        ("169.254.169.254", "a link-local"),
        ("10.0.0.8", "a private"),
    ],
)
def test_a_callback_at_a_literal_private_address_is_a_validation_error(
    client: Client, host: str, kind: str
) -> None:
    response = client.post(SUBSCRIPTIONS, {"callback_url": f"http://{host}:8080/hook"})
    assert response.status == 400, response
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "field": "callback_url",
            "message": f"refused by --deny-private-targets: {host.strip('[]')} is {kind} address",
        }
    ]


def test_a_callback_whose_name_resolves_to_loopback_is_recorded_failed(
    client: Client, receiver: Receiver
) -> None:
    hook = f"hook-{uuid.uuid4().hex[:12]}"
    name = f"plan-{hook}"
    callback = f"http://localhost:{receiver.port}/hooks/{hook}"
    created = client.post(SUBSCRIPTIONS, {"callback_url": callback, "filter": {"name": name}})
    assert created.status == 201, created
    sid = created.json["subscription_id"]
    for _ in range(3):  # refused at once, never retried: three in a row pause it
        plan = client.post("/api/plans", {"name": name, "steps": [command("a", "true")]})
        assert plan.status == 201, plan

    def paused() -> dict[str, Any] | None:
        body = client.get(f"{SUBSCRIPTIONS}/{sid}").json
        return body if body["status"] == "paused" else None

    subscription = wait_until(paused)
    assert subscription["paused_reason"].startswith(
        "paused after 3 events in a row were not delivered; the last one: "
        "refused by --deny-private-targets: localhost resolves to "
    )
    rows = client.get(f"{SUBSCRIPTIONS}/{sid}/deliveries").json["deliveries"]
    assert {(d["status"], d["attempts"], d["status_code"]) for d in rows} == {("failed", 1, None)}
    assert len(rows) == 3 and all("a loopback address" in d["error"] for d in rows)
    assert receiver.arrived[hook] == 0
