"""Webhook subscriptions through the API, delivered to a real loopback receiver, on SQLite
and PostgreSQL: create, list, delete, validation, matching, headers and signature,
retries, slow and dead callbacks, dead letters, pause and resume, redelivery, expiration,
delivery records, and a server restart."""

from __future__ import annotations

import hashlib
import hmac
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from synthesis.config import Settings
from synthesis.engine import clock
from synthesis.engine.event_selector import EventSelector
from synthesis.engine.events import EVENT_TYPES
from synthesis.store.database import EventFilter
from synthesis.store.subscription_models import all_subscriptions
from tests.conftest import fresh_postgres_database
from tests.receiver import Receiver
from tests.support import READ_TOKEN, Client, ServerThread, command, make_settings, wait_until

SUBSCRIPTIONS = "/api/events/subscriptions"
EXECUTION_TYPES = ["execution_started", "step_started", "step_completed", "execution_completed"]


TINY_WEBHOOKS: dict[str, Any] = {
    "webhook_retry_window_seconds": 0.6,
    "webhook_backoff_seconds": 0.02,
    "webhook_max_backoff_seconds": 0.1,
    "webhook_request_timeout_seconds": 15.0,  # a held request must not time out
    "webhook_pause_after_failures": 2,
}


def webhook_settings(data_dir: Path, url: str, **policy: Any) -> Settings:
    """Settings with the webhook delivery policy made tiny."""
    return make_settings(data_dir, url, **{**TINY_WEBHOOKS, **policy})


def delete_all_subscriptions(client: Client) -> None:
    """The PostgreSQL database outlives this module: leave no subscription behind."""
    for sub in client.get(SUBSCRIPTIONS).json["subscriptions"]:
        client.request("DELETE", f"{SUBSCRIPTIONS}/{sub['subscription_id']}")


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    """The shared server (tests/conftest.py) with the webhook policy made tiny."""
    return dict(TINY_WEBHOOKS)


@pytest.fixture(scope="module", autouse=True)
def no_subscription_left(server: ServerThread) -> Iterator[None]:
    yield
    delete_all_subscriptions(server.client())


@pytest.fixture
def hook() -> str:
    """A receiver name of this test's own."""
    return f"hook-{uuid.uuid4().hex[:12]}"


def subscribe(client: Client, callback_url: str, **body: Any) -> dict[str, Any]:
    response = client.post(SUBSCRIPTIONS, {"callback_url": callback_url, **body})
    assert response.status == 201, response
    return response.json


