"""How long a plan of N instant steps takes, and how the rest of the server fares meanwhile.

    python benchmarks/instant_steps.py [--sizes 1000,3000,10000] [--database URL] [--no-probes]

For each size it starts a real `synthesis serve` (as `run.py` does) and times one
execution of N `variable` steps alone (`run_s`: its started_at to completed_at, server
clock). Then it starts two more such executions and, until the first has ended, probes
the server once a second: `GET /health`, the create of a one-step execution and how long
that one takes to end, and, once, a cancel of the second big one. It prints one JSON
line per size with the worst probe latencies. Progress goes to stderr. To measure another
checkout, run it with PYTHONPATH pointing at that checkout.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import Server

PROBE_INTERVAL = 0.25


def request(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
    """One request on a fresh connection: (status, JSON body, seconds)."""
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    try:
        conn.request(method, path, orjson.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, orjson.loads(raw) if raw else None, time.monotonic() - began
    finally:
        conn.close()


NOTIFY = {"id": "n", "type": "notify", "parameters": {"message": "hi"}}


def instant_plan(size: int) -> dict[str, Any]:
    steps = [
        {
            "id": f"s{i}",
            "type": "variable",
            "parameters": {"operation": "set", "name": "v", "value": i},
        }
        for i in range(size)
    ]
    return {"plan": {"name": f"instant {size}", "steps": steps}, "start": True}


def seconds_between(started: str, completed: str) -> float:
    parse = datetime.fromisoformat
    return (parse(completed.rstrip("Z")) - parse(started.rstrip("Z"))).total_seconds()


def status_of(server: Server, execution_id: str) -> dict[str, Any]:
    """The execution's summary, without its (possibly 10,000) steps."""
    _, listed, _ = request(server, "GET", "/api/executions?limit=1000")
    return next(e for e in listed["executions"] if e["execution_id"] == execution_id)


def wait_end(server: Server, execution_id: str) -> dict[str, Any]:
    while (row := status_of(server, execution_id))["status"] in ("created", "running"):
        time.sleep(0.2)
    return row


def create(server: Server, body: dict[str, Any], errors: list[str]) -> tuple[str | None, float]:
    code, answer, took = request(server, "POST", "/api/executions", body)
    if code != 201:
        errors.append(f"create {code}")
        return None, took
    return answer["execution_id"], took


def probe_while(server: Server, size: int, errors: list[str]) -> dict[str, Any]:
    """A big run plus a second big one to cancel; probe until the first has ended."""
    big, create_big = create(server, instant_plan(size), errors)
    victim, create_victim = create(server, instant_plan(size), errors)
    assert big and victim, errors
    probes: dict[str, list[float]] = {"health": [], "create": [], "small_run": [], "cancel": []}
    small = {"plan": {"name": "small", "steps": [NOTIFY]}, "start": True}
    done = threading.Event()

    def health() -> None:
        code, _, took = request(server, "GET", "/health")
        probes["health"].append(took)
        if code != 200:
            errors.append(f"health {code}")

    def small_run() -> None:
        began = time.monotonic()
        small_id, took = create(server, small, errors)
        probes["create"].append(took)
        if small_id:
            wait_end(server, small_id)
            probes["small_run"].append(time.monotonic() - began)

    def cancel() -> None:
        code, _, took = request(server, "POST", f"/api/executions/{victim}/cancel")
        probes["cancel"].append(took)
        if code != 200:
            errors.append(f"cancel {code}")

    def probe() -> None:
        """Each tick, the probes at once (the cancel only once)."""
        kinds = [health, small_run, cancel]
        while not done.is_set():
            threads = [threading.Thread(target=kind) for kind in kinds]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            kinds = [health, small_run]
            done.wait(PROBE_INTERVAL)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    wait_end(server, big)
    done.set()
    prober.join()
    return {
        "create_big_s": round(max(create_big, create_victim), 3),
        **{f"worst_{k}_s": round(max(v), 3) if v else None for k, v in probes.items()},
        "probes": len(probes["health"]),
    }


def measure(size: int, database: str | None, probes: bool) -> dict[str, Any]:
    server = Server.start(database, None)
    errors: list[str] = []
    try:
        server.wait_ready()
        began = time.monotonic()
        execution_id, _ = create(server, instant_plan(size), errors)
        assert execution_id, errors
        row = wait_end(server, execution_id)
        figures: dict[str, Any] = {
            "steps": size,
            "status": row["status"],
            "run_s": round(seconds_between(row["started_at"], row["completed_at"]), 2),
            "client_s": round(time.monotonic() - began, 2),
        }
        if probes:
            figures.update(probe_while(server, size, errors))
        return {**figures, "errors": errors}
    finally:
        server.stop()
        server.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--database")
    parser.add_argument("--no-probes", action="store_true", help="time the run alone")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"instant steps: {size}", file=sys.stderr)
        print(orjson.dumps(measure(size, args.database, not args.no_probes)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
