"""One Settings object: command-line flags beat environment variables beat defaults."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from synthesis.engine.secrets import SECRET_ENV_PREFIX, check_secrets, parse_secrets, parse_tokens

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting the server cannot start with; its message is one line for the operator."""


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
    token_file: Path | None = None  # more tokens, one a line (never group/other readable)
    secrets_file: Path | None = None  # named secrets: NAME=value lines or a JSON object
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # ${secret.NAME}
    integrations: tuple[str, ...] | None = None  # the integrations turned on; None: all
    max_body_bytes: int = 1024 * 1024
    output_limit_bytes: int = 1024 * 1024
    kill_grace_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    max_concurrent_executions: int = 1024
    actor_timeout_seconds: float = 10.0
    websocket_ping_seconds: float = 20.0
    websocket_buffer_messages: int = 1000  # unsent messages a socket may hold, then 1013
    retention_days: float | None = None  # prune events and finished executions older
    retention_events: int | None = None  # keep at most this many events (None: all)
    retention_interval_seconds: float = 30.0
    webhook_max_attempts: int = 6
    webhook_backoff_seconds: float = 0.5  # doubling after each failed attempt
    webhook_max_backoff_seconds: float = 60.0
    webhook_request_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        try:
            check_secrets(self.secrets)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

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
            "max_concurrent_executions": ("SYNTHESIS_MAX_EXECUTIONS", int),
            "shutdown_grace_seconds": ("SYNTHESIS_SHUTDOWN_GRACE", float),
            "retention_days": ("SYNTHESIS_RETENTION_DAYS", float),
            "retention_events": ("SYNTHESIS_RETENTION_EVENTS", int),
            "token_file": ("SYNTHESIS_TOKEN_FILE", Path),
            "secrets_file": ("SYNTHESIS_SECRETS_FILE", Path),
            "integrations": ("SYNTHESIS_INTEGRATIONS", _split_tokens),
        }
        for name, (variable, convert) in from_env.items():
            if env.get(variable):
                values[name] = convert(env[variable])
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


def _split_tokens(text: str) -> Sequence[str]:
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
