"""An accessibility scan of every page with axe-core (vendored for the tests in
tests/ui/vendor/), in the light and the dark colour scheme: no violation of impact
`serious` or `critical`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support import TOKEN, Client, command
from tests.ui.conftest import PageProblems, new_page

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")
# Wait for the page's finite animations (a new row fading in, a colour transition after
# the scheme changed): axe measures contrast on the colours of the moment.
SETTLED = """() => Promise.all(document.getAnimations()
  .filter((a) => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
  .map((a) => a.finished.catch(() => null)))"""
COLOUR_RULES = ["color-contrast", "link-in-text-block"]


@dataclass
class Fixtures:
    first: str
    second: str
    plan_id: str


@pytest.fixture(scope="module")
def made(api: Client) -> Fixtures:
    """Two finished executions of one plan (for the execution, step and compare pages)
    and a stored plan with a variable."""
    steps = [
        command("fetch", "printf 'row %s\\n' 1 2 3"),
        command("build", "echo built; echo warning >&2", depends_on=["fetch"]),
        command("publish", "echo published", depends_on=["build"]),
    ]
    ids = [api.create(steps, name="accessible", variables={"env": "test"}) for _ in range(2)]
    for execution_id in ids:
        api.wait_for_status(execution_id, "completed")
    plan = api.post(
        "/api/plans",
        {"name": "accessible plan", "variables": {"who": "World"}, "steps": steps},
    )
    assert plan.status == 201, plan
    return Fixtures(ids[0], ids[1], plan.json["plan_id"])


@pytest.fixture
def axe_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A page with axe loaded in every document. Not with add_script_tag(path=...), which
    adds an inline <script> that the UI's CSP (rightly) refuses, so it would need
    bypass_csp=True: an init script is evaluated by the browser itself, before the page's
    own scripts and outside the page's CSP, so the pages are scanned under their real
    policy (and loading axe once per context, not per page, is faster)."""
    problems = PageProblems()
    context, page = new_page(browser, base_url, problems)
    context.add_init_script(path=AXE)
    yield page
    context.close()
    assert not problems.errors, f"uncaught errors in the page: {problems.errors}"
    assert not problems.csp, f"refused by the Content-Security-Policy: {problems.csp}"


def pages(made: Fixtures) -> list[tuple[str, str, Callable[[Page], Locator]]]:
    """(name, URL, what shows the page is rendered) for every page of the UI."""
    return [
        ("executions", "/ui/executions", lambda p: p.locator("table caption")),
        ("execution", f"/ui/executions/{made.first}", lambda p: p.locator("[data-step-id]").first),
        (
            "step output",
            f"/ui/executions/{made.first}/steps/fetch",
            lambda p: p.get_by_role("log", name="Output of fetch"),
        ),
        ("plans", "/ui/plans", lambda p: p.get_by_role("link", name="accessible plan")),
        ("plan", f"/ui/plans/{made.plan_id}", lambda p: p.locator("main pre").first),
        ("events", "/ui/events", lambda p: p.locator("[data-event-id]").first),
        ("system", "/ui/system", lambda p: p.get_by_role("heading", name="Health")),
        (
            "compare",
            f"/ui/compare?a={made.first}&b={made.second}",
            lambda p: p.locator("main").get_by_text("publish").first,
        ),
    ]


def scan(page: Page, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical; every rule, or only `rules`."""
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = rules
    # a list dims while it reloads (aria-busy): scan the settled page
    page.wait_for_function("() => !document.querySelector('[aria-busy=\"true\"]')")
    page.evaluate(SETTLED)
    results = page.evaluate("options => axe.run(document, options)", options)
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def describe(where: str, violations: list[dict[str, Any]]) -> list[str]:
    lines = []
    for violation in violations:
        lines.append(f"{where}: [{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:4]:
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"    {', '.join(map(str, node['target']))}: {summary[:300]}")
        if len(violation["nodes"]) > 4:
            lines.append(f"    ... and {len(violation['nodes']) - 4} more elements")
    return lines


def scan_both_schemes(page: Page, where: str, shot_path: Callable[[str], Path]) -> list[str]:
    """Every rule in the light scheme; in the dark one, whose DOM is the same, the rules
    that depend on colour."""
    found: list[str] = []
    for scheme, rules in (("light", None), ("dark", COLOUR_RULES)):
        page.emulate_media(color_scheme=scheme)
        found += describe(f"{where} ({scheme})", scan(page, rules))
        page.screenshot(path=shot_path(f"{where.replace(' ', '-')}-{scheme}"), full_page=True)
    return found


def test_no_serious_accessibility_violations_on_any_page(
    axe_page: Page, made: Fixtures, shot_path: Callable[[str], Path]
) -> None:
    page = axe_page
    problems: list[str] = []
    page.goto("/ui/sign-in")
    expect(page.get_by_label("Token", exact=True)).to_be_visible()
    problems += scan_both_schemes(page, "sign-in", shot_path)

    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    for name, url, ready in pages(made):
        page.goto(url)
        try:
            expect(ready(page)).to_be_visible()
        except AssertionError as exc:
            problems.append(f"{name}: not rendered at {url}: {str(exc).splitlines()[0]}")
            continue
        problems += scan_both_schemes(page, name, shot_path)
    assert not problems, "accessibility problems:\n" + "\n".join(problems)
