"""Keyset pages over HTTP: `after=` / `before=`, the `next` and `previous` links, and the
validation errors of a cursor (docs/architecture.md, "Lists")."""

from __future__ import annotations

import urllib.parse
import uuid

import pytest

from tests.support import Client, ServerThread, command

LISTS = (
    "/api/executions",
    "/api/plans",
    "/api/events",
    "/api/events/subscriptions/{sid}/deliveries",
)


def created(client: Client, tag: str, n: int) -> list[str]:
    """n executions with `tag`, newest first."""
    ids = [
        client.create([command("a", "true")], start=False, metadata={"tags": [tag]})
        for _ in range(n)
    ]
    return ids[::-1]


def test_next_and_previous_links_walk_a_filtered_list_both_ways(client: Client) -> None:
    tag = f"links-{uuid.uuid4().hex[:8]}"
    ids = created(client, tag, 5)
    first = client.get(f"/api/executions?tag={tag}&limit=2").json
    assert [e["execution_id"] for e in first["executions"]] == ids[:2]
    assert (first["total"], first["total_exact"], first["previous"]) == (5, True, None)
    assert first["offset"] == 0 and first["limit"] == 2  # the reference's fields stay
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(first["next"]).query)
    assert query == {"tag": [tag], "limit": ["2"], "after": [ids[1]]}
    seen, page = [], first
    while True:
        seen += [e["execution_id"] for e in page["executions"]]
        if page["next"] is None:
            break
        client.create([command("a", "true")], start=False, metadata={"tags": [tag]})  # newer
        page = client.get(page["next"]).json
    assert seen == ids
    back = client.get(page["previous"]).json
    assert [e["execution_id"] for e in back["executions"]] == ids[2:4]
    # an offset page links to its neighbours by keyset too
    middle = client.get(f"/api/executions?tag={tag}&limit=2&offset=3").json
    assert middle["previous"].endswith(f"before={middle['executions'][0]['execution_id']}")


@pytest.fixture(scope="module")
def subscription(server: ServerThread) -> str:
    """A subscription that delivers nothing (paused), for its deliveries' list."""
    client = server.client()
    body = {"callback_url": "http://127.0.0.1:9/hook", "types": ["notification"]}
    sid = client.post("/api/events/subscriptions", body).json["subscription_id"]
    assert client.post(f"/api/events/subscriptions/{sid}/pause").status == 200
    return sid


@pytest.mark.parametrize("path", LISTS)
def test_a_bad_cursor_is_a_validation_error_naming_its_field(
    client: Client, subscription: str, path: str
) -> None:
    base = path.format(sid=subscription)
    some = client.create([command("a", "true")], start=False)
    for query, field in (
        ("after=no-such-item", "after"),
        ("before=no-such-item", "before"),
        ("after=", "after"),
        (f"after={some}&before={some}", "before"),
        (f"after={some}&offset=5", "offset"),
    ):
        answer = client.get(f"{base}?{query}")
        assert answer.status == 400, (query, answer.json)
        error = answer.json["error"]
        assert error["code"] == "validation_error"
        assert [d["field"] for d in error["details"]] == [field], (query, error)
