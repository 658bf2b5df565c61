"""The webhook and target-policy settings: flags beat environment variables beat defaults."""

from __future__ import annotations

import pytest

from synthesis.cli import build_parser
from synthesis.config import Settings


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


def test_a_bad_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        settings([], {"SYNTHESIS_DENY_PRIVATE_TARGETS": "maybe"})
