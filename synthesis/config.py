"""One Settings object: command-line flags beat environment variables beat defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from synthesis.engine.plan import Limits


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "synthesis"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8009
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: a SQLite file in data_dir
    tokens: tuple[str, ...] = ()  # "TOKEN" (read and write) or "TOKEN:read"
    jwt_secret: str | None = None
    max_body_bytes: int = 1024 * 1024
    output_limit_bytes: int = 1024 * 1024
    kill_grace_seconds: float = 5.0
    shutdown_grace_seconds: float = 10.0
    max_concurrent_executions: int = 1024
    max_plan_steps: int = 10_000  # steps in one plan, nested steps included
    max_loop_iterations: int = 10_000  # the most a loop's max_iterations may be
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
            "max_concurrent_executions": ("SYNTHESIS_MAX_EXECUTIONS", int),
            "max_plan_steps": ("SYNTHESIS_MAX_PLAN_STEPS", int),
            "max_loop_iterations": ("SYNTHESIS_MAX_LOOP_ITERATIONS", int),
            "shutdown_grace_seconds": ("SYNTHESIS_SHUTDOWN_GRACE", float),
            "retention_days": ("SYNTHESIS_RETENTION_DAYS", float),
            "retention_events": ("SYNTHESIS_RETENTION_EVENTS", int),
        }
        for name, (variable, convert) in from_env.items():
            if env.get(variable):
                values[name] = convert(env[variable])
        for name, value in flags.items():
            if value is not None and value != () and value != []:
                values[name] = tuple(value) if isinstance(value, list) else value
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"])).expanduser()
        return cls(**values)  # type: ignore[arg-type]


def _split_tokens(text: str) -> Sequence[str]:
    return tuple(t.strip() for t in text.split(",") if t.strip())
