"""REST reads and creates of a real server, against a bare Tornado JSON handler, in one run.

    python benchmarks/rest.py [--seconds S] [--connections C] [--create-connections N]
        [--start-command CMD] [--runs R]

Each run starts a real `synthesis serve` (SQLite in a temp dir, a random token; started by
benchmarks/run.py's `Server`) and a bare Tornado server (this file with `--bare`, a
subprocess), then measures with wrk (`-t 2`, a Lua script that prints the figures):

1. creates: `POST /api/executions` of a one-step plan from N keep-alive connections
   (50), `"start": false` (a `true` command step, never run) and `"start": true` (a
   `variable` step by default: the run goes through the engine but spawns no process;
   `--start-command` runs that command instead). creates/s counts the 201s; the server's
   CPU per create is its CPU from the first POST until every started execution has ended,
   over the 201s. The executions so created stay in the store for what follows.
2. the bare handler: `GET /bare` answers, after comparing the Authorization header with
   the expected `Bearer <token>` (hmac.compare_digest), the seeded execution's own GET
   body, encoded with orjson on every request (so: a body of the same size and shape).
3. `GET /api/executions/{id}` of the seeded execution (a one-step `true` plan that ran).
4. `GET /health`.

Reads use C connections (10). Each phase is `--seconds` long (5) after a 1 s warm-up of
the same request. Prints one JSON line per run (requests/s, latency p50/p99 in ms from
wrk, server CPU per request in µs, `get_to_bare` = (3)/(2), the 1-minute load); with
`--runs R` > 1, a last line of medians. Exits 1 on any non-2xx answer, socket error or
a server exit code other than 0.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.append(str(Path(__file__).resolve().parent.parent))  # benchmarks.*; synthesis as installed

from benchmarks.run import Api, Server, free_port

WARM_SECONDS = 1
THREADS = 2

POST_LUA = """
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
"""
LUA = """
wrk.method = [==[{method}]==]
wrk.headers["Authorization"] = [==[Bearer {token}]==]
{post}function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d,'
    .. ' "p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# --- the bare server (a subprocess: this file with --bare) ------------------------------


def bare_main(port: int, token: str, body_file: str) -> None:
    """A Tornado app with one JSON handler, as little as a fair comparison allows."""
    import asyncio
    import hmac

    import tornado.web

    document = orjson.loads(Path(body_file).read_bytes())
    expected = f"Bearer {token}".encode()

    class Bare(tornado.web.RequestHandler):
        def get(self) -> None:
            given = self.request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                self.set_status(401)
                self.finish(b'{"error": {"code": "unauthenticated"}}')
                return
            self.set_header("Content-Type", "application/json")
            self.finish(orjson.dumps(document))

    async def serve() -> None:
        tornado.web.Application([("/bare", Bare)]).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())