def in_one_hour() -> str:
    return clock.format_time(datetime.now(UTC) + timedelta(hours=1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_plan(client: Client, name: str) -> None:
    response = client.post("/api/plans", {"name": name, "steps": [command("a", "true")]})
    assert response.status == 201, response


def stored_events(server: ServerThread, execution_id: str, types: list[str]) -> list[str]:
    assert server.runtime is not None
    events = server.runtime.store.events_after(0, EventSelector.of(types, execution_id))
    return [e.event_id for e in events]


def deliveries(client: Client, sid: str, **query: str) -> dict[str, Any]:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    response = client.get(f"{SUBSCRIPTIONS}/{sid}/deliveries" + (f"?{suffix}" if suffix else ""))
    assert response.status == 200, response
    return response.json


def two_step_run(client: Client) -> str:
    """An execution, created but not started, so a subscription can name it first."""
    return client.create([command("one", "echo one"), command("two", "echo two")], start=False)


def start(client: Client, execution_id: str) -> None:
    response = client.post(f"/api/executions/{execution_id}/start")
    assert response.status == 200, response
    client.wait_for_status(execution_id, "completed")


# ---- create, list, get, delete, validation ---------------------------------------------


def test_create_list_get_and_delete(client: Client, receiver: Receiver, hook: str) -> None:
    execution_id = str(uuid.uuid4())
    expiration = in_one_hour()
    body = {
        "types": ["execution_started", "execution_completed"],
        "filter": {"execution_id": execution_id},
        "callback_url": receiver.url(hook),
        "expiration": expiration.replace(".000Z", "Z"),
        "secret": "s3cret",
    }
    response = client.post(SUBSCRIPTIONS, body)
    assert response.status == 201, response
    created = response.json
    assert b"s3cret" not in response.raw
    sid = created.pop("subscription_id")
    assert uuid.UUID(sid).version == 4
    assert created.pop("created_at").endswith("Z")
    assert created == {
        "types": body["types"],
        "filter": body["filter"],
        "callback_url": body["callback_url"],
        "expiration": expiration,
        "has_secret": True,
        "status": "active",
        "paused_at": None,
        "paused_reason": None,
    }

    listing = client.get(SUBSCRIPTIONS)
    assert listing.status == 200 and b"s3cret" not in listing.raw
    listed = {s["subscription_id"]: s for s in listing.json["subscriptions"]}
    assert listed[sid] == {
        "subscription_id": sid,
        **created,
        "created_at": listed[sid]["created_at"],
    }
    assert client.get(f"{SUBSCRIPTIONS}/{sid}").json == listed[sid]
    assert deliveries(client, sid) == {
        "subscription_id": sid,
        "total": 0,
        "offset": 0,
        "limit": 50,
        "deliveries": [],
        "total_exact": True,
        "next": None,
        "previous": None,
    }

    gone = client.request("DELETE", f"{SUBSCRIPTIONS}/{sid}")
    assert gone.status == 200, gone
    assert gone.json == {"success": True, "message": "Subscription deleted successfully"}
    listed_after = client.get(SUBSCRIPTIONS).json["subscriptions"]
    assert sid not in [s["subscription_id"] for s in listed_after]
    for method, path in (
        ("DELETE", f"{SUBSCRIPTIONS}/{sid}"),
        ("GET", f"{SUBSCRIPTIONS}/{sid}"),
        ("GET", f"{SUBSCRIPTIONS}/{sid}/deliveries"),
    ):
        response = client.request(method, path)
        assert response.status == 404 and response.json["error"]["code"] == "not_found", path

    minimal = subscribe(client, receiver.url(hook))
    assert (minimal["types"], minimal["filter"], minimal["expiration"]) == ([], {}, None)
    assert minimal["has_secret"] is False
    client.request("DELETE", f"{SUBSCRIPTIONS}/{minimal['subscription_id']}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callback_url": None}, "callback_url"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"callback_url": "http://"}, "callback_url"),
        ({"callback_url": 7}, "callback_url"),
        ({"types": "execution_started"}, "types"),
        ({"types": ["execution_started", "no_such_event"]}, "types"),
        ({"filter": ["execution_id"]}, "filter"),
        ({"filter": {"execution_id": 5}}, "filter.execution_id"),
        ({"expiration": "2020-01-01T00:00:00Z"}, "expiration"),
        ({"expiration": "tomorrow"}, "expiration"),
        ({"expiration": 1760000000}, "expiration"),
        ({"secret": ""}, "secret"),
        ({"secret": ["x"]}, "secret"),
        ({"callbackurl": "http://example.com/"}, "callbackurl"),
    ],
)
def test_bad_input_names_the_field(client: Client, body: dict[str, Any], field: str) -> None:
    response = client.post(SUBSCRIPTIONS, {"callback_url": "http://example.com/hook", **body})
    assert response.status == 400, response
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]


