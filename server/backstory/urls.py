"""URLs: the check a client's URL must pass, the form URLs are compared in, and the URL a page is
archived under. A URL is checked once where it enters (:func:`check_url`) and normalised once
(:func:`identity_url`, or :func:`normalize_url` for a record from an import)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from . import errors
from .schemas import HttpUrl, explain

_TRACKING_PARAMS = re.compile(
    r"^(utm_\w*|pk_\w*|mtm_\w*|hsa_\w*|_?_hs\w*|vero_\w*|oly_\w*|fbclid|gclid|gclsrc|dclid|gbraid|wbraid|msclkid"
    r"|yclid|twclid|igshid|mc_cid|mc_eid|_ga|_gl|ref_src|ref_url|cmpid|ncid|ocid|smid|smtyp|mkt_tok|spm|s_kwcid)$",
    re.I,
)
_ASCII_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)


def check_url(url: str) -> str:
    """A client's URL, stripped and checked; raises InvalidUrl.

    schemas.HttpUrl is the one definition of an acceptable URL (HTTP requests were held to it at
    the boundary; the CLI's are held to it here). This adds what its pattern cannot see: a
    bracketed host must be an IPv6 address, and a name must have a valid IDNA (ASCII) form."""
    url = url.strip()
    try:
        msgspec.convert(url, HttpUrl)
    except msgspec.ValidationError as exc:
        reason = explain(str(exc))
        raise errors.InvalidUrl(f"the URL: {reason[0].lower()}{reason[1:]}") from None
    try:
        host = urlsplit(url).hostname or ""  # ValueError: a bracketed host that is no IPv6 address
    except ValueError as exc:
        raise errors.InvalidUrl(f"invalid URL: {exc}") from None
    if ":" not in host:  # a name (or an IPv4 address), not an IPv6 literal
        try:
            ascii_host = host.rstrip(".").encode("idna").decode("ascii")
        except UnicodeError:
            ascii_host = ""
        if len(ascii_host) > 253 or not all(_ASCII_LABEL.match(label) for label in ascii_host.split(".")):
            raise errors.InvalidUrl(f"the host {host!r} is not a valid domain name")
    return url


def normalize_url(url: str) -> str:
    """The form URLs are compared in: lower-case scheme and host, no default port, no fragment,
    no tracking parameters (utm_*, fbclid, ...), a path of at least "/"."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)) else None
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _site(url: str) -> str | None:
    """The site a URL belongs to: its registrable domain by the Public Suffix List shipped in the
    ``tld`` package (``news.example.co.uk`` -> ``example.co.uk``; never downloaded), or its host
    when that is an IP address. A host under a suffix the list does not know (``news.example``)
    takes the list's default rule, "*": its last two labels; a one-label host (``localhost``) is
    a site of its own."""
    from tld import get_fld

    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if not host:
        return None
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")  # one spelling for an international name
    except UnicodeError:
        pass
    return get_fld(host, fix_protocol=True, fail_silently=True) or ".".join(host.split(".")[-2:])


def identity_url(canonical_url: str | None, page_url: str) -> str:
    """The (normalised) URL a page is archived under: the canonical URL the page declares when it
    is on the same site as the page's URL (the client's URL, or the final URL of the server's own
    fetch), else the page's URL. Any page can name any canonical URL: trusting one on another
    site would let it take over that site's stories."""
    if canonical_url:
        site = _site(canonical_url)
        if site is not None and site == _site(page_url):
            return normalize_url(canonical_url)
    return normalize_url(page_url)
