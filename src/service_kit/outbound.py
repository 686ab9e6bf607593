"""Which URLs an operator may make the platform call (external segment sources, a tenant's
cash system): a tenant operator must not be able to point the platform's servers at its
own network (SSRF).

Outside development a URL must use ``https`` and its host must resolve only to public
addresses: every address it resolves to is checked (one private answer is enough to
refuse), and so are literal IP hosts. Loopback, private, link-local (cloud metadata
services), shared, reserved and multicast ranges are refused unless the deployment
allow-lists the host name or a network (``OUTBOUND_ALLOWLIST``: comma-separated names and
CIDRs). URLs are checked when an operator sets them and again before every call, since
what a name resolves to can change; redirects are never followed (the HTTP client's
default), so a public host cannot bounce a call inward.

Refusals say the same thing whatever the reason (unresolvable, private, allow-list), so
they reveal nothing about which internal names exist. URLs the deployment itself sets
(``REWARD_DEFAULT_CASH_ENDPOINT_URL``) are trusted and not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from service_kit.errors import ProblemError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

REFUSED_DETAIL = "The URL must use https and point to a public address."


class UrlNotAllowed(ProblemError):
    status, code, title = 422, "url_not_allowed", "URL not allowed"

    def __init__(self) -> None:
        super().__init__(REFUSED_DETAIL)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (both families)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    dev: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=resolve, compare=False)

    @classmethod
    def from_settings(cls, dev: bool, allowlist: str | Iterable[str]) -> OutboundPolicy:
        entries = allowlist.split(",") if isinstance(allowlist, str) else list(allowlist)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(dev=dev, hosts=frozenset(hosts), networks=tuple(networks))

    def _allowed(self, address: IPAddress) -> bool:
        return _public(address) or any(address in network for network in self.networks)

    async def check(self, url: str) -> None:
        """Raises ``UrlNotAllowed`` unless the platform may call ``url``."""
        if self.dev:
            return
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".").lower()
            port = parts.port or 443
        except ValueError:
            raise UrlNotAllowed() from None
        if parts.scheme != "https" or not host or parts.username or parts.password:
            raise UrlNotAllowed()
        if host in self.hosts:
            return
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                resolved = await self.resolver(host, port)
            except (OSError, UnicodeError):
                raise UrlNotAllowed() from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
        if not addresses or not all(self._allowed(a) for a in addresses):
            raise UrlNotAllowed()
