"""The address policy of --deny-private-targets, address by address."""

from __future__ import annotations

import pytest

from synthesis.engine.address_policy import literal_refusal, message, refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata
        ("fe80::1%eth0", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("fec0::1", "a site-local address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),  # ULA
        ("240.0.0.1", "a private address"),  # reserved, which Python files as private
        ("100.64.0.1", "a non-public address"),  # shared address space (CGNAT)
        ("::ffff:127.0.0.1", "an IPv6 form of 127.0.0.1, a loopback address"),
        ("::ffff:169.254.169.254", "an IPv6 form of 169.254.169.254, a link-local address"),
        ("2002:a00:1::", "an IPv6 form of 10.0.0.1, a private address"),  # 6to4
        ("64:ff9b::a00:1", "an IPv6 form of 10.0.0.1, a private address"),  # NAT64
        ("localhost", "not an IP address"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, reason: str) -> None:
    assert refusal(address) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_literal_hosts_and_the_message() -> None:
    assert literal_refusal("127.0.0.1") == (
        "refused by --deny-private-targets: 127.0.0.1 is a loopback address"
    )
    assert literal_refusal("::1") == "refused by --deny-private-targets: ::1 is a loopback address"
    assert literal_refusal("localhost") is None  # a name: checked when it is resolved
    assert literal_refusal("8.8.8.8") is None
    assert message("metadata.internal", "169.254.169.254", "a link-local address") == (
        "refused by --deny-private-targets: metadata.internal resolves to 169.254.169.254, "
        "a link-local address"
    )
