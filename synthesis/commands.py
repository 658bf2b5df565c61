"""The client commands of `synthesis`: run a plan and watch it, manage executions, plans
and events on a server, and list its cluster's nodes, through the Python client
(synthesis/client.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

if TYPE_CHECKING:
    from synthesis.client import SynthesisClient

DEFAULT_SERVER = "http://127.0.0.1:8009"


def add_client_commands(commands: Any) -> None:
    """Register run, executions, plans, events and nodes on the `synthesis` parser."""

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--server",
            default=os.environ.get("SYNTHESIS_SERVER", DEFAULT_SERVER),
            help="server URL (SYNTHESIS_SERVER; default %(default)s)",
        )
        sub.add_argument(
            "--token",
            default=os.environ.get("SYNTHESIS_TOKEN"),
            help="bearer token (SYNTHESIS_TOKEN)",
        )
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        return sub

    run = client_parser("run", "run a plan file on a server")
    run.add_argument("plan", type=Path, help="a plan as JSON or YAML")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable (VALUE is read as JSON when it parses, else as text)",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the end; exit 1 unless the execution completed",
    )

    executions = client_parser("executions", "list, show and control executions")
    executions.add_argument("action", choices=("list", "get", "cancel", "pause", "resume"))
    executions.add_argument("execution_id", nargs="?")
    executions.add_argument("--status")
    executions.add_argument("--tag")
    executions.add_argument("--limit", type=int)
    executions.add_argument("--after", metavar="ID", help="list: the page after this execution")

    plans = client_parser("plans", "list, show, create, delete and execute stored plans")
    plans.add_argument("action", choices=("list", "get", "create", "delete", "execute"))
    plans.add_argument("target", nargs="?", help="a plan id, or a plan file for create")
    plans.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")

    events = client_parser("events", "follow the event stream")
    events.add_argument("action", choices=("tail",))
    events.add_argument("--types", help="comma separated event types")
    events.add_argument("--execution", help="only this execution's events")

    client_parser("nodes", "list the servers of the cluster on the server's database")


def load_plan(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A plan file: a plan, or {"plan": ..., "variables": ...}. JSON or YAML."""
    text = path.read_text()
    document = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else orjson.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a plan must be an object")
    if "plan" in document:
        return document["plan"], document.get("variables") or {}
    return document, {}


def parse_variables(pairs: Sequence[str]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var takes NAME=VALUE, not {pair!r}")
        try:
            variables[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            variables[name] = value
    return variables


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def paged(text: str, page: dict[str, Any], key: str, id_field: str) -> str:
    """A page's table, then how many match and how to ask for the next page."""
    total = f"{page['total']}" if page.get("total_exact", True) else f"at least {page['total']}"
    footer = f"{len(page[key])} of {total}"
    if page.get("next"):
        last = page[key][-1][id_field]
        footer += f"; next page: --after {last}"
    return f"{text}\n{footer}"


def show(args: argparse.Namespace, value: Any, text: Callable[[Any], str]) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() if args.json else text(value))


def describe_execution(execution: dict[str, Any]) -> str:
    head = (
        f"{execution['execution_id']}  {execution['status']}"
        f"  {execution.get('duration_ms') or '-'} ms"
    )
    if execution.get("error"):
        head += f"  ({execution['error']})"
    steps = table(execution.get("steps", []), ("id", "type", "status", "duration_ms", "error"))
    return f"{head}\n{steps}"


async def watch(client: SynthesisClient, execution_id: str, as_json: bool) -> dict[str, Any]:
    """Print each step's progress and output as it happens; return the final execution."""
    async for message in client.subscribe_to_execution(execution_id):
        if as_json:
            print(orjson.dumps(message).decode(), flush=True)
            continue
        kind, data = message["type"], message["data"]
        if kind == "step_started":
            print(f"▶ {data['step_id']} ({data['step_type']})", flush=True)
        elif kind == "step_output":
            for line in data["output"].splitlines():
                print(f"  {data['step_id']} | {line}", flush=True)
        elif kind == "step_completed":
            mark = {"completed": "✓", "skipped": "-", "cancelled": "■"}.get(data["status"], "✗")
            took = f" in {data['duration_ms']} ms" if data.get("duration_ms") is not None else ""
            print(f"{mark} {data['step_id']} {data['status']}{took}", flush=True)
    return await client.get_execution(execution_id)


async def run_command(args: argparse.Namespace) -> int:
    from synthesis.client import SynthesisClient  # the server never needs it

    async with SynthesisClient(args.server, token=args.token) as client:
        return await _dispatch(client, args)


async def _dispatch(client: SynthesisClient, args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[SynthesisClient, argparse.Namespace], Awaitable[int]]] = {
        "run": _run,
        "executions": _executions,
        "plans": _plans,
        "events": _events,
        "nodes": _nodes,
    }
    return await handlers[args.command](client, args)


