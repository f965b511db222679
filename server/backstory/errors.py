"""One exception hierarchy for everything a client can cause; the app maps it to problem+json."""

from __future__ import annotations


class BackstoryError(Exception):
    """Base: an error with an HTTP status, a short title and a human detail."""

    status = 400
    title = "Bad request"
    headers: dict[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(BackstoryError):
    status = 400
    title = "Invalid request"


class InvalidUrl(BackstoryError):
    status = 422
    title = "Invalid URL"


class BlockedAddress(BackstoryError):
    """The fetch guard refused the address (loopback, private, metadata, ...)."""

    status = 422
    title = "Address not allowed"


class NotFound(BackstoryError):
    status = 404
    title = "Not found"


class PayloadTooLarge(BackstoryError):
    status = 413
    title = "Payload too large"


class UnsupportedContent(BackstoryError):
    status = 415
    title = "Unsupported content type"


class NotAnArticle(BackstoryError):
    status = 422
    title = "No article found"


class NotImportable(BackstoryError):
    """An export whose format cannot be told from its content."""

    status = 422
    title = "Unknown export format"


class Busy(BackstoryError):
    """The server is doing as much of this as it does at once (imports): the client tries later."""

    status = 429
    title = "Too many requests"
    headers = {"Retry-After": "30"}


class UpstreamError(BackstoryError):
    status = 502
    title = "Upstream error"


class UpstreamStatus(UpstreamError):
    """The fetched server answered an HTTP error status (kept in ``upstream_status``)."""

    def __init__(self, detail: str, upstream_status: int) -> None:
        super().__init__(detail)
        self.upstream_status = upstream_status


class RobotsRefused(BackstoryError):
    """The site's robots.txt does not let Backstory fetch the page (or could not be read)."""

    status = 403
    title = "Fetch refused by robots.txt"


class UpstreamTimeout(BackstoryError):
    status = 504
    title = "Upstream timeout"


class Unauthorized(BackstoryError):
    status = 401
    title = "Unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # RFC 9110: a 401 names the scheme it wants


class Forbidden(BackstoryError):
    status = 403
    title = "Forbidden"


class Unavailable(BackstoryError):
    status = 503
    title = "Service unavailable"
    headers = {"Retry-After": "5"}  # every cause (models loading, a worker restarting, a busy server) passes in seconds


class Relayed(BackstoryError):
    """An error a worker's analysis ended in, passed on to the reader as it was."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.headers = Unavailable.headers if status == 503 else {}
