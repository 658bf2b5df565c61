"""The one place that checks tokens: static bearer tokens and HS256 JWTs."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from synthesis.engine.errors import ApiError

SCOPES = frozenset({"read", "write"})


@dataclass(frozen=True)
class Principal:
    subject: str | None
    scopes: frozenset[str]
    identity: str = ""  # who this is, for scoping idempotency keys; never the token itself


def _digest(token: str) -> str:
    return hashlib.sha256(b"synthesis-principal\0" + token.encode()).hexdigest()[:40]


def _parse_static(entry: str) -> tuple[str, frozenset[str]]:
    """`TOKEN` has both scopes; `TOKEN:read` or `TOKEN:write` has that one."""
    token, sep, scope = entry.rpartition(":")
    if sep and scope in SCOPES and token:
        return token, frozenset({scope})
    return entry, SCOPES


def token_values(entries: Sequence[str]) -> list[str]:
    """The tokens themselves, without their scopes: what must never be shown."""
    return [token for token, _scopes in map(_parse_static, entries)]


class Authenticator:
    def __init__(
        self,
        tokens: Sequence[str],
        jwt_secret: str | None,
        jwt_issuer: str | None = None,
        jwt_audience: str | None = None,
    ) -> None:
        """`jwt_issuer` and `jwt_audience`, when given, must be the JWT's `iss` and `aud`."""
        self._static = [(t.encode(), scopes) for t, scopes in map(_parse_static, tokens)]
        self._jwt_secret = jwt_secret
        self._jwt_issuer = jwt_issuer
        self._jwt_audience = jwt_audience
        self._jwt_required = ["exp"]
        if jwt_issuer is not None:
            self._jwt_required.append("iss")
        if jwt_audience is not None:
            self._jwt_required.append("aud")

    def authenticate(self, authorization: str | None, query_token: str | None = None) -> Principal:
        """Any thread. Raises unauthenticated for a missing, unknown or expired token."""
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        elif query_token:
            token = query_token
        if not token:
            raise ApiError("unauthenticated", "missing bearer token")
        principal = self._static_principal(token)
        if principal is None and self._jwt_secret and token.count(".") == 2:
            principal = self._jwt_principal(token)
        if principal is None:
            raise ApiError("unauthenticated", "invalid token")
        return principal

    def _static_principal(self, token: str) -> Principal | None:
        given = token.encode()
        found = None
        for known, scopes in self._static:  # compare with every token: constant time
            if hmac.compare_digest(given, known):
                found = scopes
        return None if found is None else Principal(None, found, f"token:{_digest(token)}")

    def _jwt_principal(self, token: str) -> Principal:
        assert self._jwt_secret is not None
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                issuer=self._jwt_issuer,
                audience=self._jwt_audience,
                options={"require": self._jwt_required},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError("unauthenticated", "token expired") from None
        except jwt.InvalidTokenError:
            raise ApiError("unauthenticated", "invalid token") from None
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) & SCOPES if isinstance(scope, str) else frozenset()
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        # tokens of one subject share its keys; a token without `sub` is its own principal
        identity = f"sub:{_digest(subject)}" if subject else f"jwt:{_digest(token)}"
        return Principal(subject, scopes, identity)


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise ApiError("permission_denied", f"this token lacks the {scope!r} scope")
