"""The `Idempotency-Key` header on creates: the same key, from the same principal, with
the same request, gets the first answer again (status and body) and creates nothing;
the same key with another request is refused with `idempotency_key_reused` (409). The
answer is stored in the commit that creates (store/idempotency.py), so a create whose
reply was lost (a 503 after the commit) and is retried with its key gets the thing it
created, never a second one. Keys live 24 hours. Only creates that succeeded are kept:
a request refused before it created anything is checked again when retried."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from synthesis.actors.messages import CreateExecution
from synthesis.engine import clock
from synthesis.engine.errors import ApiError, FieldError, validation_error
from synthesis.engine.plan import Plan
from synthesis.store import IdempotencyKeySaved
from synthesis.store.idempotency import KEY_TTL, find_key

if TYPE_CHECKING:
    from synthesis.web.base import ApiHandler

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Remember:
    """Who sent which key for which request: enough to save the answer under it."""

    principal: str
    key: str
    fingerprint: str

    def saved(self, status: int, body: Mapping[str, Any]) -> IdempotencyKeySaved:
        """The change that keeps `body` as the answer, for the create's own commit."""
        now = datetime.now(UTC)
        row = {
            "principal": self.principal,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "status": status,
            "response": dict(body),
            "created_at": clock.format_time(now),
        }
        return IdempotencyKeySaved(row, clock.format_time(now - KEY_TTL))


def requested(handler: ApiHandler, body: Mapping[str, Any]) -> Remember | None:
    """The request's key, checked, with its fingerprint; None without the header."""
    key = handler.request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise validation_error(
            [FieldError(HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")]
        )
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    request = f"{handler.request.method} {handler.request.path}\n".encode() + canonical
    return Remember(handler.principal.identity, key, hashlib.sha256(request).hexdigest())


async def _replayed(handler: ApiHandler, remember: Remember) -> bool:
    """Answer from a saved key if there is one; refuse a key used for another request."""
    not_before = clock.format_time(datetime.now(UTC) - KEY_TTL)
    store = handler.runtime.store
    row = await handler.read(find_key, store, remember.principal, remember.key, not_before)
    if row is None:
        return False
    if row["fingerprint"] != remember.fingerprint:
        raise ApiError(
            "idempotency_key_reused",
            f"this {HEADER} was used for another request in the last 24 hours; "
            "send a new key for a new request",
        )
    handler.set_header("Idempotent-Replayed", "true")
    handler.send(row["response"], row["status"])
    return True


async def create_execution(
    handler: ApiHandler,
    remember: Remember | None,
    answer: Callable[[Mapping[str, Any]], dict[str, Any]],
    execution_id: str,
    plan: Plan,
    variables: Mapping[str, Any],
    metadata: Mapping[str, Any],
    start: bool,
    plan_id: str | None = None,
    secret_variables: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any]]:
    """Ask the supervisor to create an execution; the response is `answer(its reply)`,
    kept under the request's key (if any) in the same commit as the execution."""
    keep = (lambda value: remember.saved(201, answer(value))) if remember else None
    result = await handler.runtime.ask_supervisor(
        lambda reply: CreateExecution(
            execution_id,
            plan,
            variables,
            metadata,
            start,
            reply,
            plan_id,
            secret_variables,
            also_store=keep,
        )
    )
    return 201, answer(result)


async def create_once(
    handler: ApiHandler,
    body: Mapping[str, Any],
    create: Callable[[Remember | None], Awaitable[tuple[int, dict[str, Any]]]],
) -> None:
    """Run `create` (which stores the answer with `remember.saved` in its own commit, when
    given one) at most once per key, and send its answer."""
    remember = requested(handler, body)
    if remember is not None and await _replayed(handler, remember):
        return
    try:
        status, answer = await create(remember)
    except Exception as exc:
        # Its reply was lost in time, or a request with the same key was stored first
        # (then this one's commit failed whole): the store knows which.
        if remember is None or (isinstance(exc, ApiError) and exc.code != "unavailable"):
            raise
        if await _replayed(handler, remember):
            return
        raise
    handler.send(answer, status)
