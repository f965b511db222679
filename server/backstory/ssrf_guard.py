"""The SSRF guard: which URLs and addresses the fetcher may reach on a user's behalf.

* only ``http``/``https`` URLs without credentials, with a valid host and port
  (:func:`parse_target`); numeric hosts that the C library would read as IPv4 are refused;
* the host is resolved once (``getaddrinfo`` off the event loop, or an injected resolver) and the
  fetch is refused if *any* address is loopback, private, link-local (incl. cloud metadata
  169.254.169.254), CGNAT, multicast, reserved, unspecified, documentation/benchmark space, an
  IPv4-mapped/compatible/NAT64/6to4/Teredo IPv6 address embedding one of those, or in
  ``settings.denied_networks``; ``settings.allowed_networks`` re-admits a network (the deny list
  always wins over the allow list) (:func:`checked_addresses`, :func:`blocked_reason`).

The fetcher (:mod:`backstory.fetch`) then connects only to the addresses checked here.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import re
import socket
from typing import Awaitable, Callable, Iterable, Sequence, Union
from urllib.parse import urlsplit

import httpx
import msgspec

from . import errors
from .config import Settings

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: ``resolver(host, port)`` -> IP address strings; may be sync or async. Injected by tests.
Resolver = Callable[[str, int], Union[Sequence[str], Awaitable[Sequence[str]]]]

# --- address policy -------------------------------------------------------------------------

_V4_BLOCKED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.169.254/32", "the cloud metadata service"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "reserved for IETF protocols"),
    ("192.0.2.0/24", "documentation-only"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "reserved for benchmarking"),
    ("198.51.100.0/24", "documentation-only"),
    ("203.0.113.0/24", "documentation-only"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_BLOCKED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation-only"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_BLOCKED = tuple((ipaddress.ip_network(n), why) for n, why in _V4_BLOCKED + _V6_BLOCKED)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


@functools.lru_cache(maxsize=64)
def _parsed_networks(values: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _parsed_networks(tuple(values))


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped", ip.ipv4_mapped
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        return "an IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return "a NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4", ip.sixtofour
    if ip.teredo is not None:
        return "a Teredo", ip.teredo[1]
    return None


def _builtin_reason(ip: IPAddress) -> str | None:
    for net, why in _BLOCKED:
        if ip.version == net.version and ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            kind, v4 = embedded
            inner = _builtin_reason(v4)
            if inner is not None:
                return f"{kind} IPv6 address of {v4} ({inner})"
            if kind == "a Teredo":  # Teredo is not globally routable whatever it embeds
                return "a Teredo tunnel"
            return None
    if not ip.is_global:
        return "not globally routable"
    return None


def blocked_reason(address: str | IPAddress, settings: Settings) -> str | None:
    """Why the fetcher must not connect to ``address``, or None if it may.

    ``settings.denied_networks`` always wins; ``settings.allowed_networks`` re-admits addresses
    the built-in policy refuses (e.g. 127.0.0.0/8 in tests, an intranet range).
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_v4(ip)) is not None:
        candidates.append(embedded[1])
    for net in _networks(settings.denied_networks):
        for cand in candidates:
            if cand.version == net.version and cand in net:
                return f"in denied network {net}"
    for net in _networks(settings.allowed_networks):
        if ip.version == net.version and ip in net:
            return None
    return _builtin_reason(ip)


# --- URL parsing ----------------------------------------------------------------------------

_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$", re.IGNORECASE)


class Target(msgspec.Struct, frozen=True):
    url: httpx.URL
    host: str  # ASCII (IDNA) host, no brackets
    port: int
    literal: IPAddress | None  # the host is an IP address


def parse_target(url: str | httpx.URL) -> Target:
    text = str(url)
    if len(text) > 2048:
        raise errors.InvalidUrl("URL longer than 2,048 characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        raise errors.InvalidUrl("URL contains whitespace or control characters")
    try:
        parsed = httpx.URL(text)
        scheme = parsed.scheme
        host = parsed.raw_host.decode("ascii")
        port = parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise errors.InvalidUrl(f"not a valid URL: {exc}") from None
    if scheme not in ("http", "https"):
        raise errors.InvalidUrl(f"only http and https URLs can be fetched, not {scheme or 'a relative URL'!r}")
    if parsed.userinfo or "@" in urlsplit(text).netloc:
        raise errors.InvalidUrl("URLs with a user name or password are not fetched")
    if not host:
        raise errors.InvalidUrl("URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 0 < port < 65536:
        raise errors.InvalidUrl(f"invalid port {port}")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and _NUMERIC_HOST.match(host):
        # 2130706433, 0x7f.1, 0177.0.0.1, 127.1: the C library (and browsers) read these as IPv4.
        try:
            packed = socket.inet_aton(host.rstrip("."))
        except OSError:
            raise errors.InvalidUrl(f"invalid numeric host {host!r}") from None
        v4 = ipaddress.IPv4Address(packed)
        raise errors.BlockedAddress(f"numeric host {host!r} means {v4}; write it as {v4}")
    if literal is None:
        labels = host.rstrip(".").split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise errors.InvalidUrl(f"invalid host name {host!r}")
    return Target(url=parsed.copy_with(fragment=None), host=host, port=port, literal=literal)


# --- resolution -----------------------------------------------------------------------------


async def _system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


async def _resolve(target: Target, resolver: Resolver | None) -> list[IPAddress]:
    if target.literal is not None:
        return [target.literal]
    host = target.host.rstrip(".")
    try:
        if resolver is None:
            answers: Sequence[str] = await _system_resolve(host, target.port)
        else:
            result = resolver(host, target.port)
            answers = await result if inspect.isawaitable(result) else result
    except (OSError, UnicodeError) as exc:
        raise errors.UpstreamError(f"could not resolve {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            ip = ipaddress.ip_address(answer)
        except ValueError:
            raise errors.UpstreamError(f"resolver gave {answer!r} for {host!r}, not an IP address") from None
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise errors.UpstreamError(f"{host!r} has no address")
    return addresses


async def checked_addresses(target: Target, settings: Settings, resolver: Resolver | None) -> list[IPAddress]:
    """Resolve once and refuse if any address is blocked; the caller connects to these only."""
    addresses = await _resolve(target, resolver)
    for ip in addresses:
        reason = blocked_reason(ip, settings)
        if reason is not None:
            where = f"{target.host}" if target.literal is not None else f"{target.host} (resolves to {ip})"
            raise errors.BlockedAddress(f"refusing to fetch from {where}: the address is {reason}")
    return addresses
