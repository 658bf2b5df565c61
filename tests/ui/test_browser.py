"""The web UI in a real browser (headless Debian chromium via Playwright) against a real
server: sign-in and deep links, live updates of the list, of an execution's steps and
output and of the events tail, the write controls and who sees them, running a plan,
HTML staying text, keyboard use, history and a narrow screen. Selectors are the UI
contract's roles, labels and data attributes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.support import READ_TOKEN, TOKEN, Client, command, wait_until
from tests.ui.conftest import PageProblems, sign_in

Shot = Callable[[str], Path]
XSS_NAME = "<img src=x onerror=alert(1)>"
BOLD = "<b>bold</b>"


def gate(path: Path) -> str:
    """Shell that waits until `path` exists (a test opens the gate by creating it)."""
    return f"while [ ! -e '{path}' ]; do sleep 0.05; done"


def row(page: Page, execution_id: str) -> Locator:
    return page.locator(f'tr[data-execution-id="{execution_id}"]')


def step_node(page: Page, step_id: str) -> Locator:
    """The step in the graph/timeline (`.first`: a view may show a step more than once)."""
    return page.locator(f'[data-step-id="{step_id}"]').first


def execution_status(page: Page) -> Locator:
    """The execution's own status badge: the first one that is not a step's."""
    return page.locator("main [data-status]:not([data-step-id] *)").first


def output_of(page: Page, step_id: str) -> Locator:
    return page.get_by_role("log", name=f"Output of {step_id}", exact=True)


def mark_document(page: Page) -> None:
    """Leave a mark in the page: it survives everything but a reload."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_sign_in_lands_on_the_executions_list(page: Page, screenshot: Shot) -> None:
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    token = page.get_by_label("Token", exact=True)
    expect(token).to_have_attribute("type", "password")
    expect(page.get_by_text("Loading Synthesis")).to_be_hidden()  # the boot message is gone
    screenshot("sign-in")
    token.fill(TOKEN)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/(executions)?$"))
    expect(page.get_by_role("heading", name="Executions", level=1)).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Executions", "Plans", "Events", "System"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
    expect(page.get_by_text("Loading Synthesis")).to_be_hidden()
    expect(page.locator('[role="status"][data-connection]')).to_have_attribute(
        "data-connection", "live"
    )
    # the token stays in this tab's sessionStorage, never in the URL or localStorage
    assert TOKEN not in page.url
    assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    assert page.evaluate("localStorage.length") == 0
    screenshot("executions")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    assert page.evaluate("sessionStorage.length") == 0


def test_the_boot_message_goes_when_a_page_opens_directly(page: Page) -> None:
    page.goto("/ui/sign-in")
    expect(page.get_by_label("Token", exact=True)).to_be_visible()
    expect(page.get_by_text("Loading Synthesis")).to_be_hidden()


def test_a_bad_token_is_told_so(page: Page, screenshot: Shot) -> None:
    page.goto("/ui/sign-in")
    page.get_by_label("Token", exact=True).fill("not-a-token")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    assert page.evaluate("sessionStorage.length") == 0
    screenshot("refused")


def test_a_deep_link_survives_the_sign_in(page: Page, api: Client) -> None:
    execution_id = api.create([command("first", "printf 'one\\ntwo\\nthree\\n'")], name="deep link")
    api.wait_for_status(execution_id, "completed")
    deep = f"/ui/executions/{execution_id}/steps/first"
    page.goto(deep + "#L2")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(deep) + "#L2$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("deep link")
    log = output_of(page, "first")
    expect(log).to_contain_text("two")
    # line 2 is the one marked (aria-current) and in view
    current = log.locator('[aria-current="true"]')
    expect(current).to_have_count(1)
    expect(current).to_contain_text("two")
    expect(current).to_be_in_viewport()


def test_the_executions_list_updates_live(
    page: Page, api: Client, tmp_path: Path, screenshot: Shot
) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Executions", level=1)).to_be_visible()
    mark_document(page)
    opened = tmp_path / "open"
    execution_id = api.create([command("wait", gate(opened))], name="live row")
    live = row(page, execution_id)
    expect(live).to_be_visible()
    expect(page.locator("table caption")).to_contain_text("Executions")
    expect(live.get_by_role("link", name="live row")).to_be_visible()
    expect(live.locator("[data-status]").first).to_have_attribute("data-status", "running")
    expect(live.locator("[data-status]").first).to_contain_text("running")
    screenshot("running")
    opened.touch()
    expect(live.locator("[data-status]").first).to_have_attribute("data-status", "completed")
    expect(live.locator("[data-status]").first).to_contain_text("completed")
    assert_not_reloaded(page)


