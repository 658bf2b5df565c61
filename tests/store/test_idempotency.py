"""Idempotency keys in the store: live for a day, then replaced or pruned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from synthesis.engine import clock
from synthesis.store import Batch, IdempotencyKeySaved, Store
from synthesis.store.idempotency import KEY_TTL, find_key, idempotency_keys


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_tables()
    yield store
    store.close()


def hours_ago(hours: float) -> str:
    return clock.format_time(datetime.now(UTC) - timedelta(hours=hours))


def save(store: Store, principal: str, key: str, at: str, body: dict[str, str]) -> None:
    row = {
        "principal": principal,
        "key": key,
        "fingerprint": "f" * 64,
        "status": 201,
        "response": body,
        "created_at": at,
    }
    expired = clock.format_time(datetime.now(UTC) - KEY_TTL)
    store.apply([Batch((IdempotencyKeySaved(row, expired),))])


def test_a_live_key_is_found_and_cannot_be_saved_twice(store: Store) -> None:
    principal = f"token:{uuid.uuid4().hex}"
    save(store, principal, "k", hours_ago(1), {"first": "yes"})
    found = find_key(store, principal, "k", hours_ago(24))
    assert found is not None and found["response"] == {"first": "yes"}
    assert find_key(store, f"token:{uuid.uuid4().hex}", "k", hours_ago(24)) is None
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        save(store, principal, "k", hours_ago(0), {"second": "no"})


def test_an_expired_key_is_not_found_and_is_replaced_and_old_ones_are_pruned(store: Store) -> None:
    principal = f"token:{uuid.uuid4().hex}"
    for name in ("k", "old-1", "old-2"):
        save(store, principal, name, hours_ago(25), {"stale": name})
    assert find_key(store, principal, "k", hours_ago(24)) is None
    save(store, principal, "k", hours_ago(0), {"fresh": "yes"})
    found = find_key(store, principal, "k", hours_ago(24))
    assert found is not None and found["response"] == {"fresh": "yes"}
    with store.engine.connect() as conn:
        left = conn.execute(
            idempotency_keys.select().where(idempotency_keys.c.principal == principal)
        ).all()
    assert [row.key for row in left] == ["k"]  # the expired ones went with the new save