def test_bad_queries_and_scopes(client: Client, server: ServerThread) -> None:
    assert client.get(f"{SUBSCRIPTIONS}?limit=5").status == 400
    sid = subscribe(client, "http://127.0.0.1:9/hook", types=["plan_deleted"])["subscription_id"]
    for query in ("status=lost", "limit=0", "offset=-1", "colour=red"):
        response = client.get(f"{SUBSCRIPTIONS}/{sid}/deliveries?{query}")
        assert response.status == 400 and response.json["error"]["code"] == "validation_error"
    reader = server.client("read-only-token")
    assert reader.get(SUBSCRIPTIONS).status == 200
    refused = reader.post(SUBSCRIPTIONS, {"callback_url": "http://example.com/"})
    assert refused.status == 403
    assert reader.request("DELETE", f"{SUBSCRIPTIONS}/{sid}").status == 403
    assert server.client(None).get(SUBSCRIPTIONS).status == 401
    assert client.request("DELETE", f"{SUBSCRIPTIONS}/{sid}").status == 200


# ---- delivery -----------------------------------------------------------------------------


def test_matching_events_arrive_in_order_with_headers_and_signature(
    client: Client, server: ServerThread, receiver: Receiver, hook: str
) -> None:
    execution_id = two_step_run(client)
    sid = subscribe(
        client,
        receiver.url(hook),
        types=EXECUTION_TYPES,
        filter={"execution_id": execution_id},
        secret="s3cret",
    )["subscription_id"]
    other = two_step_run(client)  # not matching: another execution
    start(client, other)
    start(client, execution_id)

    wait_until(lambda: "execution_completed" in [e["type"] for e in receiver.events(hook)])
    expected = stored_events(server, execution_id, EXECUTION_TYPES)
    assert receiver.event_ids(hook) == expected
    assert [e["type"] for e in receiver.events(hook)] == [
        "execution_started",
        "step_started",
        "step_completed",
        "step_started",
        "step_completed",
        "execution_completed",
    ]
    assert server.runtime is not None
    records = {
        e.event_id: e.record()
        for e in server.runtime.store.events_after(0, EventSelector(execution_id=execution_id))
    }
    with receiver.lock:
        got = list(receiver.received[hook])
    for request in got:
        event = request.event
        assert event == records[event["event_id"]]
        assert request.headers["x-synthesis-event"] == event["type"]
        assert request.headers["x-synthesis-delivery"] == event["event_id"]
        assert request.headers["content-type"] == "application/json"
        digest = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-synthesis-signature"] == f"sha256={digest}"

    def all_recorded() -> dict[str, Any]:
        body = deliveries(client, sid)
        return body if body["total"] == len(expected) else {}

    recorded = wait_until(all_recorded)["deliveries"]
    assert [d["event_id"] for d in recorded] == expected[::-1]  # newest first
    assert {(d["status"], d["attempts"], d["status_code"], d["error"]) for d in recorded} == {
        ("delivered", 1, 200, None)
    }
    assert all(d["completed_at"] >= d["created_at"] for d in recorded)
    page = deliveries(client, sid, limit="2", offset="1", status="delivered")
    assert [d["event_id"] for d in page["deliveries"]] == expected[::-1][1:3]
    assert deliveries(client, sid, status="failed")["total"] == 0


def test_no_secret_no_signature_and_payload_filters(
    client: Client, receiver: Receiver, hook: str
) -> None:
    name = f"plan-{hook}"
    subscribe(client, receiver.url(hook), types=["plan_created"], filter={"name": name})
    new_plan(client, f"other-{hook}")
    new_plan(client, name)
    wait_until(lambda: receiver.events(hook))
    new_plan(client, name)
    wait_until(lambda: len(receiver.events(hook)) == 2)
    events = receiver.events(hook)
    assert [(e["type"], e["payload"]["name"], e["execution_id"]) for e in events] == [
        ("plan_created", name, None),
        ("plan_created", name, None),
    ]
    with receiver.lock:
        assert "x-synthesis-signature" not in receiver.received[hook][0].headers


