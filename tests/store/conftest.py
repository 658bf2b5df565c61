"""A store on the session's database (SQLite and PostgreSQL), emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from synthesis.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.create_tables()
    store.delete_everything()
    yield store
    store.close()
