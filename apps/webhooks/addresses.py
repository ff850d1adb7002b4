"""Where a webhook may go: the SSRF guard.

Outside the local mode (WEBHOOK_ALLOW_PRIVATE_ADDRESSES off) no request goes to a private,
loopback, link-local, multicast, reserved, unspecified or shared (CGNAT, 100.64/10) address,
IPv4 or IPv6 — an IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64)
is judged by the address it embeds. The check that counts is at connect time: the name is
resolved once, EVERY answer is checked (one private answer refuses the request), and the
request then goes to the checked address itself (transport.py), so a DNS answer that
changes between the check and the connection (rebinding) cannot steer it elsewhere. The
URL check at endpoint creation only gives early, clear 400s.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The destination may not be contacted (the reason is for the delivery log)."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: str) -> str | None:
    """Why `address` (an IP literal) may not be contacted, or None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    judged = ip
    if isinstance(ip, ipaddress.IPv6Address):
        judged = _embedded_ipv4(ip) or ip
    kind = _kind(judged)
    if kind is None:
        return None
    embeds = f" (it embeds {judged})" if judged is not ip else ""
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{ip} is {article} {kind} address{embeds}"


def _kind(ip) -> str | None:
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:  # what remains: shared address space (CGNAT), documentation...
        return "non-public"
    return None


def private_allowed() -> bool:
    return settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal is its own answer)."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    override = settings.WEBHOOK_RESOLVE_OVERRIDES.get(host.lower().rstrip("."))
    if override:
        return [address.strip() for address in override.split("|") if address.strip()]
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{host} does not resolve ({exc})") from None
    addresses = []
    for *_, sockaddr in answers:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    return addresses


def checked_address(host: str, port: int) -> str:
    """The address to connect to for host:port: resolved once, every answer checked."""
    addresses = resolve(host, port)
    if not private_allowed():
        for address in addresses:
            reason = refusal(address)
            if reason:
                raise AddressRefused(f"refused: {host} resolves to {address}: {reason}")
    return addresses[0]


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint (scheme, credentials, host, a private literal
    address), or None. Names are resolved only when the request is made."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"Not a valid URL ({exc})."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with https:// (or http:// where allowed)."
    if parts.scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS:
        return "The URL must use https."
    if parts.username is not None or parts.password is not None:
        return "The URL must not contain credentials; authenticate by the signature."
    if not parts.hostname:
        return "The URL has no host."
    if parts.fragment:
        return "The URL must not have a fragment."
    del port
    if not private_allowed():
        try:
            ipaddress.ip_address(parts.hostname.split("%", 1)[0])
        except ValueError:
            if parts.hostname.rstrip(".").lower() == "localhost" or parts.hostname.endswith(
                ".localhost"
            ):
                return "The URL must not point at localhost."
            return None
        reason = refusal(parts.hostname)
        if reason:
            return f"The URL must point at a public address: {reason}."
    return None