class Bare:
    """The bare server's process."""

    def __init__(self, token: str, body: bytes, workdir: Path) -> None:
        self.port = free_port()
        body_file = workdir / "body.json"
        body_file.write_bytes(body)
        argv = [sys.executable, __file__, "--bare", str(self.port), token, str(body_file)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/bare", headers={"Authorization": f"Bearer {token}"})
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the bare server did not answer")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- measuring -------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wrk(
    url: str,
    token: str,
    seconds: int,
    connections: int,
    workdir: Path,
    method: str = "GET",
    body: bytes = b"",
) -> dict[str, Any]:
    """One wrk run; its Lua script's figures."""
    script = workdir / f"{method.lower()}.lua"
    post = POST_LUA.format(body=body.decode()) if method == "POST" else ""
    script.write_text(LUA.format(method=method, token=token, post=post))
    argv = ["wrk", "-t", str(min(THREADS, connections)), "-c", str(connections)]
    argv += ["-d", f"{int(seconds)}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return dict(orjson.loads(line.removeprefix("RESULT ")))


def read_phase(
    url: str, token: str, args: argparse.Namespace, pid: int, workdir: Path
) -> dict[str, Any]:
    """Warm up, then measure GETs of `url`: rate, latency and the server's CPU."""
    wrk(url, token, WARM_SECONDS, args.connections, workdir)
    before = cpu_s(pid)
    got = wrk(url, token, args.seconds, args.connections, workdir)
    cpu = cpu_s(pid) - before
    return summarize_wrk(got, cpu)


def summarize_wrk(got: dict[str, Any], cpu: float, ok: int | None = None) -> dict[str, Any]:
    ok = got["requests"] - got["non_2xx"] if ok is None else ok
    return {
        "requests_per_s": round(got["requests"] / (got["duration_us"] / 1e6), 1),
        "p50_ms": round(got["p50_us"] / 1000, 2),
        "p99_ms": round(got["p99_us"] / 1000, 2),
        "max_ms": round(got["max_us"] / 1000, 1),
        "server_cpu_us_per_request": round(cpu / max(ok, 1) * 1e6, 1),
        "requests": got["requests"],
        "non_2xx": got["non_2xx"],
        "socket_errors": got["socket_errors"],
    }


def running_total(api: Api) -> int:
    status, page = api.call("GET", "/api/executions?status=running&limit=1")
    if status != 200:
        raise RuntimeError(f"listing running executions answered {status}: {page}")
    return int(page["total"])


def create_phase(
    server: Server, args: argparse.Namespace, start: bool, workdir: Path
) -> dict[str, Any]:
    """POST creates for --seconds from N connections; with `start`, the CPU counted runs
    until every execution has ended."""
    if start and args.start_command:
        step = {"id": "s1", "type": "command", "parameters": {"command": args.start_command}}
    elif start:
        step = {"id": "s1", "type": "variable", "parameters": {"operation": "set"}}
        step["parameters"].update(name="x", value=1)
    else:
        step = {"id": "s1", "type": "command", "parameters": {"command": "true"}}
    body = orjson.dumps({"plan": {"name": "bench-rest", "steps": [step]}, "start": start})
    url = f"http://127.0.0.1:{server.port}/api/executions"
    api = Api(server.port, server.token)
    pid = server.proc.pid
    wrk(url, server.token, WARM_SECONDS, args.create_connections, workdir, "POST", body)
    wait_until(lambda: running_total(api) == 0, 120)
    before, began = cpu_s(pid), time.monotonic()
    got = wrk(url, server.token, args.seconds, args.create_connections, workdir, "POST", body)
    drained_s = 0.0
    if start:
        wait_until(lambda: running_total(api) == 0, 120)
        drained_s = time.monotonic() - began - got["duration_us"] / 1e6
    result = summarize_wrk(got, cpu_s(pid) - before)
    result["drain_s"] = round(max(drained_s, 0.0), 2)
    return result


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done after {timeout:.0f}s")
        time.sleep(0.1)


def seed(server: Server) -> tuple[str, bytes]:
    """One execution of a one-step `true` plan, run to its end; its id and GET body."""
    api = Api(server.port, server.token)
    step = {"id": "build", "type": "command", "parameters": {"command": "echo built"}}
    plan = {"name": "bench-rest-seed", "steps": [step]}
    body = {"plan": plan, "start": True, "metadata": {"tags": ["bench"]}}
    status, created = api.call("POST", "/api/executions", body)
    if status != 201:
        raise RuntimeError(f"seeding answered {status}: {created}")
    execution_id = str(created["execution_id"])
    path = f"/api/executions/{execution_id}"
    wait_until(lambda: api.call("GET", path)[1]["status"] == "completed", 30)
    api.conn.request("GET", path, headers=api.headers)
    return execution_id, api.conn.getresponse().read()


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    server = Server.start(None, None)
    bare: Bare | None = None
    result: dict[str, Any] = {"connections": args.connections, "seconds": args.seconds}
    try:
        server.wait_ready()
        workdir = Path(tempfile.mkdtemp(prefix="bench-rest-", dir=server.data_dir))
        execution_id, body = seed(server)
        result["body_bytes"] = len(body)
        pid, token, base = server.proc.pid, server.token, f"http://127.0.0.1:{server.port}"
        phases = args.phases.split(",")
        for start, name in ((False, "create"), (True, "create_start")):
            if name in phases:
                print(name, file=sys.stderr, flush=True)
                result[name] = create_phase(server, args, start, workdir)
        print("reads", file=sys.stderr, flush=True)
        if "bare" in phases:
            bare = Bare(token, body, workdir)
            url = f"http://127.0.0.1:{bare.port}/bare"
            result["bare"] = read_phase(url, token, args, bare.proc.pid, workdir)
        for name, path in (("get", f"/api/executions/{execution_id}"), ("health", "/health")):
            if name in phases:
                result[name] = read_phase(f"{base}{path}", token, args, pid, workdir)
        if "bare" in result and "get" in result:
            ratio = result["get"]["requests_per_s"] / result["bare"]["requests_per_s"]
            result["get_to_bare"] = round(ratio, 3)
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
    except Exception as exc:
        result["error"] = repr(exc)
    finally:
        if bare is not None:
            bare.stop()
        result["server_exit_code"] = server.stop()
        unusual = [line for line in server.log_lines() if " INFO " not in line]
        if unusual:
            result["server_log_unusual"] = unusual[:10]
        server.cleanup()
    return result


PHASES = ("create", "create_start", "bare", "get", "health")


def healthy(result: dict[str, Any]) -> bool:
    phases = [result[name] for name in PHASES if name in result]
    return (
        "error" not in result
        and result["server_exit_code"] == 0
        and all(p["non_2xx"] == 0 and p["socket_errors"] == 0 for p in phases)
    )


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in results if "error" not in r]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    summary: dict[str, Any] = {"summary": True, "runs": len(results), "good_runs": len(good)}
    for name in PHASES:
        keys = ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_request")
        summary[name] = {k: median([r[name][k] for r in good if name in r]) for k in keys}
    for key in ("get_to_bare", "load_average_1m"):
        summary[key] = median([r[key] for r in good if key in r])
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="each phase (5)")
    parser.add_argument("--connections", type=int, default=10, help="for the reads (10)")
    parser.add_argument("--create-connections", type=int, default=50, help="for creates (50)")
    parser.add_argument(
        "--start-command",
        help="creates with start: a command step running this (default:"
        " a variable step, no process)",
    )
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"which to measure ({','.join(PHASES)})"
    )
    parser.add_argument("--runs", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--bare":
        bare_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    args = parse_args(argv)
    results = []
    for run in range(args.runs):
        if args.runs > 1:
            print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        results.append(run_once(args))
        print(orjson.dumps(results[-1]).decode(), flush=True)
    if args.runs > 1:
        print(orjson.dumps(medians(results)).decode(), flush=True)
    return 0 if all(map(healthy, results)) else 1


if __name__ == "__main__":
    sys.exit(main())
