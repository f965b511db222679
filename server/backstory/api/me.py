"""/api/v1/me: who the calling token is."""

from __future__ import annotations

from litestar import Request, get

from ..schemas import Me
from .deps import require_token
from .openapi import problems


@get("/api/v1/me", operation_id="me", guards=[require_token], tags=["tokens"], responses=problems())
async def me(request: Request) -> Me:
    """The calling token's name, scope and default visibility (``anyone``/``admin``/``team`` on a
    server that needs no token)."""
    caller = request.state.caller
    return Me(name=caller.name, scope=caller.scope, visibility=caller.visibility)
