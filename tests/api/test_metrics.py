"""/metrics against a real server, on SQLite and PostgreSQL: counts move by exactly what a
test ran, durations are real, and the Prometheus text format parses."""

from __future__ import annotations

import http.client
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from synthesis.store.models import executions
from synthesis.web.metrics import p95, prefers_text
from tests.support import READ_TOKEN, TOKEN, Client, ServerThread, command, wait_until

OWN_DATABASE = True  # metrics count the whole store: no other module's runs in it

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPER_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


# ---- a tiny Prometheus text-format parser ------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


@dataclass
class Family:
    name: str
    type: str = ""
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, suffix: str = "", **labels: str) -> float:
        found = [v for n, ls, v in self.samples if n == self.name + suffix and ls == labels]
        assert len(found) == 1, (self.name, suffix, labels, self.samples)
        return found[0]


def parse_prometheus(text: str) -> dict[str, Family]:
    """Every line a comment or `name{labels} value`; every sample in a HELP'd, TYPE'd family."""
    assert text.endswith("\n")
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            assert name not in families, f"family {name} given twice"
            current = families[name] = Family(name, help=help_text)
            assert help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            assert current is not None and current.name == name and not current.type, line
            assert kind in SUFFIXES, line
            current.type = kind
        else:
            assert not line.startswith("#"), line
            match = SAMPLE.match(line)
            assert match, f"not a sample: {line!r}"
            name, label_text, value = match.groups()
            labels = dict(LABEL.findall(label_text or ""))
            if label_text:
                rebuilt = ",".join(f'{k}="{v}"' for k, v in LABEL.findall(label_text))
                assert rebuilt == label_text, f"bad labels: {line!r}"
            assert current is not None and current.type, f"sample before HELP/TYPE: {line!r}"
            assert name in {current.name + s for s in SUFFIXES[current.type]}, line
            current.samples.append((name, labels, float(value)))
    for family in families.values():
        assert family.type and family.samples, family.name
        if family.type == "histogram":
            check_histogram(family)
    return families


def check_histogram(family: Family) -> None:
    buckets = [(ls["le"], v) for n, ls, v in family.samples if n.endswith("_bucket")]
    assert buckets[-1][0] == "+Inf"
    bounds = [float(le) for le, _ in buckets]
    counts = [v for _, v in buckets]
    assert bounds == sorted(bounds) and math.isinf(bounds[-1])
    assert counts == sorted(counts), f"{family.name} buckets are not cumulative: {counts}"
    assert counts[-1] == family.value("_count")
    assert family.value("_sum") >= 0


# ---- helpers ------------------------------------------------------------------------------


