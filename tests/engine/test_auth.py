from __future__ import annotations

import pytest

from synthesis.auth import Authenticator, require_scope
from synthesis.engine.errors import ApiError


def test_static_tokens_and_scopes() -> None:
    auth = Authenticator(["full", "reader:read", "odd:token:with:colons"], None)
    assert auth.authenticate("Bearer full").scopes == {"read", "write"}
    assert auth.authenticate("bearer reader").scopes == {"read"}
    assert auth.authenticate("Bearer odd:token:with:colons").scopes == {"read", "write"}
    assert auth.authenticate(None, query_token="full").scopes == {"read", "write"}
    with pytest.raises(ApiError) as caught:
        require_scope(auth.authenticate("Bearer reader"), "write")
    assert caught.value.code == "permission_denied"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Token full", "Bearer nope"])
def test_rejected(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        Authenticator(["full"], None).authenticate(header)
    assert caught.value.code == "unauthenticated"