def test_a_callback_that_fails_twice_gets_the_event_on_the_third_attempt(
    client: Client, receiver: Receiver, hook: str
) -> None:
    name = f"plan-{hook}"
    sid = subscribe(client, receiver.url(hook), filter={"name": name})["subscription_id"]
    receiver.fail_next(hook, 2)
    new_plan(client, name)
    wait_until(lambda: receiver.events(hook))
    assert receiver.attempts[hook] == 3
    assert len(receiver.events(hook)) == 1

    def delivered() -> list[dict[str, Any]]:
        rows = deliveries(client, sid)["deliveries"]
        return rows if rows and rows[0]["status"] == "delivered" else []

    [row] = wait_until(delivered)
    assert (row["attempts"], row["status_code"], row["error"]) == (3, 200, None)
    assert row["event_id"] == receiver.events(hook)[0]["event_id"]


def test_slow_and_dead_callbacks_hold_up_nobody(
    client: Client, server: ServerThread, receiver: Receiver, hook: str
) -> None:
    slow, healthy = f"{hook}-slow", f"{hook}-healthy"
    execution_id = two_step_run(client)
    only_this = {"execution_id": execution_id}
    receiver.hold(slow)
    slow_sid = subscribe(client, receiver.url(slow), filter=only_this)["subscription_id"]
    dead_url = f"http://127.0.0.1:{closed_port()}/hook"
    dead_sid = subscribe(client, dead_url, filter=only_this)["subscription_id"]
    subscribe(client, receiver.url(healthy), filter=only_this)
    start(client, execution_id)

    wait_until(lambda: "execution_completed" in [e["type"] for e in receiver.events(healthy)])
    after_subscribing = [t for t in EVENT_TYPES if t != "execution_created"]
    expected = stored_events(server, execution_id, after_subscribing)
    assert receiver.event_ids(healthy) == expected
    # the slow one's first delivery is held at the receiver (it may arrive after the
    # healthy one's last: they are independent), and nothing more comes meanwhile
    wait_until(lambda: receiver.arrived[slow] == 1)
    assert receiver.arrived[slow] == 1 and receiver.events(slow) == []  # still held

    dead = wait_until(lambda: deliveries(client, dead_sid, status="dead")["deliveries"])
    assert all(d["error"] and d["completed_at"] and d["status_code"] is None for d in dead)

    receiver.release(slow)
    wait_until(lambda: len(receiver.events(slow)) == len(expected))
    assert receiver.event_ids(slow) == expected
    wait_until(lambda: deliveries(client, slow_sid, status="delivered")["total"] == len(expected))


def test_expired_and_deleted_subscriptions_stop(
    client: Client, server: ServerThread, receiver: Receiver, hook: str
) -> None:
    name = f"plan-{hook}"
    expiring, deleted, control = f"{hook}-expiring", f"{hook}-deleted", f"{hook}-control"
    soon = clock.format_time(datetime.now(UTC) + timedelta(seconds=1.5))
    expiring_sid = subscribe(
        client, receiver.url(expiring), filter={"name": name}, expiration=soon
    )["subscription_id"]
    deleted_sid = subscribe(client, receiver.url(deleted), filter={"name": name})["subscription_id"]
    subscribe(client, receiver.url(control), filter={"name": name})
    listed = [s["subscription_id"] for s in client.get(SUBSCRIPTIONS).json["subscriptions"]]
    assert expiring_sid in listed and deleted_sid in listed

    assert client.request("DELETE", f"{SUBSCRIPTIONS}/{deleted_sid}").status == 200
    wait_until(
        lambda: (
            expiring_sid
            not in [s["subscription_id"] for s in client.get(SUBSCRIPTIONS).json["subscriptions"]]
        ),
        timeout=5,
    )
    assert client.get(f"{SUBSCRIPTIONS}/{expiring_sid}").status == 404
    assert client.get(f"{SUBSCRIPTIONS}/{expiring_sid}/deliveries").status == 404
    assert client.request("DELETE", f"{SUBSCRIPTIONS}/{expiring_sid}").status == 404
    assert server.runtime is not None
    store = server.runtime.store
    wait_until(lambda: expiring_sid not in [r["id"] for r in all_subscriptions(store)])

    new_plan(client, name)
    wait_until(lambda: receiver.events(control))
    assert receiver.arrived[expiring] == 0 and receiver.arrived[deleted] == 0


