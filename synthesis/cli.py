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
from synthesis.config import ConfigError, Settings
from synthesis.workers import WorkerRole, needs_postgresql, supervise, worker_role

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
        help="accepted bearer token, TOKEN or TOKEN:read (repeatable; visible in the "
        "process list: prefer --token-file)",
    )
    serve.add_argument(
        "--token-file",
        help="file of accepted tokens, one TOKEN or TOKEN:read a line (mode 600)",
    )
    serve.add_argument(
        "--secrets-file",
        help="named secrets for ${secret.NAME}: NAME=value lines or a JSON object (mode 600)",
    )
    serve.add_argument(
        "--integrations",
        type=_comma_list,
        help="the integrations turned on, comma separated: cli,api,mcp (default all; "
        "'none' for none)",
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
    serve.add_argument(
        "--http-idle-timeout",
        dest="http_idle_timeout_seconds",
        type=float,
        help="seconds a client has to send a request head, or the next part of a body (default 60)",
    )
    serve.add_argument(
        "--run-as",
        dest="run_as",
        metavar="USER",
        help="run step processes as this unprivileged user (the server must run as root)",
    )
    serve.add_argument(
        "--webhook-timeout",
        dest="webhook_request_timeout_seconds",
        type=float,
        help="seconds a webhook callback has to answer one delivery attempt (default 10)",
    )
    serve.add_argument(
        "--webhook-retry-window",
        dest="webhook_retry_window_seconds",
        type=float,
        help="seconds an event is retried before it is dead-lettered (default 86400)",
    )
    serve.add_argument(
        "--webhook-pause-after",
        dest="webhook_pause_after_failures",
        type=int,
        help="pause a subscription after this many events in a row were not delivered "
        "(default 3; 0: never)",
    )
    serve.add_argument(
        "--deny-private-targets",
        action="store_true",
        default=None,
        help="http steps, api invocations and webhooks refuse loopback, private, "
        "link-local and other non-public addresses",
    )
    serve.add_argument(
        "--jwt-issuer",
        dest="jwt_issuer",
        help="the `iss` every JWT must carry (default: not checked)",
    )
    serve.add_argument(
        "--jwt-audience",
        dest="jwt_audience",
        help="the `aud` every JWT must carry (default: not checked)",
    )
    serve.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        default=[],
        help="a browser origin (https://app.example.com) allowed to call the API (repeatable)",
    )
    serve.add_argument(
        "--websocket-buffer-bytes",
        dest="websocket_buffer_bytes",
        type=int,
        help="unsent bytes a WebSocket may hold before it is closed with 1013 (default 8 MiB)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes on this one port, each a node of the cluster, under one "
        "parent that restarts any that dies (default 1; more need PostgreSQL)",
    )
    serve.add_argument(
        "--heartbeat-seconds",
        dest="heartbeat_seconds",
        type=float,
        help="how often a node proves it is alive (default 2)",
    )
    serve.add_argument(
        "--node-timeout-seconds",
        dest="node_timeout_seconds",
        type=float,
        help="a node silent this long is dead and its executions are taken over (default 10)",
    )
    add_client_commands(commands)
    return parser


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


class MaskSecrets(logging.Filter):
    """Every log record passes through this: the server's tokens and named secrets show
    as `***` whatever logs them."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        from synthesis.engine.secrets import Masker

        self._masker = Masker(settings.secret_values)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._masker:
            text = record.getMessage()
            masked = self._masker.text(text)
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._masker.text(record.exc_text)
            record.msg, record.args = masked, None
        return True


def ensure_token(settings: Settings) -> tuple[Settings, str | None]:
    """With no token and no JWT secret configured, use (or make) the data dir's token."""
    if settings.tokens or settings.jwt_secret:
        return settings, None
    path = settings.data_dir / "token"
    if path.exists():
        token = path.read_text().strip()
    else:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    return replace(settings, tokens=(token,)), token


def local_url(settings: Settings) -> str:
    """The server's address as a browser on this machine reaches it."""
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
    host = wildcard.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def show_token(settings: Settings, token: str | None) -> None:
    """The web UI's address, and a generated token once, with a ready-to-paste curl line."""
    url = local_url(settings)
    print(f"Synthesis web UI: {url}/ui/ (sign in with a token)", flush=True)
    if token:
        print(f"Synthesis token: {token}", flush=True)
        print(f"  curl -H 'Authorization: Bearer {token}' {url}/api/executions", flush=True)


async def serve(
    settings: Settings, role: WorkerRole | None = None, token: str | None = None
) -> int:
    """One server. As a worker of `--workers N` (`role`), it shares the port with its
    siblings (SO_REUSEPORT) and stops when its parent is gone. A generated `token` is
    shown once the server could start (a refused one shows only why)."""
    import tornado.netutil

    from synthesis.runtime import Runtime  # the server's parts load only for `serve`
    from synthesis.web.app import make_server

    runtime = Runtime(settings)
    await runtime.start()
    show_token(settings, token)
    server = make_server(runtime)
    server.add_sockets(
        tornado.netutil.bind_sockets(settings.port, settings.host, reuse_port=role is not None)
    )
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
    if role is not None:

        def parent_gone() -> None:  # the lifeline reads EOF: stop as on SIGTERM
            loop.remove_reader(role.lifeline)
            stop.set()

        loop.add_reader(role.lifeline, parent_gone)
    await stop.wait()
    log.info("stopping: no new work; running steps get %gs", settings.shutdown_grace_seconds)
    server.stop()
    await runtime.stop()
    await server.close_all_connections()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        try:
            return asyncio.run(run_command(args))
        except KeyboardInterrupt:
            return 130
        except Exception as exc:
            return report(exc)
    role = worker_role()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s "
        + (f"worker {role.index} " if role else "")
        + "%(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # failures only
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    if flags.get("data_dir"):
        flags["data_dir"] = Path(flags["data_dir"])
    try:
        settings = Settings.from_sources(flags)
        refused = needs_postgresql(settings)
        if refused:
            log.error("cannot start: %s", refused)
            return 2
        if settings.run_as:
            from synthesis.integrations.run_as import StepUser, StepUserError

            try:
                StepUser.lookup(settings.run_as)
            except StepUserError as exc:
                log.error("%s", exc)
                return 1
        settings, token = ensure_token(settings)
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        return 1
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskSecrets(settings))
    if args.tokens and role is None:  # the parent of workers warns for them
        log.warning(
            "tokens given with --token are visible to every local user in the process list "
            "(ps, /proc/<pid>/cmdline): use --token-file or SYNTHESIS_TOKENS instead"
        )
    from sqlalchemy.exc import OperationalError

    from synthesis.store.database import SchemaMismatch

    try:
        if settings.workers > 1:
            show_token(settings, token)
            env = {**os.environ, **({"SYNTHESIS_TOKENS": token} if token else {})}
            return supervise(settings, argv, env)  # workers share the token made here
        return asyncio.run(serve(settings, role, token))
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except (SchemaMismatch, OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error("cannot use the database: %s", reason)
        return 1
