"""`synthesis serve`: flags beat environment variables beat defaults."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from dataclasses import replace
from pathlib import Path

from synthesis import __version__
from synthesis.commands import add_client_commands, report, run_command
from synthesis.config import Settings

log = logging.getLogger("synthesis")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthesis", description="The Synthesis execution engine")
    parser.add_argument("--version", action="version", version=f"synthesis {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8009)")
    serve.add_argument("--database", dest="database_url", help="SQLAlchemy database URL")
    serve.add_argument("--data-dir", help="where the default SQLite file and token live")
    serve.add_argument(
        "--token",
        dest="tokens",
        action="append",
        default=[],
        help="accepted bearer token, TOKEN or TOKEN:read (repeatable)",
    )
    serve.add_argument(
        "--max-executions",
        dest="max_concurrent_executions",
        type=int,
        help="executions running at once; the rest wait in order (default 1024)",
    )
    serve.add_argument(
        "--max-plan-steps",
        dest="max_plan_steps",
        type=int,
        help="steps one plan may have, nested ones included (default 10000)",
    )
    serve.add_argument(
        "--max-loop-iterations",
        dest="max_loop_iterations",
        type=int,
        help="the most a loop's max_iterations may be (default 10000)",
    )
    serve.add_argument(
        "--shutdown-grace",
        dest="shutdown_grace_seconds",
        type=float,
        help="seconds running steps get to finish on SIGTERM (default 10)",
    )
    serve.add_argument(
        "--retention-days",
        dest="retention_days",
        type=float,
        help="prune events and finished executions older than this (default: keep all)",
    )
    serve.add_argument(
        "--retention-events",
        dest="retention_events",
        type=int,
        help="keep at most this many events (default: keep all)",
    )
    add_client_commands(commands)
    return parser


def ensure_token(settings: Settings) -> tuple[Settings, str | None]:
    """With no token and no JWT secret configured, use (or make) the data dir's token."""
    if settings.tokens or settings.jwt_secret:
        return settings, None
    path = settings.data_dir / "token"
    if path.exists():
        token = path.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    return replace(settings, tokens=(token,)), token


async def serve(settings: Settings) -> int:
    import tornado.httpserver  # the server's parts load only for `serve`

    from synthesis.runtime import Runtime
    from synthesis.web.app import make_app

    runtime = Runtime(settings)
    await runtime.start()
    server = tornado.httpserver.HTTPServer(
        make_app(runtime), max_body_size=max(settings.max_body_bytes * 4, 16 * 1024 * 1024)
    )
    server.listen(settings.port, settings.host)
    log.info(
        "listening on http://%s:%d (database: %s)",
        settings.host,
        settings.port,
        runtime.store.dialect,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping: no new work; running steps get %gs", settings.shutdown_grace_seconds)
    server.stop()
    await runtime.stop()
    await server.close_all_connections()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        try:
            return asyncio.run(run_command(args))
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            return report(exc)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # failures only
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    if flags.get("data_dir"):
        flags["data_dir"] = Path(flags["data_dir"])
    settings, token = ensure_token(Settings.from_sources(flags))
    if token:
        url = f"http://{settings.host}:{settings.port}"
        print(f"Synthesis token: {token}", flush=True)
        print(f"  curl -H 'Authorization: Bearer {token}' {url}/api/executions", flush=True)
    from sqlalchemy.exc import OperationalError

    from synthesis.store.database import SchemaMismatch

    try:
        return asyncio.run(serve(settings))
    except (SchemaMismatch, OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error("cannot use the database: %s", reason)
        return 1
