"""The address a request really came from, for log-in throttling (django-axes).

`REMOTE_ADDR` is the peer of the TCP connection. In the documented set-up Daphne runs
with `--proxy-headers` behind nginx, which overwrites `X-Forwarded-For` with the
client's own address, so `REMOTE_ADDR` already is the client (docs/deployment.md).

Where the app instead sees its proxy as the peer, list the proxy in `TRUSTED_PROXIES`:
`X-Forwarded-For` is then read right to left, one hop per trusted proxy, and the first
address that is not a trusted proxy is the client. The header is never read when the
peer is not a trusted proxy, so a client talking to the app directly cannot pick the
address it is counted under. (django-ipware, which axes would use otherwise, reads the
header whoever sent it; its "trusted proxies" are matched against the header itself.)
"""

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str], setting: str = "TRUSTED_PROXIES") -> list[Network]:
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`) as network objects.

    Raises ImproperlyConfigured naming `setting` on an entry that is neither.
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{setting} must hold IP addresses or networks such as 10.0.0.0/8, not {entry!r}"
            ) from None
    return networks


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_networks(entries))


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; count them as IPv4.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_ip(request) -> str | None:
    """The client's address as text (`"203.0.113.7"`), or None when Daphne gave none.

    Used as AXES_CLIENT_IP_CALLABLE. Reads `REMOTE_ADDR`, then `X-Forwarded-For` only
    while the hop in hand is one of settings.TRUSTED_PROXIES (empty by default: the
    header is ignored). A hop that is not an IP address ends the walk at the last
    trusted one.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = _networks(tuple(settings.TRUSTED_PROXIES))
    current = _address(remote) if remote else None
    if current is None or not proxies:
        return str(current) if current else remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    while hops and any(current in network for network in proxies):
        previous = _address(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)
