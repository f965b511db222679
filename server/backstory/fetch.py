"""The project's only network egress: fetch one web page through the SSRF guard.

``fetch_page(url, settings)`` GETs an http(s) page and returns its bytes, refusing anything a
self-hosted server must not reach on a user's behalf:

* the URL and every address its host resolves to pass :mod:`backstory.ssrf_guard` first (only
  public http(s) hosts, ``settings.denied_networks`` / ``allowed_networks``);
* the connection goes to the address that was checked (the URL is rewritten to the IP; the Host
  header, TLS SNI and certificate hostname stay the original host), so DNS rebinding between
  check and connect is impossible; no proxies from the environment, no cookies, no keep-alive;
* redirects are followed by hand, at most ``settings.max_redirects``, each hop checked again;
* ``settings.fetch_timeout`` bounds connect, read and the whole fetch (all hops) -> 504;
* connection errors and upstream 4xx/5xx -> 502;
* the body is streamed and reading stops past ``settings.max_fetch_bytes`` (counted both on the
  wire and after gzip/deflate decoding, so a compression bomb is stopped too) -> 413;
* only ``text/html`` and ``application/xhtml+xml`` (no Content-Type: sniffed) -> 415, unless the
  caller widens ``media_types`` (feeds, robots.txt);
* a 304 Not Modified to a conditional request (``headers`` with If-None-Match / If-Modified-Since)
  is returned as a body-less page whose :attr:`FetchedPage.not_modified` is true.

Politeness (per-host delay, robots.txt, ...) is :mod:`backstory.polite`'s, on top of this.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import Mapping

import httpx
import msgspec

from . import __version__, errors
from .config import Settings
from .ssrf_guard import IPAddress, Resolver, Target, checked_addresses, parse_target

USER_AGENT = f"Backstory/{__version__} (+self-hosted reading assistant)"
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
ANY_TYPE = frozenset({"*/*"})  #: as ``media_types``: any Content-Type (robots.txt)
#: what a body without Content-Type that does not look like HTML is called when the caller accepts
#: more than HTML: the caller's own parser sniffs it
UNKNOWN_TYPE = "application/octet-stream"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_ADDRESSES_TRIED = 4
_CHUNK = 64 * 1024


class FetchedPage(msgspec.Struct, kw_only=True, frozen=True):
    """A fetched HTML page: raw bytes plus what is needed to decode them."""

    url: str  #: the URL asked for
    final_url: str  #: the URL after redirects (the page's real address)
    status: int
    #: normalised Content-Type: "text/html" or "application/xhtml+xml", plus "; charset=X" when the
    #: server named one, so ``extract.decode_html(page.body, page.content_type)`` sees the charset
    content_type: str
    charset: str | None  #: from the Content-Type header, if any
    body: bytes  #: decoded from Content-Encoding, at most settings.max_fetch_bytes
    address: str = ""  #: the IP address the final response came from
    redirects: list[str] = []  #: every URL visited before final_url
    etag: str | None = None  #: the final response's ETag, for the next conditional request
    last_modified: str | None = None  #: its Last-Modified, likewise

    @property
    def not_modified(self) -> bool:
        """The server answered 304 to a conditional request: no body, the caller's copy is current."""
        return self.status == 304

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0]


# --- TLS, body decoding ---------------------------------------------------------------------

_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """System trust store (so self-hosters' own CAs work), certifi when the system has none."""
    global _ssl_context
    if _ssl_context is None:
        ctx = ssl.create_default_context()
        if not ctx.cert_store_stats().get("x509_ca"):
            import certifi

            ctx.load_verify_locations(certifi.where())
        _ssl_context = ctx
    return _ssl_context


