"""A fresh database and a cluster factory per test; every node's log is printed when a
test fails (pytest shows a passing test's teardown output to no one)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster
from tests.conftest import fresh_postgres_database


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(size=3, **options)`: real nodes on a database of this test's own
    (PostgreSQL is required: see `require_postgres` in tests/conftest.py)."""
    clusters: list[Cluster] = []
    with contextlib.ExitStack() as stack:

        def make(size: int = 3, **options: Any) -> Cluster:
            url = stack.enter_context(fresh_postgres_database())
            directory = tmp_path / f"cluster{len(clusters)}"
            directory.mkdir()
            cluster = Cluster(url, directory, size, **options)
            clusters.append(cluster)
            return cluster.wait_healthy()

        statuses: dict[str, int] = {}
        try:
            yield make
        finally:
            for cluster in clusters:
                statuses.update(cluster.stop())
                print(cluster.logs())
        assert set(statuses.values()) <= {0}, f"a node did not stop cleanly: {statuses}"
