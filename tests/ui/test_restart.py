"""The page recovers after the server restarts: a real `synthesis serve` on SQLite is
stopped with SIGTERM under an open page, which says it is reconnecting, and started again
on the same port and data dir, after which the page is live again and shows what is new."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support import TOKEN, ServeProcess, command
from tests.ui.conftest import PageProblems, new_page, sign_in


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """The server, and after a restart the same one again (same port and data dir)."""
    servers = [ServeProcess(tmp_path, f"--token={TOKEN}")]
    yield servers
    if servers[-1].process.poll() is None:
        servers[-1].stop()


def test_the_page_recovers_after_the_server_restarts(
    browser: Browser,
    serve: list[ServeProcess],
    shot_path: Callable[[str], Path],
) -> None:
    problems = PageProblems()
    port = serve[0].port
    context, page = new_page(browser, f"http://127.0.0.1:{port}", problems)
    try:
        api = serve[0].client(TOKEN)
        before = api.create([command("one", "echo before")], name="before the restart")
        sign_in(page)
        expect(page.locator(f'tr[data-execution-id="{before}"]')).to_be_visible()
        page.evaluate("window.__notReloaded = true")
        indicator = page.locator('[role="status"][data-connection]')
        expect(indicator).to_have_attribute("data-connection", "live")

        assert serve[0].stop() == 0
        expect(indicator).to_have_attribute("data-connection", "reconnecting")
        expect(indicator).to_contain_text("Reconnecting")
        page.screenshot(path=shot_path("reconnecting"), full_page=True)

        serve.append(ServeProcess(serve[0].data_dir, f"--token={TOKEN}", port=port))
        expect(indicator).to_have_attribute("data-connection", "live", timeout=20_000)
        expect(indicator).to_contain_text("Live")
        after = api.create([command("one", "echo after")], name="after the restart")
        expect(page.locator(f'tr[data-execution-id="{after}"]')).to_be_visible()
        expect(page.locator(f'tr[data-execution-id="{before}"]')).to_be_visible()
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        page.screenshot(path=shot_path("live-again"), full_page=True)
    finally:
        context.close()
    assert not problems.errors, f"uncaught errors in the page: {problems.errors}"
    assert not problems.csp, f"refused by the Content-Security-Policy: {problems.csp}"
