"""Rate limits: Litestar's rate-limit middleware, once for analyses and once for the other /api/
calls, counted per token (per client address for calls without one). Each server process counts
its own calls: several servers behind a balancer each allow the limit."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from litestar import Request
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig

from ..config import Settings

ANALYZE_PATH = "/api/v1/analyze"


def parse_rate(value: str) -> tuple[Any, int] | None:
    """``N/second|minute|hour`` as Litestar's (unit, N); None for no limit ("")."""
    if not value:
        return None
    count, _, unit = value.partition("/")
    return unit, int(count)


def client_address(request: Request, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The calling client's address: the peer's, or, when the peer is a trusted proxy, the last
    address in ``X-Forwarded-For`` that is not one (earlier ones are whatever the client wrote)."""
    peer = request.client.host if request.client else "unknown"
    hops = [peer]
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded:
        hops = [h.strip() for h in forwarded.split(",") if h.strip()] + hops
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return hop
        if not any(address in net for net in trusted):
            return hop
    return hops[0]


def rate_limits(settings: Settings) -> list[DefineMiddleware]:
    trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]

    def caller(kind: str):
        def identify(request: Request) -> str:
            authorization = request.headers.get("authorization")
            if authorization:  # the token's own budget (a wrong one too: it counts under itself)
                return f"{kind}:token:{hashlib.sha256(authorization.encode()).hexdigest()[:24]}"
            return f"{kind}:address:{client_address(request, trusted)}"
        return identify

    def analyses(request: Request) -> bool:
        return request.url.path.startswith(ANALYZE_PATH)

    def reads(request: Request) -> bool:
        return request.url.path.startswith("/api/") and not analyses(request)

    middleware = []
    for kind, value, applies in (("analyze", settings.rate_limit_analyze, analyses),
                                 ("read", settings.rate_limit_read, reads)):
        rate = parse_rate(value)
        if rate is not None:
            config = RateLimitConfig(rate_limit=rate, identifier_for_request=caller(kind),
                                     check_throttle_handler=applies, store=f"rate_limit_{kind}")
            middleware.append(config.middleware)
    return middleware
