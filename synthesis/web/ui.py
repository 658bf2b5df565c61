"""The web UI (docs/ui.md): the static files of synthesis/ui under /ui/, `/` redirected
there. No build step: the files are served as they are in the package.

Every page URL under /ui/ answers the same index.html (the app routes in the browser, so
a deep link survives a reload and the sign-in). The assets live under
/ui/assets/<build>/, where <build> is a digest of every file: cached for a year by the
browser, and never stale after an upgrade, since new files get a new digest. index.html
itself is never cached. Every answer carries a Content-Security-Policy that allows this
server's scripts, styles and sockets only (no inline script, no other origin)."""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
import re
from functools import cache
from pathlib import Path
from typing import Any

import tornado.web

from synthesis.engine.errors import ApiError
from synthesis.web.base import HTTP_CODES, BaseHandler, dumps

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
INDEX = "index.html"
BUILD_LENGTH = 12
YEAR = 365 * 24 * 3600
mimetypes.add_type("text/javascript", ".js")  # some systems' tables say text/plain
mimetypes.add_type("text/javascript", ".mjs")


@cache
def build_id() -> str:
    """A digest of the UI's files (names and contents), read once per process."""
    digest = hashlib.sha256()
    for path in sorted(p for p in UI_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(UI_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:BUILD_LENGTH]


_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


def content_security_policy(host: str) -> str:
    """This server only: scripts, styles, workers, fetches and the sockets (named with
    the request's host when it is a plain host[:port], as older browsers do not count ws:
    as 'self'; anything else in the Host header is left out, never copied in)."""
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "worker-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self'{sockets}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class UiHeaders(tornado.web.RequestHandler):
    """The UI's security headers on every answer: pages, files, redirects and errors
    (Tornado sets default headers again before an error is written)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Security-Policy", content_security_policy(self.request.host))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")


class RootHandler(UiHeaders, BaseHandler):
    """`/`: to the UI."""

    def get(self) -> None:
        self.redirect(f"{self.prefix}/ui/")


class PageHandler(UiHeaders, BaseHandler):
    """Any /ui/ page: index.html, which names the API's root and this build's assets
    (`/ui` itself redirects to `/ui/`)."""

    def get(self, page: str | None = None) -> None:
        if page is None:
            self.redirect(f"{self.prefix}/ui/")
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(index_html(self.prefix))


@cache
def _index_template() -> str:
    return (UI_DIR / INDEX).read_text(encoding="utf-8")


def index_html(prefix: str) -> str:
    """index.html with its placeholders filled: the mount prefix and this build's assets.
    The prefix comes from the route (never from the request's query or headers)."""
    return (
        _index_template()
        .replace("{{API_ROOT}}", prefix)
        .replace("{{ASSETS}}", f"{prefix}/ui/assets/{build_id()}/")
    )


class AssetHandler(UiHeaders, tornado.web.StaticFileHandler):
    """/ui/assets/<build>/<file>: this build's files, cached for a year; another build's
    are gone (404), so a page from before an upgrade never mixes old and new files."""

    def initialize(self, runtime: Any, prefix: str = "") -> None:  # both unused here
        # client.js links to the JS client's source (in a source tree): that file too.
        client_dir = str((UI_DIR / "client.js").resolve().parent)
        super().initialize(path=str(UI_DIR), allowed_symlink_directory=[str(UI_DIR), client_dir])

    async def get(self, build: str, path: str, include_body: bool = True) -> None:
        if build != build_id() or posixpath.normpath(path) == INDEX:  # the raw template
            raise tornado.web.HTTPError(404)
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", f"public, max-age={YEAR}, immutable")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors in the contract's format (no trace, no path on disk)."""
        code = HTTP_CODES.get(status_code, "validation_error")
        message = "no such file in this build of the UI" if status_code == 404 else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(ApiError(code, message).to_json()))


default_handlers = [
    (r"/", RootHandler),  # with a prefix: the prefix's own root
    (r"/ui", PageHandler),
    (r"/ui/assets/([0-9a-f]+)/(.+)", AssetHandler),
    (r"/ui/((?!assets/).*)", PageHandler),
]
