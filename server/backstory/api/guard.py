"""Browser-origin safety: what a web page in the reader's browser can and cannot make the API do.

A page on any site can send requests to a server on the reader's machine. Three rules keep it
from reading or changing the archive, with or without a token:

* **Host**: the ``Host`` header must name this server (a DNS-rebinding page sends its own name,
  which makes the browser treat the server as that page's own origin).
* **Origin**: an ``/api/`` request that carries an ``Origin`` must come from an allowed one:
  Backstory's extension, a configured web origin, or the server's own pages (the API docs).
  Without an ``Origin``, a browser's ``Sec-Fetch-Site: cross-site`` (an ``<img>`` or a form
  aimed at the API) may not reach a request that writes.
* **Content type**: an ``/api/`` body must be ``application/json``. ``text/plain`` and form
  bodies are what a browser sends cross-site without asking the server first (no CORS
  preflight), so accepting them let any page write. An export sent to ``/api/v1/imports`` comes
  with its own type (:data:`IMPORT_MEDIA_TYPES`), none of which a browser sends without asking.

Litestar's own allowed-hosts middleware answers in plain text; these answers are problem+json
like every other error of the API.
"""

from __future__ import annotations

import re
from typing import Iterable

import msgspec
from litestar.datastructures import Headers
from litestar.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..schemas import Problem

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "*"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# GET /api/v1/analyze?url=… archives the fetched page by default: it writes like a POST.
WRITING_GETS = frozenset({"/api/v1/analyze"})
JSON_MEDIA_TYPE = "application/json"
IMPORTS_PATH = "/api/v1/imports"
# The types an export may be sent as: never text/plain, a form or multipart (the CORS-safelisted
# types); application/x-zip-compressed is what Windows browsers call a zip file.
IMPORT_MEDIA_TYPES = ("application/zip", "application/x-zip-compressed", "application/json", "application/x-ndjson",
                      "application/jsonl", "text/csv", "text/html", "text/x-opml", "text/xml", "application/xml",
                      "application/octet-stream")
_problem = msgspec.json.Encoder()


def host_name(header: str) -> str:
    """The name part of a Host header (or an origin's authority): lower case, no port."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8000
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.rsplit(":", 1)[0]
    return header


class HostRule:
    """Which Host names the server answers to (see ``Settings.allowed_hosts``)."""

    def __init__(self, bind: str, configured: Iterable[str]) -> None:
        names = {h.strip().lower() for h in configured if h.strip()}
        self.any = not names and bind.strip().lower() in WILDCARD_BINDS
        # Loopback names are always safe: a rebinding page's requests carry its own name.
        self.exact = set(LOOPBACK_NAMES) | {n for n in names if not n.startswith("*.")}
        if bind.strip().lower() not in WILDCARD_BINDS:
            self.exact.add(host_name(bind) if not bind.count(":") > 1 else bind.strip("[]").lower())
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # "*.example.org" -> ".example.org"

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        if not header:
            return False
        name = host_name(header).rstrip(".")
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))


class OriginRule:
    """Which browser origins may call the API (extension origins and configured web origins)."""

    def __init__(self, extension_origins: Iterable[str], web_origins: Iterable[str]) -> None:
        origins = [o.strip().rstrip("/").lower() for o in [*extension_origins, *web_origins] if o.strip()]
        self.exact = frozenset(o for o in origins if not o.endswith("://*"))
        self.schemes = frozenset(o[: -len("://*")] for o in origins if o.endswith("://*"))

    def allows(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.exact:
            return True
        scheme, sep, authority = origin.partition("://")
        if not sep:
            return False  # "null" (a sandboxed frame, a file) and anything malformed
        if scheme in self.schemes and re.fullmatch(r"[a-z0-9._-]+", authority):
            return True
        # The server's own pages (the interactive API docs): the origin names this very host.
        return scheme in ("http", "https") and host is not None and authority == host.strip().lower()

    def cors_regex(self) -> str | None:
        """The scheme-wide origins as a regular expression, for the CORS configuration."""
        if not self.schemes:
            return None
        return r"^(" + "|".join(re.escape(s) for s in sorted(self.schemes)) + r")://[a-zA-Z0-9._-]+$"


def media_type(content_type: str | None) -> str:
    """A Content-Type's type and subtype, lower case ("" for none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    return media_type(content_type) == JSON_MEDIA_TYPE


def _announces_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")


async def _refuse(send: Send, status: int, title: str, detail: str) -> None:
    body = _problem.encode(Problem(status=status, title=title, detail=detail))
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


class BrowserGuard:
    """ASGI middleware applying the three rules above to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostRule(settings.host, settings.allowed_hosts)
        self.origins = OriginRule(settings.extension_origins, settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers.from_scope(scope)
        host = headers.get("host")
        if not self.hosts.allows(host):
            await _refuse(send, 400, "Host not allowed",
                          f"this server does not answer to the host {host!r}; add it to BACKSTORY_ALLOWED_HOSTS")
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/api/"):
            origin = headers.get("origin")
            writes = method in WRITE_METHODS or (method == "GET" and path in WRITING_GETS)
            if origin is not None and not self.origins.allows(origin, host):
                await _refuse(send, 403, "Origin not allowed",
                              f"requests from {origin} may not use this API; allowed are Backstory's extension "
                              "and the origins in BACKSTORY_CORS_ORIGINS")
                return
            if origin is None and writes and headers.get("sec-fetch-site") in ("cross-site", "same-site"):
                await _refuse(send, 403, "Origin not allowed", "a page on another site may not change the archive")
                return
            content_type = headers.get("content-type")
            if method == "POST" and path.rstrip("/") == IMPORTS_PATH:
                # No type and no body (HTTP/1.1: neither length nor chunks) carries nothing to import:
                # it goes on, to be answered after its token is checked (401 before 422).
                if media_type(content_type) not in IMPORT_MEDIA_TYPES and (content_type or _announces_body(headers)):
                    await _refuse(send, 415, "Unsupported media type",
                                  f"send the export file itself as the body, with its own type: one of "
                                  f"{', '.join(IMPORT_MEDIA_TYPES)} (not a form or multipart)")
                    return
            elif method in WRITE_METHODS and method != "DELETE" and not is_json(content_type):
                await _refuse(send, 415, "Unsupported media type",
                              "send the request body as JSON with 'Content-Type: application/json'")
                return
        await self.app(scope, receive, send)
