"""Settings: flags beat environment variables beat defaults (webhooks, the target
policy), and the token file, the secrets file and `SYNTHESIS_SECRET_<NAME>`, refused when
others may read them or when malformed."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from synthesis.cli import MaskSecrets, build_parser
from synthesis.config import ConfigError, Settings
from synthesis.integrations.base import RunContext
from synthesis.integrations.cli import child_environment


def settings(argv: list[str], environ: dict[str, str]) -> Settings:
    args = vars(build_parser().parse_args(["serve", *argv]))
    return Settings.from_sources({k: v for k, v in args.items() if k != "command"}, environ)


def test_defaults() -> None:
    default = settings([], {})
    assert default.webhook_request_timeout_seconds == 10
    assert default.webhook_retry_window_seconds == 24 * 3600
    assert default.webhook_pause_after_failures == 3
    assert default.deny_private_targets is False


def test_environment_then_flags() -> None:
    environ = {
        "SYNTHESIS_WEBHOOK_TIMEOUT": "2.5",
        "SYNTHESIS_WEBHOOK_RETRY_WINDOW": "600",
        "SYNTHESIS_WEBHOOK_PAUSE_AFTER": "0",
        "SYNTHESIS_DENY_PRIVATE_TARGETS": "1",
    }
    from_env = settings([], environ)
    assert from_env.webhook_request_timeout_seconds == 2.5
    assert from_env.webhook_retry_window_seconds == 600
    assert from_env.webhook_pause_after_failures == 0
    assert from_env.deny_private_targets is True
    flags = ["--webhook-timeout", "30", "--webhook-retry-window", "60"]
    flags += ["--webhook-pause-after", "5", "--deny-private-targets"]
    from_flags = settings(flags, {**environ, "SYNTHESIS_DENY_PRIVATE_TARGETS": "0"})
    assert from_flags.webhook_request_timeout_seconds == 30
    assert from_flags.webhook_retry_window_seconds == 60
    assert from_flags.webhook_pause_after_failures == 5
    assert from_flags.deny_private_targets is True
    assert settings([], {"SYNTHESIS_DENY_PRIVATE_TARGETS": "false"}).deny_private_targets is False


def test_cluster_settings_from_the_environment_then_flags() -> None:
    default = settings([], {})
    assert (default.workers, default.heartbeat_seconds, default.node_timeout_seconds) == (1, 2, 10)
    environ = {
        "SYNTHESIS_WORKERS": "3",
        "SYNTHESIS_HEARTBEAT_SECONDS": "1",
        "SYNTHESIS_NODE_TIMEOUT_SECONDS": "5",
    }
    from_env = settings([], environ)
    assert (from_env.workers, from_env.heartbeat_seconds, from_env.node_timeout_seconds) == (
        3,
        1,
        5,
    )
    flags = ["--workers", "1", "--heartbeat-seconds", "0.5", "--node-timeout-seconds", "2"]
    from_flags = settings(flags, environ)
    assert (from_flags.workers, from_flags.heartbeat_seconds) == (1, 0.5)
    assert from_flags.node_timeout_seconds == 2
    with pytest.raises(ConfigError, match="more than twice --heartbeat-seconds"):
        settings(["--heartbeat-seconds", "5"], {})


def test_a_bad_boolean_is_refused() -> None:
    with pytest.raises(ConfigError, match="SYNTHESIS_DENY_PRIVATE_TARGETS must be 1 or 0"):
        settings([], {"SYNTHESIS_DENY_PRIVATE_TARGETS": "maybe"})


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_token_file_adds_to_the_tokens_given_elsewhere(tmp_path: Path) -> None:
    tokens = private(tmp_path / "tokens", "# operators\nfile-token\nfile-reader:read\n")
    settings = Settings.from_sources({"token_file": str(tokens)}, {"SYNTHESIS_TOKENS": "env-token"})
    assert settings.tokens == ("env-token", "file-token", "file-reader:read")
    from_env = Settings.from_sources({}, {"SYNTHESIS_TOKEN_FILE": str(tokens)})
    assert from_env.tokens == ("file-token", "file-reader:read")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_files_others_may_read_are_refused(tmp_path: Path, mode: int) -> None:
    tokens = private(tmp_path / "tokens", "file-token\n", mode)
    with pytest.raises(ConfigError, match=f"token file {tokens} is accessible by group or others"):
        Settings.from_sources({"token_file": str(tokens)}, {})
    secrets = private(tmp_path / "secrets", "A=abcd\n", mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        Settings.from_sources({}, {"SYNTHESIS_SECRETS_FILE": str(secrets)})


def test_secrets_from_the_file_and_the_environment(tmp_path: Path) -> None:
    secrets = private(tmp_path / "secrets", "API_KEY=from-the-file\n")
    settings = Settings.from_sources(
        {"secrets_file": str(secrets)},
        {"SYNTHESIS_SECRET_DB": "from-the-env", "SYNTHESIS_SECRETS_FILE": "/ignored"},
    )
    assert settings.secrets == {"API_KEY": "from-the-file", "DB": "from-the-env"}
    assert "from-the" not in repr(settings)  # nor tokens: Settings may be logged


def test_bad_secrets_are_refused_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match=f"cannot read the secrets file {missing}"):
        Settings.from_sources({"secrets_file": str(missing)}, {})
    malformed = private(tmp_path / "bad", "API_KEY from-the-file\n")
    with pytest.raises(ConfigError, match="line 1: expected NAME=value") as caught:
        Settings.from_sources({"secrets_file": str(malformed)}, {})
    assert "from-the-file" not in str(caught.value)
    twice = private(tmp_path / "twice", "DB=from-the-file\n")
    with pytest.raises(ConfigError, match="'DB' is in both the secrets file and"):
        Settings.from_sources({"secrets_file": str(twice)}, {"SYNTHESIS_SECRET_DB": "other"})
    with pytest.raises(ConfigError, match="at least 4 characters"):
        Settings.from_sources({}, {"SYNTHESIS_SECRET_PIN": "123"})


def test_integrations_policy_from_the_environment() -> None:
    settings = Settings.from_sources({}, {"SYNTHESIS_INTEGRATIONS": "cli, api"})
    assert settings.integrations == ("cli", "api")
    assert Settings.from_sources({}, {}).integrations is None


def test_commands_never_inherit_the_servers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    private_names = (
        "SYNTHESIS_TOKENS",
        "SYNTHESIS_TOKEN_FILE",
        "SYNTHESIS_JWT_SECRET",
        "SYNTHESIS_DATABASE_URL",
        "SYNTHESIS_SECRETS_FILE",
        "SYNTHESIS_SECRET_API_KEY",
    )
    for name in private_names:
        monkeypatch.setenv(name, "server-only")
    monkeypatch.setenv("SYNTHESIS_PORT", "8009")
    env = child_environment(
        RunContext(variables={"who": "x"}), {"SYNTHESIS_SECRET_MINE": "given-to-the-step"}
    )
    assert not set(private_names) & env.keys()
    assert env["SYNTHESIS_PORT"] == "8009" and env["SYNTHESIS_VAR_WHO"] == "x"
    assert env["SYNTHESIS_SECRET_MINE"] == "given-to-the-step"
    assert env["PATH"] == os.environ["PATH"]


def test_the_log_filter_masks_tokens_and_secrets_in_messages_and_tracebacks() -> None:
    settings = Settings(
        tokens=("admin-token-1", "reader-token:read"),
        jwt_secret="jwt-signing-key-of-at-least-32-bytes",
        secrets={"API": "named-secret"},
    )
    try:
        raise RuntimeError("failed with named-secret")
    except RuntimeError:
        exc_info = sys.exc_info()
    args = ("admin-token-1", "reader-token")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s and %s", args, exc_info)
    assert MaskSecrets(settings).filter(record)
    line = logging.Formatter().format(record)
    assert "got *** and ***" in line and "RuntimeError: failed with ***" in line
    for value in ("admin-token-1", "reader-token", "named-secret"):
        assert value not in line
