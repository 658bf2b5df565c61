"""One Settings object: command-line flags beat environment variables beat defaults."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from synthesis.engine.plan import Limits
from synthesis.engine.secrets import SECRET_ENV_PREFIX, check_secrets, parse_secrets, parse_tokens

T = TypeVar("T")


MIN_JWT_SECRET_BYTES = 32  # HS256 wants a key at least as long as its hash (RFC 7518 3.2)


class ConfigError(ValueError):
    """A setting the server cannot start with; `synthesis serve` prints it on one line
    and exits 1."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "synthesis"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8009
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: a SQLite file in data_dir
    tokens: tuple[str, ...] = field(default=(), repr=False)  # "TOKEN" or "TOKEN:read"
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_issuer: str | None = None  # when set, JWTs must carry this `iss`
    jwt_audience: str | None = None  # when set, JWTs must carry this `aud`
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API
    token_file: Path | None = None  # more tokens, one a line (never group/other readable)
    secrets_file: Path | None = None  # named secrets: NAME=value lines or a JSON object
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # ${secret.NAME}
    integrations: tuple[str, ...] | None = None  # the integrations turned on; None: all
    max_body_bytes: int = 1024 * 1024
    http_idle_timeout_seconds: float = 60.0  # to send a request head, or between body parts
    output_limit_bytes: int = 1024 * 1024
    kill_grace_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    max_concurrent_executions: int = 1024
    max_plan_steps: int = 10_000  # steps in one plan, nested steps included
    max_loop_iterations: int = 10_000  # the most a loop's max_iterations may be
    actor_timeout_seconds: float = 10.0
    websocket_ping_seconds: float = 20.0
    websocket_buffer_bytes: int = 8 * 1024 * 1024  # unsent bytes a socket may hold, then 1013
    retention_days: float | None = None  # prune events and finished executions older
    retention_events: int | None = None  # keep at most this many events (None: all)
    retention_interval_seconds: float = 30.0
    webhook_retry_window_seconds: float = 24 * 3600.0  # retry one event this long, then dead
    webhook_backoff_seconds: float = 0.5  # doubling after each failed attempt, with jitter
    webhook_max_backoff_seconds: float = 60.0
    webhook_request_timeout_seconds: float = 10.0
    run_as: str | None = None  # the unprivileged user step processes run as (needs root)
    webhook_pause_after_failures: int = 3  # events in a row not delivered; 0: never pause
    deny_private_targets: bool = False  # http steps, invocations, webhooks: public only
    workers: int = 1  # server processes (nodes) on one port; PostgreSQL only
    heartbeat_seconds: float = 2.0  # how often a node proves it is alive
    node_timeout_seconds: float = 10.0  # a node silent this long is dead (database clock)

    def __post_init__(self) -> None:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ConfigError(
                f"SYNTHESIS_JWT_SECRET is too short: it needs at least {MIN_JWT_SECRET_BYTES} "
                "bytes (for example `openssl rand -hex 32`)"
            )
        if self.websocket_buffer_bytes < 1:
            raise ConfigError("the WebSocket buffer must be at least 1 byte")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if not 0 < self.heartbeat_seconds * 2 < self.node_timeout_seconds:
            raise ConfigError(
                "--node-timeout-seconds must be more than twice --heartbeat-seconds (both > 0)"
            )
        try:
            check_secrets(self.secrets)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def secret_values(self) -> list[str]:
        """What must never be shown, in a log or in anything a step produces: the tokens
        (without their scopes), the JWT secret and the named secrets."""
        tokens = [
            entry.rsplit(":", 1)[0] if entry.endswith(":read") else entry for entry in self.tokens
        ]
        return [*tokens, *([self.jwt_secret] if self.jwt_secret else []), *self.secrets.values()]

    @property
    def plan_limits(self) -> Limits:
        return Limits(self.max_plan_steps, self.max_loop_iterations)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'synthesis.db'}"

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from parsed flags (None means not given) over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        from_env = {
            "host": ("SYNTHESIS_HOST", str),
            "port": ("SYNTHESIS_PORT", int),
            "data_dir": ("SYNTHESIS_DATA_DIR", Path),
            "database_url": ("SYNTHESIS_DATABASE_URL", str),
            "tokens": ("SYNTHESIS_TOKENS", _split_tokens),
            "jwt_secret": ("SYNTHESIS_JWT_SECRET", str),
            "jwt_issuer": ("SYNTHESIS_JWT_ISSUER", str),
            "jwt_audience": ("SYNTHESIS_JWT_AUDIENCE", str),
            "cors_origins": ("SYNTHESIS_CORS_ORIGINS", _split_tokens),
            "websocket_buffer_bytes": ("SYNTHESIS_WEBSOCKET_BUFFER_BYTES", int),
            "max_concurrent_executions": ("SYNTHESIS_MAX_EXECUTIONS", int),
            "http_idle_timeout_seconds": ("SYNTHESIS_HTTP_IDLE_TIMEOUT", float),
            "max_plan_steps": ("SYNTHESIS_MAX_PLAN_STEPS", int),
            "max_loop_iterations": ("SYNTHESIS_MAX_LOOP_ITERATIONS", int),
            "shutdown_grace_seconds": ("SYNTHESIS_SHUTDOWN_GRACE", float),
            "retention_days": ("SYNTHESIS_RETENTION_DAYS", float),
            "retention_events": ("SYNTHESIS_RETENTION_EVENTS", int),
            "run_as": ("SYNTHESIS_RUN_AS", str),
            "webhook_request_timeout_seconds": ("SYNTHESIS_WEBHOOK_TIMEOUT", float),
            "webhook_retry_window_seconds": ("SYNTHESIS_WEBHOOK_RETRY_WINDOW", float),
            "webhook_pause_after_failures": ("SYNTHESIS_WEBHOOK_PAUSE_AFTER", int),
            "deny_private_targets": ("SYNTHESIS_DENY_PRIVATE_TARGETS", _boolean),
            "token_file": ("SYNTHESIS_TOKEN_FILE", Path),
            "secrets_file": ("SYNTHESIS_SECRETS_FILE", Path),
            "integrations": ("SYNTHESIS_INTEGRATIONS", _split_tokens),
            "workers": ("SYNTHESIS_WORKERS", int),
            "heartbeat_seconds": ("SYNTHESIS_HEARTBEAT_SECONDS", float),
            "node_timeout_seconds": ("SYNTHESIS_NODE_TIMEOUT_SECONDS", float),
        }
        for name, (variable, convert) in from_env.items():
            if env.get(variable):
                try:
                    values[name] = convert(env[variable])
                except ValueError:
                    expected = _EXPECTED.get(convert, "valid")
                    raise ConfigError(f"{variable} must be {expected}") from None
        for name, value in flags.items():
            if value is not None and value != () and value != []:
                values[name] = tuple(value) if isinstance(value, list) else value
        for name in ("data_dir", "token_file", "secrets_file"):
            if values.get(name):
                values[name] = Path(str(values[name])).expanduser()
        if values.get("token_file"):
            from_file = _read_private(values["token_file"], "token file", parse_tokens)
            values["tokens"] = (*values.get("tokens", ()), *from_file)  # type: ignore[misc]
        values["secrets"] = _named_secrets(values.get("secrets_file"), env)
        return cls(**values)  # type: ignore[arg-type]


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r} (use 1 or 0)")


_EXPECTED: dict[object, str] = {int: "a whole number", float: "a number", _boolean: "1 or 0"}


def _split_tokens(text: str) -> Sequence[str]:
    """A comma-separated list (tokens, origins)."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _named_secrets(secrets_file: object, env: Mapping[str, str]) -> dict[str, str]:
    """The secrets file's secrets and the `SYNTHESIS_SECRET_<NAME>` variables'; a name
    given by both is refused rather than one silently winning."""
    secrets: dict[str, str] = {}
    if isinstance(secrets_file, Path):
        secrets = _read_private(secrets_file, "secrets file", parse_secrets)
    for variable, value in env.items():
        if variable.startswith(SECRET_ENV_PREFIX) and len(variable) > len(SECRET_ENV_PREFIX):
            name = variable[len(SECRET_ENV_PREFIX) :]
            if name in secrets:
                raise ConfigError(f"secret {name!r} is in both the secrets file and {variable}")
            secrets[name] = value
    return secrets


def _read_private(path: Path, what: str, parse: Callable[[str, str], T]) -> T:
    """Read a file of secrets, refusing one that group or others may read or write."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}): "
                f"chmod 600 {path}"
            )
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    try:
        return parse(text, f"{what} {path}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
