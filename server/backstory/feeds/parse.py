"""A fetched feed's entries: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed through msgspec.

Whatever the format, an entry comes out as a :class:`FeedEntry`: a stable key (so it is taken
once), its link, title, author, day and the fullest content the feed gives. What is no feed is
refused with the reason: an HTML page (a site's address instead of its feed's), XML declaring
entities (:mod:`backstory.safexml`), a document feedparser finds no feed in.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import time
from datetime import datetime, timezone
from typing import Any

import msgspec

from .. import errors
from ..fetch import looks_like_html
from ..imports.entry import BadEntry, checked_url, day
from ..safexml import ENTITIES_REFUSED, declares_entities

JSON_FEED_TYPES = frozenset({"application/feed+json", "application/json"})
XML_FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml",
    "application/x-rss+xml", "application/x-atom+xml",
})
# What a feed may be served as (besides HTML, which is refused with its reason): the fetch's
# Accept list and its Content-Type check. Plain text is what some servers send a feed as.
FEED_TYPES = JSON_FEED_TYPES | XML_FEED_TYPES | frozenset({"text/plain", "application/octet-stream"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


class NotAFeed(errors.BackstoryError):
    status = 422
    title = "Not a feed"


class FeedEntry(msgspec.Struct, kw_only=True, frozen=True):
    key: str  # a hash of the entry's id (else its link): what marks it taken
    link: str | None  # the article's address, checked (None: the entry has none usable)
    title: str | None = None
    author: str | None = None
    published: str | None = None  # YYYY-MM-DD
    content: str | None = None  # HTML: the entry's fullest content, None without any


class ParsedFeed(msgspec.Struct, kw_only=True, frozen=True):
    title: str | None
    ttl_s: float | None  # the feed's own ``ttl`` (RSS), in seconds
    entries: list[FeedEntry]


def entry_key(identity: str) -> str:
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def _link(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return checked_url(value)
    except BadEntry:
        return None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def parse_feed(body: bytes, media_type: str | None, url: str) -> ParsedFeed:
    """The feed in ``body`` (served as ``media_type`` from ``url``); :class:`NotAFeed` with the
    reason when it is none."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    # By the body first: some sites serve their feed as text/html, and their error pages as anything.
    xml_feed = head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:RDF"))
    if looks_like_html(body) or (media_type in HTML_TYPES and not xml_feed):
        raise NotAFeed(f"{url} is an HTML page, not a feed (subscribe to the address of the site's RSS, Atom or "
                       "JSON feed)")
    if media_type in JSON_FEED_TYPES or head.startswith(b"{"):
        return _json_feed(body, url)
    if declares_entities(body):
        raise NotAFeed(f"{url} {ENTITIES_REFUSED}")
    return _xml_feed(body, media_type, url)


# ---- RSS and Atom ------------------------------------------------------------------------------

def _xml_feed(body: bytes, media_type: str | None, url: str) -> ParsedFeed:
    import feedparser

    # A stream, never bytes: feedparser opens bytes that name a local file as that file.
    parsed = feedparser.parse(io.BytesIO(body), response_headers={
        "content-location": url, "content-type": media_type or "application/xml"})
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise NotAFeed(f"{url} is no RSS or Atom feed" + (f" ({reason})" if reason else ""))
    feed = parsed.feed
    ttl = feed.get("ttl")
    ttl_s = float(ttl) * 60 if isinstance(ttl, str) and ttl.strip().isdigit() else None
    return ParsedFeed(title=_text(feed.get("title")), ttl_s=ttl_s,
                      entries=[entry for item in parsed.entries if (entry := _xml_entry(item)) is not None])


def _xml_entry(item: Any) -> FeedEntry | None:
    link = _link(item.get("link"))
    identity = _text(item.get("id")) or link
    if identity is None:
        return None
    contents = [c.get("value") for c in item.get("content") or [] if isinstance(c.get("value"), str)]
    contents.append(item.get("summary") if isinstance(item.get("summary"), str) else None)
    content = max((c for c in contents if c and c.strip()), key=len, default=None)
    moment = item.get("published_parsed") or item.get("updated_parsed")
    published = day(datetime.fromtimestamp(calendar.timegm(moment), timezone.utc).isoformat()) \
        if isinstance(moment, time.struct_time) else None
    return FeedEntry(key=entry_key(identity), link=link, title=_text(item.get("title")),
                     author=_text(item.get("author")), published=published, content=content)


# ---- JSON Feed (https://jsonfeed.org/version/1.1) ------------------------------------------------

class _Author(msgspec.Struct):
    name: str | None = None


class _Item(msgspec.Struct):
    id: str | int | None = None
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    content_html: str | None = None
    content_text: str | None = None
    summary: str | None = None
    date_published: str | None = None
    date_modified: str | None = None
    author: _Author | None = None  # version 1
    authors: list[_Author] = []  # version 1.1


class _JsonFeed(msgspec.Struct):
    version: str
    items: list[_Item]
    title: str | None = None


_decode_json_feed = msgspec.json.Decoder(_JsonFeed).decode


def _json_feed(body: bytes, url: str) -> ParsedFeed:
    try:
        feed = _decode_json_feed(body)
    except msgspec.DecodeError as exc:
        raise NotAFeed(f"{url} is no JSON Feed: {exc}") from None
    if not feed.version.startswith("https://jsonfeed.org/version/"):
        raise NotAFeed(f"{url} is no JSON Feed (version {feed.version[:80]!r})")
    return ParsedFeed(title=_text(feed.title), ttl_s=None,
                      entries=[entry for item in feed.items if (entry := _json_entry(item)) is not None])


def _json_entry(item: _Item) -> FeedEntry | None:
    link = _link(item.url) or _link(item.external_url)
    identity = str(item.id) if item.id not in (None, "") else link
    if identity is None:
        return None
    text = item.content_text
    content = item.content_html or (_paragraphs(text) if text else None) or item.summary
    author = next((a.name for a in [*item.authors, *([item.author] if item.author else [])] if a.name), None)
    try:
        published = day(item.date_published or item.date_modified)
    except BadEntry:
        published = None
    return FeedEntry(key=entry_key(identity), link=link, title=_text(item.title), author=_text(author),
                     published=published, content=content)


def _paragraphs(text: str) -> str:
    """Plain text as HTML paragraphs (blank lines part them), for extraction to read."""
    import html

    return "".join(f"<p>{html.escape(part.strip(), quote=False)}</p>" for part in text.split("\n\n") if part.strip())