def raw_get(
    client: Client, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
        response = conn.getresponse()
        body = response.read().decode("utf-8")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def prometheus(client: Client, **headers: str) -> dict[str, Family]:
    status, got, body = raw_get(client, "/metrics?format=prometheus", headers)
    assert status == 200, body
    assert got["content-type"] == PROMETHEUS_TYPE
    return parse_prometheus(body)


def metrics(client: Client) -> dict[str, Any]:
    response = client.get("/metrics")
    assert response.status == 200, response
    return response.json


def delta(after: dict[str, Any], before: dict[str, Any], section: str) -> dict[str, int]:
    return {key: after[section][key] - before[section][key] for key in after[section]}


# ---- tests --------------------------------------------------------------------------------


def test_json_has_the_reference_shape(client: Client) -> None:
    body = metrics(client)
    assert set(body) == {
        "executions",
        "steps",
        "performance",
        "resource_usage",
        "process_room",
        "cluster",
    }
    assert set(body["executions"]) == {"total", "active", "completed", "failed", "cancelled"}
    assert set(body["steps"]) == {"total", "succeeded", "failed"}
    assert set(body["performance"]) == {
        "average_execution_time_ms",
        "average_step_time_ms",
        "p95_execution_time_ms",
        "p95_step_time_ms",
    }
    for value in (*body["executions"].values(), *body["steps"].values()):
        assert isinstance(value, int) and value >= 0
    for value in body["performance"].values():
        assert isinstance(value, int) and value >= 0
    assert body["resource_usage"]["memory_mb"] > 0
    assert body["resource_usage"]["cpu_percent"] >= 0
    assert 0 < body["resource_usage"]["open_files"] < body["resource_usage"]["open_files_limit"]
    room = body["process_room"]
    assert set(room) == {"capacity", "running", "waiting"}
    assert room["capacity"] >= 1 and room["running"] >= 0 and room["waiting"] == 0
    assert set(body["cluster"]) == {"nodes_alive", "nodes_dead", "node_executions"}
    assert body["cluster"]["nodes_alive"] >= 1  # this one at least (a module's own database)


def test_counts_and_durations_move_by_what_ran(client: Client) -> None:
    before, before_text = metrics(client), prometheus(client)
    completed = client.create([command("a1", "sleep 0.2"), command("a2", "echo hi")])
    failed = client.create([command("b1", "exit 3")])
    cancelled = client.create([command("c1", "echo never")], start=False)
    assert client.post(f"/api/executions/{cancelled}/cancel").status == 200
    assert client.wait_for_status(completed)["status"] == "completed"
    assert client.wait_for_status(failed)["status"] == "failed"
    assert client.wait_for_status(cancelled)["status"] == "cancelled"

    after, after_text = metrics(client), prometheus(client)
    assert delta(after, before, "executions") == {
        "total": 3,
        "active": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert delta(after, before, "steps") == {"total": 4, "succeeded": 2, "failed": 1}
    performance = after["performance"]
    assert performance["p95_execution_time_ms"] >= 200
    assert performance["p95_step_time_ms"] >= 200
    assert performance["average_execution_time_ms"] > 0
    assert performance["average_step_time_ms"] > 0

    def moved(name: str, suffix: str = "", **labels: str) -> float:
        return after_text[name].value(suffix, **labels) - before_text[name].value(suffix, **labels)

    for status, count in (("completed", 1), ("failed", 1), ("cancelled", 1)):
        assert moved("synthesis_executions_total", status=status) == count
    for status, count in (("completed", 2), ("failed", 1), ("cancelled", 1), ("skipped", 0)):
        assert moved("synthesis_steps_total", status=status) == count
    # Timed: completed and failed runs only. a1 slept 0.2 s, so it is above the 0.1 s bucket.
    steps_hist, runs_hist = (
        "synthesis_step_duration_seconds",
        "synthesis_execution_duration_seconds",
    )
    assert moved(steps_hist, "_count") == 3
    assert moved(steps_hist, "_bucket", le="+Inf") == 3
    assert moved(steps_hist, "_bucket", le="0.1") <= 2
    assert moved(steps_hist, "_sum") >= 0.2
    assert moved(runs_hist, "_count") == 2
    assert moved(runs_hist, "_bucket", le="0.1") <= 1
    assert moved(runs_hist, "_sum") >= 0.2


def test_active_counts_a_running_execution(client: Client) -> None:
    before = metrics(client)
    execution_id = client.create([command("slow", "sleep 30")])
    client.wait_for_step(execution_id, "slow", "running")
    during, text = metrics(client), prometheus(client)
    assert delta(during, before, "executions")["active"] == 1
    assert text["synthesis_executions_active"].value() >= 1
    assert text["synthesis_steps_unfinished"].value(status="running") >= 1
    assert client.post(f"/api/executions/{execution_id}/cancel").status == 200
    client.wait_for_step(execution_id, "slow", "cancelled")
    after = metrics(client)
    assert delta(after, before, "executions") == {
        "total": 1,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }


def test_prometheus_text_has_every_figure(client: Client) -> None:
    client.wait_for_status(client.create([command("p1", "echo hi")]))
    json_body, families = metrics(client), prometheus(client)
    expected = {
        "synthesis_executions_total": "counter",
        "synthesis_executions_active": "gauge",
        "synthesis_executions_waiting": "gauge",
        "synthesis_steps_total": "counter",
        "synthesis_steps_unfinished": "gauge",
        "synthesis_execution_duration_seconds": "histogram",
        "synthesis_execution_duration_average_seconds": "gauge",
        "synthesis_execution_duration_p95_seconds": "gauge",
        "synthesis_step_duration_seconds": "histogram",
        "synthesis_step_duration_average_seconds": "gauge",
        "synthesis_step_duration_p95_seconds": "gauge",
        "synthesis_memory_bytes": "gauge",
        "synthesis_cpu_percent": "gauge",
        "synthesis_nodes": "gauge",
        "synthesis_node_executions": "gauge",
        "synthesis_process_room": "gauge",
        "synthesis_process_steps_running": "gauge",
        "synthesis_steps_waiting_for_room": "gauge",
        "synthesis_open_files": "gauge",
        "synthesis_open_files_limit": "gauge",
    }
    assert {name: f.type for name, f in families.items()} == expected
    assert families["synthesis_memory_bytes"].value() > 0
    assert families["synthesis_cpu_percent"].value() >= 0
    cluster = json_body["cluster"]
    assert families["synthesis_nodes"].value(status="alive") == cluster["nodes_alive"]
    assert families["synthesis_nodes"].value(status="dead") == cluster["nodes_dead"]
    assert families["synthesis_node_executions"].value() == cluster["node_executions"]
    room, usage = json_body["process_room"], json_body["resource_usage"]
    assert families["synthesis_process_room"].value() == room["capacity"]
    assert families["synthesis_steps_waiting_for_room"].value() == room["waiting"]
    assert families["synthesis_open_files_limit"].value() == usage["open_files_limit"]
    assert families["synthesis_open_files"].value() > 0
    # The same figures as the JSON (nothing ran between the two reads).
    runs = json_body["executions"]
    finished = sum(
        families["synthesis_executions_total"].value(status=s)
        for s in ("completed", "failed", "cancelled")
    )
    waiting = families["synthesis_executions_waiting"].value()
    active = families["synthesis_executions_active"].value()
    assert finished + waiting + active == runs["total"]
    assert active == runs["active"]
    steps = json_body["steps"]
    assert (
        sum(v for _, _, v in families["synthesis_steps_total"].samples)
        + sum(v for _, _, v in families["synthesis_steps_unfinished"].samples)
        == steps["total"]
    )
    performance = json_body["performance"]
    for what in ("execution", "step"):
        average = families[f"synthesis_{what}_duration_average_seconds"].value()
        assert average == pytest.approx(performance[f"average_{what}_time_ms"] / 1000)
        high = families[f"synthesis_{what}_duration_p95_seconds"].value()
        assert high == pytest.approx(performance[f"p95_{what}_time_ms"] / 1000)


def test_accept_header_chooses_the_format(client: Client) -> None:
    for accept in ("text/plain", SCRAPER_ACCEPT, "text/*"):
        status, headers, body = raw_get(client, "/metrics", {"Accept": accept})
        assert status == 200, accept
        assert headers["content-type"] == PROMETHEUS_TYPE, accept
        assert "Accept" in headers["vary"]
        parse_prometheus(body)
    for accept in ("application/json", "*/*", "text/html,*/*;q=0.8", "text/plain;q=0"):
        status, headers, body = raw_get(client, "/metrics", {"Accept": accept})
        assert status == 200, accept
        assert headers["content-type"] == "application/json", accept
    status, headers, _ = raw_get(client, "/metrics?format=json", {"Accept": "text/plain"})
    assert headers["content-type"] == "application/json"


def test_metrics_needs_a_token_with_read(client: Client) -> None:
    response = client.get("/metrics", token=None)
    assert response.status == 401
    assert response.json["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", token="wrong").status == 401
    assert client.get("/metrics", token=READ_TOKEN).status == 200


def test_bad_format_and_unknown_parameters_are_validation_errors(client: Client) -> None:
    for path in ("/metrics?format=xml", "/metrics?format=", "/metrics?window=5"):
        response = client.get(path)
        assert response.status == 400, path
        assert response.json["error"]["code"] == "validation_error"
    details = client.get("/metrics?format=xml").json["error"]["details"]
    assert details[0]["field"] == "format"


def test_p95_and_accept_helpers() -> None:
    assert p95([]) == 0
    assert p95([7]) == 7
    assert p95(list(range(1, 101))) == 95
    assert p95(list(range(1, 21))) == 19
    assert prefers_text("text/plain")
    assert prefers_text(SCRAPER_ACCEPT)
    assert not prefers_text(None)
    assert not prefers_text("application/json, text/plain;q=0.9")
    assert not prefers_text("*/*")


def test_execution_counts_are_the_real_counts(server: ServerThread, client: Client) -> None:
    """They are read from the kept counts (store/counts.py), not counted: they must equal
    a count of the rows."""
    client.create([command("b", "true")], start=False)
    assert client.wait_for_status(client.create([command("a", "true")]))["status"] == "completed"
    assert client.wait_for_status(client.create([command("c", "exit 1")]))["status"] == "failed"
    store = server.runtime.store

    def agree() -> bool:  # the same at one moment (another test's run may still end)
        with store.engine.connect() as conn:
            rows = conn.execute(select(executions.c.status, func.count()).group_by("status"))
            real = {status: n for status, n in rows}
        runs = metrics(client)["executions"]
        return runs == {
            "total": sum(real.values()),
            **{s: real.get(s, 0) for s in ("completed", "failed", "cancelled")},
            "active": real.get("running", 0) + real.get("paused", 0),
        }

    wait_until(agree)
