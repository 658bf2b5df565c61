"""Small GETs while another client polls a big execution: what one big answer costs the
others (benchmarks/README.md, "A big execution polled beside small ones").

    python benchmarks/big_poll.py [--steps 1000] [--seconds 6] [--synthesis PATH]

Starts `synthesis serve` (the one beside this Python, or --synthesis) on a free port with
a fresh data dir, runs one execution of --steps `echo` steps and one of a single step to
their end, then for --seconds one thread GETs the big one in a loop while another GETs
the small one every 5 ms; prints the small GETs' latency percentiles as one JSON line.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())

    def run(self, name: str, steps: int) -> str:
        plan = {
            "name": name,
            "steps": [
                {"id": f"s{i}", "type": "command", "parameters": {"command": "echo " + "x" * 200}}
                for i in range(steps)
            ],
        }
        execution_id = self.call("POST", "/api/executions", {"plan": plan, "start": True})
        execution_id = execution_id["execution_id"]
        while self.call("GET", f"/api/executions/{execution_id}")["status"] not in (
            "completed",
            "failed",
        ):
            time.sleep(0.2)
        return str(execution_id)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0)
    default = Path(sys.executable).parent / "synthesis"
    parser.add_argument("--synthesis", default=str(default), help="the server's command")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="synthesis-big-poll-")
    token_file = Path(data_dir) / "token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    port = free_port()
    argv = [args.synthesis, "serve", "--port", str(port), "--data-dir", data_dir]
    server = subprocess.Popen(
        [*argv, "--token-file", str(token_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = Api(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                api.call("GET", "/health")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not become healthy") from None
                time.sleep(0.1)
        big, small = api.run("big", args.steps), api.run("small", 1)
        stop = threading.Event()
        latencies: list[float] = []

        def poll_small() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                api.call("GET", f"/api/executions/{small}")
                latencies.append((time.perf_counter() - began) * 1e3)
                time.sleep(0.005)

        def poll_big() -> None:
            while not stop.is_set():
                api.call("GET", f"/api/executions/{big}")

        threads = [threading.Thread(target=poll_small), threading.Thread(target=poll_big)]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        result = {
            "big_steps": args.steps,
            "small_gets": len(latencies),
            "small_get_ms": {
                p: percentile(latencies, q) for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }
        print(orjson.dumps(result).decode())
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
