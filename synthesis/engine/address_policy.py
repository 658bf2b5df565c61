"""`--deny-private-targets`: which network addresses an outgoing request may connect to.

Pure: given one resolved IP address, say why it is refused, or None when it is allowed.
The resolver that applies it to every address a request really connects to (redirects
included) is in integrations/http.py.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

POLICY = "--deny-private-targets"

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052/8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """The first special-purpose class the address belongs to, or None if it is public."""
    if address.is_loopback:
        return "a loopback"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_link_local:  # 169.254.169.254, the cloud metadata service, is here
        return "a link-local"
    if address.is_multicast:
        return "a multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local"
    if address.is_private:  # RFC 1918, ULA (fc00::/7), documentation ranges, ...
        return "a private"
    if address.is_reserved:
        return "a reserved"
    if not address.is_global:  # shared address space (100.64.0.0/10) and the like
        return "a non-public"
    return None


def refusal(address: str) -> str | None:
    """What makes `address` (an IP address; IPv6 possibly with a `%zone`) refused, as
    "a loopback address", or None when it is allowed. Anything else is refused too."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # judged by the IPv4 address it reaches
            kind = _kind(embedded)
            return None if kind is None else f"an IPv6 form of {embedded}, {kind} address"
    kind = _kind(ip)
    return None if kind is None else f"{kind} address"


def literal_refusal(host: str) -> str | None:
    """For a URL's host: the refusal message if it is a refused literal IP address; None
    for an allowed address or a name (a name is checked when it is resolved)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = refusal(host)
    return None if reason is None else message(host, host, reason)


def message(host: str, address: str, reason: str) -> str:
    """The one wording of a refusal, for step errors, deliveries and validation: `host`
    as the URL gave it, `address` what it resolved to, `reason` from `refusal`."""
    if host.strip("[]") == address:
        return f"refused by {POLICY}: {address} is {reason}"
    return f"refused by {POLICY}: {host} resolves to {address}, {reason}"