def test_a_live_update_does_not_dim_the_list(page: Page, api: Client) -> None:
    """A list dims (aria-busy) while a new page or filter loads, never while it refreshes
    what it shows for a live event: a busy server asks for that several times a second."""
    sign_in(page, path="/ui/plans")
    expect(page.get_by_role("heading", name="Plans", level=1)).to_be_visible()
    expect(page.locator('[role="status"][data-connection]')).to_have_attribute(
        "data-connection", "live"
    )
    page.evaluate(
        """() => {
          window.__dimmed = [];
          const dims = (c) => c.target.getAttribute('aria-busy') === 'true';
          new MutationObserver((changes) => {
            for (const c of changes.filter(dims)) window.__dimmed.push(c.target.className);
          }).observe(document.body, {subtree: true, attributeFilter: ['aria-busy']});
        }"""
    )
    for n in range(3):
        stored = api.post("/api/plans", {"name": f"live plan {n}", "steps": [command("a", "true")]})
        assert stored.status == 201, stored
        expect(page.get_by_role("link", name=f"live plan {n}")).to_be_visible()
    assert page.evaluate("window.__dimmed") == []


def test_an_execution_streams_steps_and_output(
    page: Page, api: Client, tmp_path: Path, screenshot: Shot
) -> None:
    opened = tmp_path / "open"
    steps = [
        command("first", f"echo line 1; sleep 0.3; echo line 2; {gate(opened)}; echo line 3"),
        command("second", "echo second says hi", depends_on=["first"]),
    ]
    execution_id = api.create(steps, name="streaming")
    sign_in(page, path=f"/ui/executions/{execution_id}/steps/first")
    mark_document(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("streaming")
    log = output_of(page, "first")
    expect(log).to_contain_text("line 1")
    expect(log).to_contain_text("line 2")
    expect(log).not_to_contain_text("line 3")
    assert api.execution(execution_id)["status"] == "running"  # it is still going
    expect(execution_status(page)).to_have_attribute("data-status", "running")
    expect(step_node(page, "first").locator("[data-status]")).to_have_attribute(
        "data-status", "running"
    )
    expect(step_node(page, "second").locator("[data-status]")).to_have_attribute(
        "data-status", "pending"
    )
    screenshot("running")
    opened.touch()
    expect(log).to_contain_text("line 3")
    expect(step_node(page, "second").locator("[data-status]")).to_have_attribute(
        "data-status", "completed"
    )
    expect(execution_status(page)).to_have_attribute("data-status", "completed")
    expect(execution_status(page)).to_contain_text("completed")
    expect(page.get_by_role("heading", name="Variables")).to_be_visible()
    page.get_by_label("Search output", exact=True).fill("says hi")
    expect(page.get_by_text("second says hi").first).to_be_visible()
    screenshot("completed")
    assert_not_reloaded(page)


def test_pause_resume_and_cancel_drive_a_running_execution(
    page: Page, api: Client, screenshot: Shot
) -> None:
    execution_id = api.create([command("sleeper", "sleep 30")], name="to cancel")
    api.wait_for_step(execution_id, "sleeper", "running")
    sign_in(page, path=f"/ui/executions/{execution_id}")
    expect(execution_status(page)).to_have_attribute("data-status", "running")
    pause = page.get_by_role("button", name="Pause", exact=True)
    resume = page.get_by_role("button", name="Resume", exact=True)
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    # exactly the buttons a state allows, for a token that may write
    expect(pause).to_be_visible()
    expect(cancel).to_be_visible()
    expect(resume).to_have_count(0)
    screenshot("running")

    pause.click()
    api.wait_for_status(execution_id, "paused")
    expect(execution_status(page)).to_have_attribute("data-status", "paused")
    expect(resume).to_be_visible()
    expect(pause).to_have_count(0)
    resume.click()
    api.wait_for_status(execution_id, "running")
    expect(execution_status(page)).to_have_attribute("data-status", "running")
    expect(pause).to_be_visible()

    cancel.click()
    api.wait_for_status(execution_id, "cancelled")
    expect(execution_status(page)).to_have_attribute("data-status", "cancelled")
    for button in (pause, resume, cancel):
        expect(button).to_have_count(0)
    screenshot("cancelled")


def test_a_read_only_token_sees_no_write_controls(
    page: Page, api: Client, screenshot: Shot
) -> None:
    execution_id = api.create([command("sleeper", "sleep 30")], name="read only view")
    api.wait_for_step(execution_id, "sleeper", "running")
    plan = api.post(
        "/api/plans",
        {
            "name": "read only plan",
            "variables": {"who": "World"},
            "steps": [command("hello", "echo hello $SYNTHESIS_VAR_WHO")],
        },
    )
    assert plan.status == 201, plan
    try:
        sign_in(page, READ_TOKEN, path=f"/ui/executions/{execution_id}")
        expect(execution_status(page)).to_have_attribute("data-status", "running")
        expect(step_node(page, "sleeper")).to_be_visible()
        for name in ("Pause", "Resume", "Cancel", "Run"):
            expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
        screenshot("execution")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
        page.get_by_role("link", name="read only plan").click()
        expect(page).to_have_url(re.compile(rf"/ui/plans/{plan.json['plan_id']}$"))
        expect(page.locator("main pre").first).to_contain_text("hello")
        for name in ("Pause", "Resume", "Cancel", "Run"):
            expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
        screenshot("plan")
    finally:
        api.post(f"/api/executions/{execution_id}/cancel")


def test_running_a_plan_from_its_form_opens_the_new_execution(
    page: Page, api: Client, screenshot: Shot
) -> None:
    plan = api.post(
        "/api/plans",
        {
            "name": "greeting",
            "variables": {"who": "World"},
            "steps": [command("hello", "echo Hello, $SYNTHESIS_VAR_WHO")],
        },
    )
    assert plan.status == 201, plan
    sign_in(page, path=f"/ui/plans/{plan.json['plan_id']}")
    who = page.get_by_label("who", exact=True)
    expect(who).to_be_visible()
    who.fill("Ada")
    screenshot("form")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/executions/[0-9a-f-]{36}(/|$)"))
    execution_id = re.search(r"/ui/executions/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]
    done = api.wait_for_status(execution_id, "completed")
    assert done["variables"]["who"] == "Ada"
    step_node(page, "hello").get_by_role("link", name="hello").click()
    expect(page).to_have_url(re.compile(rf"/ui/executions/{execution_id}/steps/hello$"))
    expect(output_of(page, "hello")).to_contain_text("Hello, Ada")


def test_html_in_names_and_outputs_stays_text(
    page: Page, api: Client, problems: PageProblems, screenshot: Shot
) -> None:
    show = "printf '%s\\n' '<b>bold</b>' '<img src=x onerror=alert(1)>'"
    execution_id = api.create(
        [command("show", show), command("fail", "echo '<b>bold</b>' >&2; exit 3")],
        name=XSS_NAME,
        variables={"note": BOLD},
    )
    api.wait_for_status(execution_id, "failed")
    sign_in(page)
    listed = row(page, execution_id)
    expect(listed.get_by_role("link", name=XSS_NAME, exact=True)).to_be_visible()
    page.goto(f"/ui/executions/{execution_id}/steps/show")
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS_NAME)
    log = output_of(page, "show")
    expect(log).to_contain_text(BOLD)
    expect(log).to_contain_text(XSS_NAME)
    screenshot("show")
    page.goto(f"/ui/executions/{execution_id}/steps/fail")
    expect(page.locator("main")).to_contain_text(BOLD)  # its error (stderr), as text
    assert page.locator('img[src="x"]').count() == 0, "an <img> was made from text"
    assert page.locator("b", has_text="bold").count() == 0, "a <b> was made from text"
    assert problems.dialogs == [], problems.dialogs
    screenshot("fail")


def test_keyboard_reaches_the_main_navigation(page: Page) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Executions", level=1)).to_be_visible()
    plans = page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans")
    # start where a reader starts: the top of the page (the UI focuses <main> after a
    # navigation, so Tab would begin inside the content)
    page.mouse.click(1, 1)
    for _ in range(15):
        page.keyboard.press("Tab")
        if plans.evaluate("link => link === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Plans link of the main navigation")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/plans$"))


def test_back_and_forward_move_between_pages(page: Page, api: Client) -> None:
    execution_id = api.create([command("one", "echo one")], name="history")
    api.wait_for_status(execution_id, "completed")
    sign_in(page, path="/ui/executions")
    listed = row(page, execution_id)
    listed.get_by_role("link", name="history").click()
    expect(page).to_have_url(re.compile(rf"/ui/executions/{execution_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("history")
    page.go_back()
    expect(page).to_have_url(re.compile(r"/ui/executions$"))
    expect(row(page, execution_id)).to_be_visible()
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"/ui/executions/{execution_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("history")


def test_a_narrow_screen_does_not_scroll_sideways(
    page: Page, api: Client, shot_path: Callable[[str], Path]
) -> None:
    execution_id = api.create(
        [command("long", "echo " + "a-long-line-without-spaces-" * 12)], name="narrow " * 8
    )
    api.wait_for_status(execution_id, "completed")
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, path="/ui/executions")
    expect(row(page, execution_id)).to_be_visible()
    pages = [
        ("executions", "/ui/executions"),
        ("step", f"/ui/executions/{execution_id}/steps/long"),
    ]
    for name, url in pages:
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if name == "step":
            expect(output_of(page, "long")).to_contain_text("a-long-line")
        page.screenshot(path=shot_path(name), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name}: the page is {overflow}px wider than a 375px screen"
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_the_events_page_tails_live_with_a_type_filter(page: Page, api: Client) -> None:
    sign_in(page, path="/ui/events")
    expect(page.get_by_label("Type", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    execution_id = api.create([command("one", "echo one")], name="tailed")
    api.wait_for_status(execution_id, "completed")

    def completed_event() -> str | None:
        listed = api.get(f"/api/events?execution_id={execution_id}&type=execution_completed")
        return listed.json["events"][0]["event_id"] if listed.json["events"] else None

    newest = wait_until(completed_event, timeout=10)
    expect(page.locator(f'[data-event-id="{newest}"]')).to_be_visible()
    expect(page.locator(f'[data-event-id="{newest}"]')).to_contain_text("execution_completed")
    # the type filter narrows the tail to that type
    page.get_by_label("Type", exact=True).select_option("execution_completed")
    expect(page.locator(f'[data-event-id="{newest}"]')).to_be_visible()
    expect(page.locator("[data-event-id]", has_text="step_started")).to_have_count(0)


def test_a_failed_refetch_keeps_the_execution_on_screen(
    page: Page, api: Client, tmp_path: Path
) -> None:
    opened = tmp_path / "open"
    steps = [command("first", f"echo first; {gate(opened)}"), command("second", "sleep 30")]
    execution_id = api.create(steps, name="refetch fails")
    sign_in(page, path=f"/ui/executions/{execution_id}/steps/first")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("refetch fails")
    expect(output_of(page, "first")).to_contain_text("first")
    # From now on the snapshot is refused (a server restarting), until the test says so.
    refusing = [True]
    refused: list[str] = []

    def refuse(route: Route) -> None:
        if not refusing[0]:
            route.fallback()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "unavailable", "message": "the server is restarting"}}',
        )

    page.route(f"**/api/executions/{execution_id}", refuse)
    try:
        opened.touch()  # `first` ends: its step_completed asks for the snapshot again
        alert = page.get_by_role("alert").filter(has_text="the server is restarting")
        expect(alert).to_be_visible()
        assert refused, "the snapshot was not asked for again"
        # the page is still the execution, live: its heading, its steps, its output
        expect(heading).to_have_text("refetch fails")
        expect(step_node(page, "first").locator("[data-status]")).to_have_attribute(
            "data-status", "completed"
        )
        expect(step_node(page, "second").locator("[data-status]")).to_have_attribute(
            "data-status", "running"
        )
        expect(output_of(page, "first")).to_contain_text("first")
        # served again: the next refetch (the cancel's) clears the line
        refusing[0] = False
        api.post(f"/api/executions/{execution_id}/cancel")
        expect(execution_status(page)).to_have_attribute("data-status", "cancelled")
        expect(alert).to_have_count(0)
    finally:
        page.unroute(f"**/api/executions/{execution_id}")
        api.post(f"/api/executions/{execution_id}/cancel")


def test_a_refused_token_when_finding_the_first_event_goes_to_sign_in(
    page: Page, api: Client
) -> None:
    execution_id = api.create([command("one", "echo one")], name="first event refused")
    api.wait_for_status(execution_id, "completed")
    sign_in(page, path="/ui/executions")
    page.route(
        re.compile(r".*/api/events\?.*type=execution_created.*"),
        lambda route: route.fulfill(
            status=401,
            content_type="application/json",
            body='{"error": {"code": "unauthorized", "message": "token expired"}}',
        ),
    )
    row(page, execution_id).get_by_role("link", name="first event refused").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    expect(page.get_by_label("Token", exact=True)).to_be_visible()


def test_a_step_that_does_not_exist_says_so(page: Page, api: Client) -> None:
    execution_id = api.create([command("one", "echo one")], name="no such step")
    api.wait_for_status(execution_id, "completed")
    sign_in(page, path=f"/ui/executions/{execution_id}/steps/nope")
    expect(page.get_by_role("heading", level=1)).to_have_text("no such step")
    expect(page.get_by_text("No step nope in this execution")).to_be_visible()
    expect(output_of(page, "nope")).to_have_count(0)
    expect(page.get_by_text("No output.")).to_have_count(0)
    expect(step_node(page, "one")).to_be_visible()


def test_long_variable_lists_are_cut_until_asked(page: Page, api: Client) -> None:
    variables = {f"v{i:04d}": f"value {i}" for i in range(450)}
    execution_id = api.create(
        [command("one", "echo one")], name="many variables", variables=variables
    )
    api.wait_for_status(execution_id, "completed")
    sign_in(page, path=f"/ui/executions/{execution_id}")
    section = page.locator("section", has=page.get_by_role("heading", name="Variables"))
    expect(section.locator("dt", has_text="v0000")).to_be_visible()
    expect(section.locator("dt")).to_have_count(200)
    expect(section.locator("dt", has_text="v0449")).to_have_count(0)
    page.get_by_role("button", name=re.compile(r"^Show all 4\d\d variables$")).click()
    expect(section.locator("dt", has_text="v0449")).to_be_visible()
    expect(section.locator("dt", has_text=re.compile(r"^v\d{4}$"))).to_have_count(450)


def test_running_durations_in_the_list_grow_by_the_second(page: Page, api: Client) -> None:
    execution_id = api.create([command("sleeper", "sleep 30")], name="ticking")
    try:
        api.wait_for_step(execution_id, "sleeper", "running")
        sign_in(page, path="/ui/executions")
        cell = row(page, execution_id).locator(".duration.running")
        expect(cell).to_be_visible()
        first = cell.inner_text()
        expect(cell).not_to_have_text(first, timeout=3_000)  # not 15 s later
    finally:
        api.post(f"/api/executions/{execution_id}/cancel")


def test_the_run_form_keeps_what_was_typed_when_the_plan_is_stored_again(
    page: Page, api: Client
) -> None:
    document = {
        "name": "kept form",
        "variables": {"who": "World"},
        "steps": [command("hello", "echo Hello, $SYNTHESIS_VAR_WHO")],
    }
    plan = api.post("/api/plans", document)
    assert plan.status == 201, plan
    plan_id = plan.json["plan_id"]
    sign_in(page, path=f"/ui/plans/{plan_id}")
    who = page.get_by_label("who", exact=True)
    who.fill("Ada")
    changed = api.request("PUT", f"/api/plans/{plan_id}", {**document, "description": "v2"})
    assert changed.status == 200, changed
    expect(page.get_by_text("v2", exact=True)).to_be_visible()  # the page has the new plan
    expect(who).to_have_value("Ada")
    # a new variable: its field comes, what was typed stays
    more = {**document, "variables": {"who": "World", "times": 2}}
    assert api.request("PUT", f"/api/plans/{plan_id}", more).status == 200
    expect(page.get_by_label("times", exact=True)).to_have_value("2")
    expect(who).to_have_value("Ada")


def test_the_system_page_shows_states_as_status_badges(page: Page) -> None:
    sign_in(page, path="/ui/system")
    expect(page.get_by_role("heading", name="Health")).to_be_visible()
    healthy = page.locator('.health-summary .status[data-status="healthy"]')
    expect(healthy).to_contain_text("healthy")
    expect(healthy.locator(".status-icon")).to_have_text("✓")
    expect(page.locator('.nodes-table .status[data-status="alive"]').first).to_contain_text("alive")
