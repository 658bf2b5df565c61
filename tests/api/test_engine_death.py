"""A node whose actors died (an error no actor handles stops them all, as in Pykka) gives
up instead of looking alive: on PostgreSQL its work would never be taken over."""

from __future__ import annotations

from pathlib import Path

from tests.support import ServerThread, make_settings, wait_until


def test_a_node_whose_actors_stopped_gives_up(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")).start()
    assert server.runtime is not None
    server.runtime.supervisor.stop()
    fenced = wait_until(lambda: server.fenced, timeout=5)
    assert "actors stopped" in fenced[0]
    server.fenced.clear()  # what a real node did with it: exit 3 (runtime.exit_fenced)
    server.stop()
