"""How long the web UI takes to render a big execution page, in a real browser.

    python benchmarks/ui.py [--runs 5] [--steps 500] [--lines 10000] [--database URL]

Starts a real `synthesis serve` (as `run.py` does), runs two executions to their end:

- **steps**: a plan of N `true` command steps as a DAG with fan-out (a root, a tree of
  steps five wide under it, and a `join` step after the last of them);
- **lines**: one step printing L lines (`line 1` ... `line L`).

Then, R times each, a fresh context of one headless Debian `chromium` (Playwright; never
a downloaded browser) signs in and navigates to a page, and the time from the
navigation's start to the page being fully rendered is read from the page's own clock
(`performance.now()`, whose origin is the navigation's start):

- **steps**: `/ui/executions/<id>`: the execution's status badge shows `completed`, and
  so do at least a screenful (20) of step nodes (the step view may be virtualized: the
  number of step ids in the DOM is reported);
- **steps, last selected**: `/ui/executions/<id>/steps/join`: the last step's node shows
  `completed` and its output view (`role=log`) is there;
- **lines**: `/ui/executions/<id>/steps/print#L<L>`: the output view shows `line L` (the
  deep link to the last line); the number of elements and of text lines the output view
  holds in the DOM is reported (a virtualized view holds far fewer than L).

Prints one JSON line per scenario: median, min and max in ms of the R runs, each run, and
the DOM counts of the last run. Target: under 1 s each. Progress goes to stderr. Exit 1
if a page never rendered (within 60 s).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import Api, Server

FAN_OUT = 5
VISIBLE_ROWS = 20  # step rows a 1280x800 page shows: the graph may be virtualized
TIMEOUT_MS = 60_000
TARGET_MS = 1000.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dag_plan(size: int) -> list[dict[str, Any]]:
    """`size` `true` steps: a root, a tree FAN_OUT wide under it, a `join` after the
    last layer's steps."""
    steps: list[dict[str, Any]] = [
        {"id": "s0", "type": "command", "parameters": {"command": "true"}}
    ]
    for i in range(1, size - 1):
        parent = f"s{(i - 1) // FAN_OUT}"
        steps.append(
            {
                "id": f"s{i}",
                "type": "command",
                "parameters": {"command": "true"},
                "depends_on": [parent],
            }
        )
    leaves = {s["id"] for s in steps} - {d for s in steps for d in s.get("depends_on", [])}
    steps.append(
        {
            "id": "join",
            "type": "command",
            "parameters": {"command": "true"},
            "depends_on": sorted(leaves),
        }
    )
    return steps


def printing_plan(lines: int) -> list[dict[str, Any]]:
    return [
        {
            "id": "print",
            "type": "command",
            "parameters": {"command": f"seq 1 {lines} | sed 's/^/line /'"},
        }
    ]


def run_to_end(api: Api, name: str, steps: list[dict[str, Any]]) -> str:
    body = {"plan": {"name": name, "steps": steps}, "start": True}
    status, created = api.call("POST", "/api/executions", body)
    assert status == 201, created
    execution_id = created["execution_id"]
    began = time.monotonic()
    while True:
        _, row = api.call("GET", f"/api/executions/{execution_id}")
        if row["status"] not in ("created", "running"):
            break
        time.sleep(0.2)
    assert row["status"] == "completed", row["status"]
    log(f"{name}: ran in {time.monotonic() - began:.1f} s")
    return execution_id


STEPS_READY = """(wanted) => {
  const own = document.querySelector('main [data-status]:not([data-step-id] *)');
  if (!own || own.dataset.status !== 'completed') return false;
  const nodes = [...document.querySelectorAll('[data-step-id]')];
  const done = nodes.filter((n) => n.querySelector('[data-status="completed"]'));
  const ids = new Set(done.map((n) => n.dataset.stepId));
  if (ids.size < wanted) return false;
  return {
    ms: performance.now(),
    step_ids_in_dom: ids.size,
    dom_elements: document.getElementsByTagName('*').length,
  };
}"""

