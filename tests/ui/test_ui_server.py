"""The web UI's HTTP surface, without a browser: redirects, every page answering
index.html, the headers that protect the pages (CSP, nosniff), caching of the assets per
build, path traversal, the served JS client, and `GET /api/me`."""

from __future__ import annotations

import asyncio
import http.client
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from synthesis.runtime import Runtime
from tests.support import READ_TOKEN, TOKEN, ServerThread, make_settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SOURCE = ROOT / "clients" / "js" / "src" / "index.js"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return orjson.loads(self.raw)


class Anonymous:
    """GETs without a token that keep any body (tests.support.Client parses JSON only)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            return Answer(resp.status, headers, resp.read())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def anonymous(ui_server: ServerThread) -> Anonymous:
    return Anonymous(ui_server.port)


def assets_of(html: str) -> str:
    """The asset root index.html names, e.g. `/ui/assets/0123456789ab/`."""
    found = re.search(r'data-assets="([^"]+)"', html)
    assert found, html
    return found.group(1)


def assert_protected(headers: dict[str, str]) -> None:
    policy = headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives.get("script-src") == ["'self'"], policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    assert directives.get("default-src") == ["'none'"], policy
    assert headers.get("x-content-type-options") == "nosniff", headers


def test_the_root_and_ui_redirect_to_the_ui(anonymous: Anonymous) -> None:
    for path in ("/", "/ui"):
        response = anonymous.get(path)
        assert response.status == 302, (path, response)
        assert response.headers["location"] == "/ui/", (path, response.headers)
        assert_protected(response.headers)


@pytest.mark.parametrize(
    "path",
    ["/ui/", "/ui/executions", "/ui/anything/deep", "/ui/executions/e1/steps/s1?x=1"],
)
def test_every_page_answers_index_html_without_a_token(anonymous: Anonymous, path: str) -> None:
    response = anonymous.get(path)
    assert response.status == 200, response
    assert response.headers["content-type"].startswith("text/html"), response.headers
    html = response.raw.decode()
    assert '<div id="app">' in html
    assert "{{" not in html, "a placeholder was left unfilled"
    assert_protected(response.headers)
    assert response.headers["cache-control"] == "no-cache"
    # no inline script or style: every <script> has a src, no style attribute
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "style=" not in html
    assert "<style" not in html


def test_assets_are_immutable_for_this_build_and_gone_for_another(anonymous: Anonymous) -> None:
    assets = assets_of(anonymous.get("/ui/").raw.decode())
    assert re.fullmatch(r"/ui/assets/[0-9a-f]+/", assets), assets
    for name, kind in (
        ("app/main.js", "text/javascript"),
        ("vendor/preact-htm.js", "text/javascript"),
        ("client.js", "text/javascript"),
        ("style.css", "text/css"),
    ):
        response = anonymous.get(assets + name)
        assert response.status == 200, (name, response)
        assert response.headers["content-type"].startswith(kind), (name, response.headers)
        assert "immutable" in response.headers["cache-control"], response.headers
        assert "max-age=" in response.headers["cache-control"], response.headers
        assert_protected(response.headers)

    build = assets.split("/")[3]
    other = "0" * len(build) if build != "0" * len(build) else "1" * len(build)
    stale = anonymous.get(f"/ui/assets/{other}/app/main.js")
    assert stale.status == 404, stale
    assert stale.headers["content-type"].startswith("application/json")
    assert stale.json["error"]["code"] == "not_found", stale.json
    assert isinstance(stale.json["error"]["message"], str) and stale.json["error"]["message"]
    missing = anonymous.get(assets + "no-such-file.js")
    assert missing.status == 404 and missing.json["error"]["code"] == "not_found", missing
    assert_protected(stale.headers)
    assert_protected(missing.headers)
    # index.html is a page, never an asset (it carries placeholders), however it is named
    for name in ("index.html", "vendor/../index.html", "vendor%2f..%2findex.html"):
        assert anonymous.get(assets + name).status == 404, name


def test_a_host_header_never_writes_into_the_policy(anonymous: Anonymous) -> None:
    plain = anonymous.get("/ui/", {"Host": "synthesis.example:8009"})
    assert "ws://synthesis.example:8009" in plain.headers["content-security-policy"]
    hostile = anonymous.get("/ui/", {"Host": "x;script-src:*"})
    policy = hostile.headers["content-security-policy"]
    assert "script-src:*" not in policy and "x;" not in policy, policy
    assert_protected(hostile.headers)


@pytest.mark.parametrize(
    "tail",
    [
        "../../web/ui.py",
        "..%2f..%2fweb%2fui.py",
        "%2e%2e/%2e%2e/web/ui.py",
        "app/../../../pyproject.toml",
        "..%5c..%5cweb%5cui.py",
    ],
)
def test_path_traversal_is_refused(anonymous: Anonymous, tail: str) -> None:
    assets = assets_of(anonymous.get("/ui/").raw.decode())
    response = anonymous.get(assets + tail)
    assert response.status in (400, 403, 404), response
    assert b"tornado" not in response.raw and b"[project]" not in response.raw, response
    assert b"import" not in response.raw, response
    assert response.json["error"]["code"] in ("validation_error", "permission_denied", "not_found")


def test_the_served_client_is_the_js_client_byte_for_byte(anonymous: Anonymous) -> None:
    assets = assets_of(anonymous.get("/ui/").raw.decode())
    served = anonymous.get(assets + "client.js")
    assert served.status == 200, served
    assert served.raw == CLIENT_SOURCE.read_bytes()


def test_the_ui_needs_no_token_but_the_api_still_does(anonymous: Anonymous) -> None:
    assets = assets_of(anonymous.get("/ui/").raw.decode())
    for path in ("/ui/", "/ui/sign-in", assets + "app/main.js"):
        assert anonymous.get(path).status == 200, path
    refused = anonymous.get("/api/executions")
    assert refused.status == 401, refused
    assert refused.json["error"]["code"] == "unauthenticated"


def test_api_me_names_the_scopes_of_the_token(ui_server: ServerThread) -> None:
    full = ui_server.client(TOKEN).get("/api/me")
    assert full.status == 200, full
    assert full.json == {"subject": None, "scopes": ["read", "write"]}
    read = ui_server.client(READ_TOKEN).get("/api/me")
    assert read.status == 200, read
    assert read.json == {"subject": None, "scopes": ["read"]}
    for token in (None, "not-a-token"):
        refused = ui_server.client(token).get("/api/me")
        assert refused.status == 401, refused
        assert refused.json["error"]["code"] == "unauthenticated"
        assert TOKEN.encode() not in refused.raw


def in_a_thread(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine on its own loop in its own thread (the session's Playwright keeps
    an event loop marked running on this one)."""
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the embedded scenario hung"
    if failure:
        raise failure[0]


def test_embedded_under_a_prefix_the_ui_names_its_prefixed_assets(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = Runtime(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}"))
        await runtime.start()
        app = tornado.web.Application(runtime.handlers("/synthesis"))
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        http = tornado.httpclient.AsyncHTTPClient()
        try:
            root = await http.fetch(f"{base}/synthesis/", follow_redirects=False, raise_error=False)
            assert root.code == 302 and root.headers["Location"] == "/synthesis/ui/", root
            page = await http.fetch(f"{base}/synthesis/ui/executions")
            html = page.body.decode()
            assert 'data-api-root="/synthesis"' in html, html
            assets = assets_of(html)
            assert re.fullmatch(r"/synthesis/ui/assets/[0-9a-f]+/", assets), assets
            assert f'src="{assets}app/main.js"' in html, html
            main = await http.fetch(f"{base}{assets}app/main.js")
            assert main.code == 200
            me = await http.fetch(
                f"{base}/synthesis/api/me", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert orjson.loads(me.body)["scopes"] == ["read", "write"]
        finally:
            server.stop()
            await runtime.stop(0)
            await server.close_all_connections()

    in_a_thread(scenario)
