"""Fixtures for the web UI's tests: a real server per module, one headless Debian
`chromium` for all of them driven by Playwright (never a downloaded browser), a fresh
browser context and page per test, and screenshots under tests/ui/screenshots/ (git
ignores them: look at them after a run).

Without the `chromium` command the browser tests are skipped with the reason, unless
`CI` is set: in CI they fail (as `require_postgres` does for PostgreSQL)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.support import TOKEN, Client, ServerThread, make_settings

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
VIEWPORT: dict[str, int] = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000  # generous for a loaded 2-core machine; expect() polls until then
expect.set_options(timeout=TIMEOUT_MS)


def require_chromium() -> str:
    """The path of Debian's `chromium`; fails (CI) or skips (elsewhere) without it."""
    path = shutil.which("chromium")
    if path:
        return path
    reason = "the `chromium` command is missing (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI requires it", pytrace=False)
    pytest.skip(f"{reason} (set CI=true to make this a failure)")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for all the UI's tests (we run as root: no sandbox). Package
    scope, not session: while Playwright's sync API is open it keeps an event loop marked
    running on the main thread, so `asyncio.run` in any later test would fail."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One real server per module, on SQLite (the UI does not care about the store)."""
    data_dir = tmp_path_factory.mktemp("ui-server")
    running = ServerThread(make_settings(data_dir, f"sqlite:///{data_dir / 'db.sqlite'}"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(ui_server: ServerThread) -> Client:
    """REST with the full token, for arranging and checking what the browser shows."""
    return ui_server.client()


@pytest.fixture(scope="module")
def base_url(ui_server: ServerThread) -> str:
    return f"http://127.0.0.1:{ui_server.port}"


@dataclass
class PageProblems:
    """What went wrong inside the page: uncaught errors, CSP refusals, dialogs."""

    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"{error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.csp.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def new_page(
    browser: Browser, base_url: str, problems: PageProblems, **options: Any
) -> tuple[BrowserContext, Page]:
    context = browser.new_context(
        base_url=base_url, viewport={"width": 1280, "height": 800}, **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems.watch(page)
    return context, page


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture(scope="module")
def shared_context(browser: Browser, base_url: str) -> Iterator[BrowserContext]:
    """One browser context per module: its pages share the HTTP cache (the UI's ~50
    modules are immutable assets, loaded once instead of once per test) but nothing a
    test could lean on: a new page (tab) has its own, empty sessionStorage, which is
    where the token lives, so every test starts signed out."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(shared_context: BrowserContext, problems: PageProblems) -> Iterator[Page]:
    """A fresh page (tab) per test, signed out. The test fails if the page threw an
    uncaught error or the browser refused something for the Content-Security-Policy:
    both are bugs of the UI."""
    fresh = shared_context.new_page()
    problems.watch(fresh)
    yield fresh
    fresh.close()
    assert not problems.errors, f"uncaught errors in the page: {problems.errors}"
    assert not problems.csp, f"refused by the Content-Security-Policy: {problems.csp}"


@pytest.fixture
def shot_path(request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`shot_path("step")`: tests/ui/screenshots/<module>-<test>-<step>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    test = re.sub(r"[^\w.-]+", "_", request.node.name.removeprefix("test_"))
    return lambda step: SCREENSHOTS / f"{module}-{test}-{step}.png"


@pytest.fixture
def screenshot(page: Page, shot_path: Callable[[str], Path]) -> Callable[[str], Path]:
    """`screenshot("step")` saves the whole page at a step worth looking at."""

    def take(step: str) -> Path:
        path = shot_path(step)
        page.screenshot(path=path, full_page=True)
        return path

    return take


def sign_in(page: Page, token: str = TOKEN, path: str = "/ui/") -> None:
    """Open `path` signed out, sign in on the page it sends us to, and wait for the shell."""
    page.goto(path)
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
