"""`synthesis serve --workers N` and one server per SQLite file, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import fresh_postgres_database
from tests.support import ServeProcess, free_port, process_running, wait_until
from tests.test_serve import serve_once


def listening(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def test_workers_share_the_port_are_restarted_and_stop_with_the_parent(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        server = ServeProcess(tmp_path, "--workers", "2", env={"SYNTHESIS_DATABASE_URL": url})
        parent = psutil.Process(server.process.pid)
        seen: set[int] = set()
        try:
            token = (tmp_path / "token").read_text().strip()  # made once, by the parent
            client = server.client(token)

            def workers() -> set[int]:
                return {child.pid for child in parent.children() if process_running(child.pid)}

            def alive_nodes() -> dict[str, int]:
                try:
                    nodes = client.get("/api/nodes").json["nodes"]
                except OSError:  # accepted by the worker just killed: reset
                    return {}
                return {n["node_id"]: n["pid"] for n in nodes if n["status"] == "alive"}

            def both_up() -> dict[str, int] | None:
                nodes, pids = alive_nodes(), workers()
                ready = len(nodes) == 2 and set(nodes.values()) == pids
                return nodes if ready and all(listening(p, server.port) for p in pids) else None

            first = wait_until(both_up, timeout=20)
            seen |= set(first.values())
            assert all(client.get("/api/executions").status == 200 for _ in range(20))

            victim = next(iter(first.values()))
            psutil.Process(victim).kill()

            def replaced() -> dict[str, int] | None:
                nodes, pids = alive_nodes(), workers()
                new = set(nodes) - set(first)
                ready = len(pids) == 2 and victim not in pids and len(new) == 1
                return nodes if ready and all(listening(p, server.port) for p in pids) else None

            after = wait_until(replaced, timeout=20)
            [new_node] = set(after) - set(first)
            assert after[new_node] in workers() and after[new_node] != victim
            seen |= workers()
        finally:
            server.process.send_signal(signal.SIGTERM)
            out, err = server.process.communicate(timeout=60)
        assert server.process.returncode == 0, err
        assert not any(process_running(pid) for pid in seen)
        assert out.count("Synthesis token:") == 1
        died = [line for line in err.splitlines() if "died" in line]
        assert len(died) == 1 and f"(pid {victim}) died with exit code -9 (SIGKILL)" in died[0]


def test_workers_with_sqlite_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = serve_once("--workers", "2", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "cannot start: --workers 2 needs PostgreSQL" in line
    assert not (tmp_path / "synthesis.db").exists()


def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path, "--token", "t")
    try:
        second = serve_once("--data-dir", str(tmp_path))
        assert second.returncode == 1
        last = second.stderr.strip().splitlines()[-1]
        database = tmp_path / "synthesis.db"
        assert f"{database} is in use by another server (pid {first.process.pid})" in last
        assert "Traceback" not in second.stderr
        # one that would make a token: only the line saying why, no token banner
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHESIS_")}
        port = str(free_port())
        generating = subprocess.run(
            [
                sys.executable,
                "-m",
                "synthesis",
                "serve",
                "--data-dir",
                str(tmp_path),
                "--port",
                port,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert generating.returncode == 1
        assert generating.stdout == ""
        assert len(generating.stderr.strip().splitlines()) == 1
        assert first.client("t").get("/api/executions").status == 200  # the first goes on
    finally:
        assert first.stop() == 0