# ---- restart ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: no other server may deliver its subscriptions."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'synthesis.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_pause_and_resume_by_request(
    client: Client, server: ServerThread, receiver: Receiver, hook: str
) -> None:
    name = f"plan-{hook}"
    sid = subscribe(client, receiver.url(hook), filter={"name": name})["subscription_id"]
    assert client.get(f"{SUBSCRIPTIONS}/{sid}").json["status"] == "active"
    paused = client.post(f"{SUBSCRIPTIONS}/{sid}/pause")
    assert paused.status == 200, paused
    assert (paused.json["status"], paused.json["paused_reason"]) == ("paused", "paused by request")
    assert client.get(f"{SUBSCRIPTIONS}/{sid}").json == paused.json
    again = client.post(f"{SUBSCRIPTIONS}/{sid}/pause")
    assert again.status == 409 and again.json["error"]["code"] == "invalid_state"

    new_plan(client, name)  # while paused: kept for later, not delivered
    assert server.runtime is not None
    store = server.runtime.store
    wait_until(lambda: store.list_events(EventFilter(type="plan_created", limit=1)).total)
    assert receiver.arrived[hook] == 0 and deliveries(client, sid)["total"] == 0

    resumed = client.post(f"{SUBSCRIPTIONS}/{sid}/resume")
    assert resumed.status == 200, resumed
    assert (resumed.json["status"], resumed.json["paused_at"]) == ("active", None)
    wait_until(lambda: receiver.events(hook))
    assert [e["payload"]["name"] for e in receiver.events(hook)] == [name]
    assert client.post(f"{SUBSCRIPTIONS}/{sid}/resume").status == 409
    for action in ("pause", "resume"):
        missing = client.post(f"{SUBSCRIPTIONS}/{uuid.uuid4()}/{action}")
        assert missing.status == 404 and missing.json["error"]["code"] == "not_found"
        assert server.client(READ_TOKEN).post(f"{SUBSCRIPTIONS}/{sid}/{action}").status == 403
    bad = client.post(f"{SUBSCRIPTIONS}/{sid}/pause", {"why": "no"})
    assert bad.status == 400 and bad.json["error"]["details"][0]["field"] == "why"


def test_dead_letters_pause_the_subscription_and_a_redelivery_delivers_them(
    client: Client, server: ServerThread, receiver: Receiver, hook: str
) -> None:
    name = f"plan-{hook}"
    sid = subscribe(client, receiver.url(hook), filter={"name": name})["subscription_id"]
    receiver.close(hook)
    for _ in range(3):
        new_plan(client, name)

    def paused() -> dict[str, Any] | None:
        body = client.get(f"{SUBSCRIPTIONS}/{sid}").json
        return body if body["status"] == "paused" else None

    subscription = wait_until(paused)  # after two dead events (TINY_WEBHOOKS)
    assert subscription["paused_reason"] == (
        "paused after 2 events in a row were not delivered; "
        "the last one: HTTP 503 Service Unavailable"
    )
    dead = deliveries(client, sid)
    assert dead["total"] == 2  # the third event waits for the resume
    assert {(d["status"], d["status_code"], d["error"]) for d in dead["deliveries"]} == {
        ("dead", 503, "HTTP 503 Service Unavailable")
    }
    first = dead["deliveries"][-1]

    receiver.open(hook)
    path = f"{SUBSCRIPTIONS}/{sid}/deliveries/{first['delivery_id']}/redeliver"
    answer = client.post(path)
    assert answer.status == 201, answer
    again = answer.json
    assert (again["status"], again["attempts"], again["redelivery_of"]) == (
        "pending",
        0,
        first["delivery_id"],
    )
    assert (again["event_id"], again["subscription_id"]) == (first["event_id"], sid)
    assert client.get(f"{SUBSCRIPTIONS}/{sid}/deliveries?status=pending").json["total"] == 1
    refused = client.post(f"{SUBSCRIPTIONS}/{sid}/deliveries/{again['delivery_id']}/redeliver")
    assert refused.status == 409 and refused.json["error"]["code"] == "invalid_state"

    assert client.post(f"{SUBSCRIPTIONS}/{sid}/resume").status == 200
    wait_until(lambda: len(receiver.events(hook)) == 2)  # the redelivery, then the third
    assert server.runtime is not None
    plan_events = [
        e.event_id
        for e in server.runtime.store.events_after(
            0, EventSelector.of(["plan_created"]), limit=10_000
        )
        if e.data.get("name") == name
    ]
    assert receiver.event_ids(hook) == [plan_events[0], plan_events[2]]

    def redelivered() -> dict[str, Any] | None:
        rows = deliveries(client, sid, status="delivered")["deliveries"]
        return next((d for d in rows if d["delivery_id"] == again["delivery_id"]), None)

    assert wait_until(redelivered)["attempts"] == 1
    for missing in (f"{uuid.uuid4()}/deliveries/{first['delivery_id']}", f"{sid}/deliveries/x"):
        response = client.post(f"{SUBSCRIPTIONS}/{missing}/redeliver")
        assert response.status == 404 and response.json["error"]["code"] == "not_found"
    assert server.client(READ_TOKEN).post(path).status == 403


