"""Shared pieces of the controllers: the app state and the optional bearer-token guard."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from .. import errors


def app_state(connection: ASGIConnection) -> Any:
    return connection.app.state.backstory


def require_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """When BACKSTORY_API_TOKEN is set, /api requests must send 'Authorization: Bearer <token>'."""
    token = app_state(connection).settings.api_token
    if not token:
        return
    header = connection.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise errors.Unauthorized("send the server's API token as 'Authorization: Bearer <token>'")