async def _run(client: SynthesisClient, args: argparse.Namespace) -> int:
    plan, variables = load_plan(args.plan)
    variables.update(parse_variables(args.var))
    execution_id = await client.execute_plan(plan, variables=variables)
    if not args.wait:
        show(args, {"execution_id": execution_id}, lambda v: v["execution_id"])
        return 0
    if not args.json:
        print(f"execution {execution_id}", flush=True)
    final = await watch(client, execution_id, args.json)
    if not args.json:
        print(describe_execution(final))
    return 0 if final["status"] == "completed" else 1


async def _executions(client: SynthesisClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        page = await client.list_executions(
            status=args.status, tag=args.tag, limit=args.limit, after=args.after
        )
        columns = ("execution_id", "name", "status", "created_at", "completed_at")
        show(
            args,
            page,
            lambda p: paged(table(p["executions"], columns), p, "executions", "execution_id"),
        )
        return 0
    if not args.execution_id:
        raise ValueError(f"executions {args.action} needs an execution id")
    if args.action == "get":
        show(args, await client.get_execution(args.execution_id), describe_execution)
        return 0
    act = {
        "cancel": client.cancel_execution,
        "pause": client.pause_execution,
        "resume": client.resume_execution,
    }[args.action]
    show(args, await act(args.execution_id), lambda r: f"{r['execution_id']}  {r['status']}")
    return 0


async def _plans(client: SynthesisClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        page = await client.list_plans()
        show(args, page, lambda p: table(p["plans"], ("plan_id", "name", "created_at", "tags")))
        return 0
    if not args.target:
        raise ValueError(
            f"plans {args.action} needs a {'file' if args.action == 'create' else 'plan id'}"
        )
    if args.action == "create":
        plan, _ = load_plan(Path(args.target))
        created = await client.create_plan(plan)
        show(args, created, lambda p: p["plan_id"])
    elif args.action == "get":
        show(
            args,
            await client.get_plan(args.target),
            lambda p: orjson.dumps(p, option=orjson.OPT_INDENT_2).decode(),
        )
    elif args.action == "delete":
        show(args, await client.delete_plan(args.target), lambda r: r["message"])
    else:
        started = await client.execute_plan_by_id(args.target, variables=parse_variables(args.var))
        show(args, started, lambda r: r["execution_id"])
    return 0


async def _events(client: SynthesisClient, args: argparse.Namespace) -> int:
    types = [t for t in (args.types or "").split(",") if t] or None
    async for event in client.subscribe_to_events(types=types, execution_id=args.execution):
        if args.json:
            print(orjson.dumps(event).decode(), flush=True)
        else:
            detail = event["payload"].get("step_id") or event["payload"].get("name") or ""
            print(
                f"{event['timestamp']}  {event['type']:<20} {event['execution_id'] or '-'}"
                f"  {detail}",
                flush=True,
            )
    return 0


NODE_COLUMNS = ("node_id", "host", "port", "pid", "status", "executions", "heartbeat_at")


async def _nodes(client: SynthesisClient, args: argparse.Namespace) -> int:
    show(args, await client.list_nodes(), lambda r: table(r["nodes"], NODE_COLUMNS))
    return 0


def report(error: Exception) -> int:
    """One line on stderr for a failed command; exit code 2."""
    from synthesis.client import SynthesisError

    if isinstance(error, SynthesisError):
        detail = "; ".join(f"{d['field']}: {d['message']}" for d in error.details or [])
        print(
            f"error: {error.code}: {error.message}" + (f" ({detail})" if detail else ""),
            file=sys.stderr,
        )
    else:
        print(f"error: {error}", file=sys.stderr)
    return 2
