"""The one error type the API speaks, and the contract's table of codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HTTP_STATUS = {
    "validation_error": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "already_exists": 409,
    "invalid_state": 409,
    "idempotency_key_reused": 409,
    "payload_too_large": 413,
    "uri_too_long": 414,
    "integration_error": 502,
    "unavailable": 503,
    "internal_error": 500,
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ApiError(Exception):
    """An error with a contract code; the web layer renders it as `{"error": {...}}`."""

    def __init__(self, code: str, message: str, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = [d.to_json() for d in self.details]
        return {"error": body}


def validation_error(details: list[FieldError], message: str | None = None) -> ApiError:
    if message is None:
        message = details[0].message if len(details) == 1 else "Invalid request parameters"
    return ApiError("validation_error", message, details)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError("not_found", f"{what} {ident!r} not found")