def test_a_restarted_server_delivers_what_it_had_not_delivered(
    own_database: str, tmp_path: Path, receiver: Receiver, hook: str
) -> None:
    settings = webhook_settings(
        tmp_path, own_database, webhook_retry_window_seconds=60, webhook_max_backoff_seconds=0.05
    )
    everything, one_run = f"{hook}-all", f"{hook}-one"
    first = ServerThread(settings).start()
    second: ServerThread | None = None
    try:
        client = first.client()
        later = two_step_run(client)  # its execution_created comes before the subscriptions
        all_sid = subscribe(client, receiver.url(everything))["subscription_id"]
        subscribe(
            client,
            receiver.url(one_run),
            filter={"execution_id": later},
            types=["step_completed", "execution_completed"],
        )
        assert first.runtime is not None
        since = first.runtime.store.last_event_seq()

        done_first = client.create([command("one", "echo one")])
        client.wait_for_status(done_first, "completed")
        wait_until(
            lambda: "execution_completed" in [e["type"] for e in receiver.events(everything)]
        )
        receiver.close(everything)
        receiver.close(one_run)
        start(client, later)

        def pending() -> bool:
            rows = deliveries(client, all_sid, status="retrying")["deliveries"]
            return bool(rows) and rows[0]["attempts"] >= 2

        wait_until(pending)
        first.stop()

        second = ServerThread(settings).start()
        receiver.open(everything)
        receiver.open(one_run)
        client = second.client()
        wait_until(lambda: "execution_completed" in [e["type"] for e in receiver.events(one_run)])
        wait_until(
            lambda: (
                [e["execution_id"] for e in receiver.events(everything)][-1:] == [later]
                and receiver.events(everything)[-1]["type"] == "execution_completed"
            )
        )
        assert second.runtime is not None
        store = second.runtime.store
        assert receiver.event_ids(everything) == [
            e.event_id for e in store.events_after(since, limit=10_000)
        ]
        assert receiver.event_ids(one_run) == stored_events(
            second, later, ["step_completed", "execution_completed"]
        )
        # the one a stop cut short went on after it (recorded once its POST returned)
        wait_until(
            lambda: (
                {d["status"] for d in deliveries(client, all_sid, limit="1000")["deliveries"]}
                == {"delivered"}
            )
        )
    finally:
        first.stop()
        if second is not None:
            delete_all_subscriptions(second.client())
            second.stop()
