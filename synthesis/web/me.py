"""/api/me: who the request's token is, so a client (the web UI) shows only what it may do."""

from __future__ import annotations

from typing import Any

from synthesis.auth import SCOPES
from synthesis.web.base import ApiHandler
from synthesis.web.declare import TEXT_OR_NULL, Endpoint, shape

SCHEMAS: dict[str, dict[str, Any]] = {
    "Me": shape(
        {
            "subject": {**TEXT_OR_NULL, "description": "A JWT's `sub`; null for a static token"},
            "scopes": {
                "type": "array",
                "items": {"enum": sorted(SCOPES)},
                "description": "`read` for every GET and both sockets, `write` for the rest",
            },
        }
    ),
}


class MeHandler(ApiHandler):
    endpoints = (
        Endpoint(
            "get",
            "/api/me",
            "getMe",
            "System",
            "Who the request's token is: its subject and scopes (never the token)",
            ok=(200, "The token's principal", "Me"),
        ),
    )

    def get(self) -> None:
        self.query()
        principal = self.principal
        self.send({"subject": principal.subject, "scopes": sorted(principal.scopes)})


default_handlers = [(r"/api/me", MeHandler)]
