"""--deny-private-targets in the HTTP integration: the guarded resolver refuses loopback
names and addresses and redirects to refused addresses, against a real loopback server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from synthesis.engine import address_policy
from synthesis.integrations.base import RunContext, StepResult
from synthesis.integrations.http import request
from tests.http_target import HttpTarget


def get(url: str, deny_private: bool) -> StepResult:
    ctx = RunContext(deny_private_targets=deny_private)
    return asyncio.run(request("GET", {"url": url, "timeout": 5}, ctx))


def test_loopback_addresses_and_names_are_refused_only_with_the_policy(
    target: HttpTarget,
) -> None:
    url = f"{target.url}/echo"
    assert get(url, deny_private=False).status == "completed"
    refused = get(url, deny_private=True)
    assert (refused.status, refused.output, refused.far_side_failed) == ("failed", None, False)
    assert refused.error == (
        f"GET {url}: refused by --deny-private-targets: 127.0.0.1 is a loopback address"
    )
    by_name = get(f"http://localhost:{target.port}/echo", deny_private=True)
    assert by_name.status == "failed" and by_name.error is not None
    assert "refused by --deny-private-targets: localhost resolves to " in by_name.error
    assert "a loopback address" in by_name.error


def test_a_redirect_to_a_refused_address_is_refused(
    target: HttpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 stands in for a public address here (none can be served in a test):
    the policy allows it and refuses 127.0.0.2, where the target redirects."""
    real = address_policy.refusal

    def only_127_0_0_1(address: str) -> Any:
        return None if address == "127.0.0.1" else real(address)

    monkeypatch.setattr(address_policy, "refusal", only_127_0_0_1)
    assert get(f"{target.url}/echo", deny_private=True).status == "completed"
    hop = f"http://127.0.0.2:{target.port}/echo"
    refused = get(f"{target.url}/redirect?to={hop}", deny_private=True)
    assert refused.status == "failed" and refused.error is not None
    assert refused.error.endswith(
        "refused by --deny-private-targets: 127.0.0.2 is a loopback address"
    )