LAST_STEP_READY = """(last) => {
  const node = document.querySelector(`[data-step-id="${last}"] [data-status]`);
  if (!node || node.dataset.status !== 'completed') return false;
  if (!document.querySelector(`[role="log"][aria-label="Output of ${last}"]`)) return false;
  return {
    ms: performance.now(),
    step_ids_in_dom: new Set([...document.querySelectorAll('[data-step-id]')]
      .map((e) => e.dataset.stepId)).size,
    dom_elements: document.getElementsByTagName('*').length,
  };
}"""

LINES_READY = """(last) => {
  const view = document.querySelector('[role="log"]');
  if (!view || !view.textContent.includes(last)) return false;
  return {
    ms: performance.now(),
    log_elements: view.getElementsByTagName('*').length,
    log_text_lines: view.innerText.split('\\n').filter((l) => l.trim()).length,
    dom_elements: document.getElementsByTagName('*').length,
  };
}"""


def signed_in_page(browser: Browser, base: str, token: str) -> Page:
    """A fresh context (empty cache) that has signed in once: the assets are then cached,
    as for a person who opens an execution from the list."""
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto("/ui/sign-in")
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("navigation", name="Main").wait_for(timeout=TIMEOUT_MS)
    return page


def measure(browser: Browser, base: str, token: str, url: str, ready: str, arg: Any) -> dict:
    page = signed_in_page(browser, base, token)
    try:
        page.goto(url, wait_until="commit")
        handle = page.wait_for_function(ready, arg=arg, timeout=TIMEOUT_MS, polling="raf")
        return handle.json_value()
    finally:
        page.context.close()


def summary(name: str, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    times = [r["ms"] for r in results]
    last = results[-1]
    return {
        "scenario": name,
        **extra,
        "runs": len(times),
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "target_ms": TARGET_MS,
        "met": statistics.median(times) < TARGET_MS,
        "each_ms": [round(t, 1) for t in times],
        **{k: v for k, v in last.items() if k != "ms"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="page loads per scenario")
    parser.add_argument("--steps", type=int, default=500, help="steps of the DAG plan")
    parser.add_argument("--lines", type=int, default=10_000, help="lines of the output")
    parser.add_argument("--database", help="passed to `synthesis serve --database`")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        log("the `chromium` command is missing: apt-get install chromium")
        return 2

    server = Server.start(args.database, None)
    failed = False
    try:
        server.wait_ready()
        base = f"http://127.0.0.1:{server.port}"
        api = Api(server.port, server.token)
        dag = run_to_end(api, f"{args.steps} steps", dag_plan(args.steps))
        printed = run_to_end(api, f"{args.lines} lines", printing_plan(args.lines))
        scenarios = [
            ("steps", f"/ui/executions/{dag}", STEPS_READY, VISIBLE_ROWS, {"steps": args.steps}),
            (
                "steps, last selected",
                f"/ui/executions/{dag}/steps/join",
                LAST_STEP_READY,
                "join",
                {"steps": args.steps},
            ),
            (
                "lines",
                f"/ui/executions/{printed}/steps/print#L{args.lines}",
                LINES_READY,
                f"line {args.lines}",
                {"lines": args.lines},
            ),
        ]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for name, url, ready, arg, extra in scenarios:
                results = []
                for run in range(args.runs):
                    try:
                        results.append(measure(browser, base, server.token, url, ready, arg))
                    except Exception as exc:  # a page that never renders is the finding
                        log(f"{name} run {run + 1}: not rendered: {str(exc).splitlines()[0]}")
                        failed = True
                        break
                    log(f"{name} run {run + 1}: {results[-1]['ms']:.0f} ms")
                if results:
                    print(orjson.dumps(summary(name, results, **extra)).decode(), flush=True)
            browser.close()
    finally:
        code = server.stop()
        if code != 0:
            log(f"server exited with {code}: {server.log_lines()[-5:]}")
        server.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