class _Decoder:
    """Content-Encoding decoder that never inflates more than ``budget + 1`` bytes per feed."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._raw_deflate = False
        self._started = False
        self._obj = self._new()

    def _new(self):
        if self.encoding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self.encoding == "deflate":
            # 'deflate' should be zlib-wrapped, but some servers send raw deflate: see feed().
            return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)
        return None

    def feed(self, data: bytes, budget: int) -> bytes:
        if self._obj is None:
            return data
        out = bytearray()
        while data and len(out) <= budget:
            try:
                out += self._obj.decompress(data, budget + 1 - len(out))
            except zlib.error:
                if self.encoding == "deflate" and not self._started and not self._raw_deflate:
                    self._raw_deflate = True
                    self._obj = self._new()
                    continue
                raise
            self._started = True
            if self._obj.unconsumed_tail:
                data = self._obj.unconsumed_tail
            elif self._obj.eof and self._obj.unused_data.strip(b"\0"):
                data = self._obj.unused_data  # another gzip member
                self._obj = self._new()
            else:
                data = b""
        return bytes(out)


_UTF8_BOM = b"\xef\xbb\xbf"


_SNIFF_TAGS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<script", b"<iframe",
               b"<h1", b"<div", b"<font", b"<table", b"<a", b"<style", b"<b", b"<br", b"<p", b"<!--")


def looks_like_html(body: bytes) -> bool:
    """HTML sniffing for responses without Content-Type (a subset of the WHATWG rules)."""
    head = body[:1024].removeprefix(_UTF8_BOM).lstrip(b" \t\n\r\x0c").lower()
    for tag in _SNIFF_TAGS:
        if head.startswith(tag):
            rest = head[len(tag):len(tag) + 1]
            if tag == b"<!--" or rest in (b" ", b">", b"\t", b"\n", b"\r", b"\x0c", b"/"):
                return True
    return False


# --- the fetch ------------------------------------------------------------------------------


def _media_type(header: str | None) -> tuple[str | None, str | None]:
    if not header:
        return None, None
    parts = header.split(";")
    media = parts[0].strip().lower() or None
    charset = None
    for param in parts[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return media, charset


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _accept(media_types: frozenset[str]) -> str:
    if media_types == HTML_TYPES:
        return ACCEPT
    return ",".join(sorted(media_types - ANY_TYPE)) + ",*/*;q=0.1" if media_types - ANY_TYPE else "*/*"


async def _send(client: httpx.AsyncClient, target: Target, ip: IPAddress, extra: dict[str, str]) -> httpx.Response:
    """One GET to ``ip`` for ``target``: URL rewritten to the IP, Host and SNI the real host."""
    headers = {
        **extra,
        "Host": target.url.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "gzip, deflate",
    }
    extensions = {}
    if target.url.scheme == "https" and target.literal is None:
        extensions["sni_hostname"] = target.host.rstrip(".")
    request = client.build_request("GET", target.url.copy_with(host=str(ip)), headers=headers, extensions=extensions)
    return await client.send(request, stream=True)


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        encoding = "identity"
    elif encoding not in ("gzip", "deflate", "x-gzip"):
        raise errors.UnsupportedContent(f"unsupported Content-Encoding {encoding!r}")
    decoder = _Decoder("gzip" if encoding == "x-gzip" else encoding)
    body = bytearray()
    wire = 0
    too_large = errors.PayloadTooLarge(
        f"page is larger than {limit:,} bytes (BACKSTORY_MAX_FETCH_BYTES); stopped reading")
    async for chunk in response.aiter_raw(_CHUNK):
        wire += len(chunk)
        if wire > limit:
            raise too_large
        try:
            body += decoder.feed(chunk, limit - len(body))
        except zlib.error as exc:
            raise errors.UpstreamError(f"corrupt {encoding} body: {exc}") from None
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _fetch(url: str, settings: Settings, resolver: Resolver | None, ssl_context: ssl.SSLContext,
                 headers: dict[str, str], media_types: frozenset[str]) -> FetchedPage:
    timeout = httpx.Timeout(settings.fetch_timeout)
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=0)
    target = parse_target(url)
    visited: list[str] = []
    addresses = await checked_addresses(target, settings, resolver)
    async with httpx.AsyncClient(
        verify=ssl_context, trust_env=False, follow_redirects=False, timeout=timeout, limits=limits,
    ) as client:
        while True:
            response, ip = None, None
            last_error: Exception | None = None
            for ip in addresses[:MAX_ADDRESSES_TRIED]:
                try:
                    response = await _send(client, target, ip, headers)
                    break
                except httpx.ConnectError as exc:
                    last_error = exc
                    if isinstance(exc.__context__, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc):
                        break  # a TLS failure is not fixed by another address
            if response is None:
                raise errors.UpstreamError(f"could not connect to {target.host} ({ip}): {_describe(last_error)}")
            client.cookies.clear()
            try:
                status = response.status_code
                current = str(target.url)
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise errors.UpstreamError(f"{current} answered {status} without a Location")
                    visited.append(current)
                    if len(visited) > settings.max_redirects:
                        raise errors.UpstreamError(f"too many redirects (more than {settings.max_redirects}) from {url}")
                    # A Location that is no URL never gets here: httpx refuses the response itself
                    # (an UpstreamError naming the location header, see test_fetch).
                    next_url = target.url.join(location)
                    try:
                        target = parse_target(next_url)
                        addresses = await checked_addresses(target, settings, resolver)
                    except (errors.InvalidUrl, errors.BlockedAddress) as exc:
                        raise type(exc)(f"redirect from {current} to {next_url} refused: {exc.detail}") from None
                    continue
                validators = {"etag": response.headers.get("etag"),
                              "last_modified": response.headers.get("last-modified")}
                if status == 304 and _conditional(headers):
                    return FetchedPage(url=url, final_url=current, status=status, content_type="", charset=None,
                                       body=b"", address=str(ip), redirects=visited, **validators)
                if status >= 400:
                    raise errors.UpstreamStatus(f"{current} answered {status} {response.reason_phrase}".rstrip(),
                                                status)
                if not 200 <= status < 300 or status in (204, 205):
                    raise errors.UpstreamError(f"{current} answered {status} {response.reason_phrase}, not a page")
                media, charset = _media_type(response.headers.get("content-type"))
                if media is not None and media not in media_types and not ANY_TYPE <= media_types:
                    what = "an HTML page" if media_types == HTML_TYPES else "one of " + ", ".join(sorted(media_types))
                    raise errors.UnsupportedContent(f"{current} is {media}, not {what}")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > settings.max_fetch_bytes:
                    raise errors.PayloadTooLarge(
                        f"page is {int(length):,} bytes, more than {settings.max_fetch_bytes:,} "
                        "(BACKSTORY_MAX_FETCH_BYTES); not read")
                body = await _read_body(response, settings.max_fetch_bytes)
                if media is None:
                    if looks_like_html(body):
                        media = "text/html"
                    elif media_types == HTML_TYPES:
                        raise errors.UnsupportedContent(f"{current} has no Content-Type and does not look like HTML")
                    else:
                        media = UNKNOWN_TYPE
                return FetchedPage(
                    url=url, final_url=current, status=status, charset=charset,
                    content_type=f"{media}; charset={charset}" if charset else media,
                    body=body, address=str(ip), redirects=visited, **validators,
                )
            finally:
                await response.aclose()


_OWN_HEADERS = frozenset({"host", "user-agent", "accept-encoding"})  # the fetcher's, never the caller's


def _conditional(headers: dict[str, str]) -> bool:
    return any(key.lower() in ("if-none-match", "if-modified-since") for key in headers)


async def fetch_page(
    url: str,
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    media_types: frozenset[str] = HTML_TYPES,
) -> FetchedPage:
    """GET an HTML page through the SSRF guard; raises ``errors.*`` (see the module docstring).

    ``resolver(host, port) -> [ip, ...]`` replaces DNS (tests); ``ssl_context`` replaces the
    system trust store (tests with their own CA). Certificates are always verified.
    ``headers`` are sent besides the fetcher's own (If-None-Match, If-Modified-Since: a 304 then
    comes back as a page with ``not_modified``; Host and User-Agent cannot be replaced).
    ``media_types`` are the Content-Types accepted (:data:`ANY_TYPE`: all); Accept follows them.
    """
    context = ssl_context or _default_ssl_context()
    extra = {"Accept": _accept(media_types)}
    extra.update((key, value) for key, value in (headers or {}).items() if key.lower() not in _OWN_HEADERS)
    try:
        async with asyncio.timeout(settings.fetch_timeout):
            return await _fetch(url, settings, resolver, context, extra, media_types)
    except TimeoutError:
        raise errors.UpstreamTimeout(f"fetching {url} took longer than {settings.fetch_timeout:g} s") from None
    except httpx.TimeoutException as exc:
        raise errors.UpstreamTimeout(f"fetching {url} timed out ({type(exc).__name__})") from None
    except httpx.UnsupportedProtocol as exc:
        raise errors.InvalidUrl(f"unsupported URL: {_describe(exc)}") from None
    except httpx.HTTPError as exc:
        raise errors.UpstreamError(f"fetching {url} failed: {_describe(exc)}") from None
