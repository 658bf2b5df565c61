"""The plan caps come from flags, then the environment, then the defaults."""

from __future__ import annotations

from synthesis.cli import build_parser
from synthesis.config import Settings
from synthesis.engine.plan import Limits


def settings_from(argv: list[str], environ: dict[str, str]) -> Settings:
    flags = dict(vars(build_parser().parse_args(["serve", *argv])))
    flags.pop("command")
    return Settings.from_sources(flags, environ)


def test_plan_caps_have_defaults_an_environment_and_flags() -> None:
    assert settings_from([], {}).plan_limits == Limits(10_000, 10_000)
    environ = {"SYNTHESIS_MAX_PLAN_STEPS": "50", "SYNTHESIS_MAX_LOOP_ITERATIONS": "60"}
    assert settings_from([], environ).plan_limits == Limits(50, 60)
    flags = ["--max-plan-steps", "5", "--max-loop-iterations", "6"]
    assert settings_from(flags, environ).plan_limits == Limits(5, 6)
