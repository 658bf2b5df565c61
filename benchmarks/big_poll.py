"""Small GETs while another client polls a big execution: what one big answer costs the
others (benchmarks/README.md, "A big execution polled beside small ones").

    python benchmarks/big_poll.py [--steps 1000] [--seconds 6]

Starts the `synthesis serve` beside this Python (run another build's Python to measure
that build) with a fresh data dir (run.py's `Server`), runs one execution of --steps
`echo` steps and one of a single step to their end, then for --seconds one thread GETs
the big one in a loop while another GETs the small one every 5 ms; prints the small
GETs' latency percentiles as one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import TERMINAL, Api, Server, percentiles


def run_to_end(api: Api, steps: int) -> str:
    """An execution of `steps` echo steps, run to its end; its id."""
    echo = {"type": "command", "parameters": {"command": "echo " + "x" * 200}}
    plan = {"name": f"{steps} steps", "steps": [{"id": f"s{i}", **echo} for i in range(steps)]}
    status, created = api.call("POST", "/api/executions", {"plan": plan, "start": True})
    if status != 201:
        raise RuntimeError(f"POST /api/executions -> {status}: {created}")
    path = f"/api/executions/{created['execution_id']}"
    while api.call("GET", path)[1]["status"] not in TERMINAL:
        time.sleep(0.2)  # polling the end, as run.py does
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()

    server = Server.start(None, None)
    try:
        server.wait_ready()
        setup = Api(server.port, server.token)
        big, small = run_to_end(setup, args.steps), run_to_end(setup, 1)
        stop = threading.Event()
        latencies: list[float] = []

        def poll_small() -> None:
            api = Api(server.port, server.token)
            while not stop.is_set():
                began = time.perf_counter()
                api.call("GET", small)
                latencies.append((time.perf_counter() - began) * 1e3)
                stop.wait(0.005)

        def poll_big() -> None:
            api = Api(server.port, server.token)
            while not stop.is_set():
                api.call("GET", big)

        threads = [threading.Thread(target=poll_small), threading.Thread(target=poll_big)]
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        result = {
            "big_steps": args.steps,
            "small_gets": len(latencies),
            "small_get_ms": percentiles(latencies),
        }
        print(orjson.dumps(result).decode())
    finally:
        server.stop()
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
