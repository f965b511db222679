"""A news site for the feed tests: a real HTTP server on 127.0.0.1 serving the feeds and article
pages a test writes, with ETag / Last-Modified support (a conditional request for the current
version gets 304), an endless body for the "2 GB feed", and a record of every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from http.server import BaseHTTPRequestHandler
from typing import Iterator

import pytest

from .conftest import LoopbackServer


@dataclass
class Resource:
    body: bytes
    content_type: str
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    endless: bool = False  # no Content-Length; the body never ends (until the client hangs up)


@dataclass
class FeedSite(LoopbackServer):
    resources: dict[str, Resource] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                site.requests.append((self.path, headers))
                found = site.resources.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                current = (found.etag is not None and headers.get("if-none-match") == found.etag) or (
                    found.last_modified is not None and headers.get("if-modified-since") == found.last_modified)
                self.send_response(304 if current else found.status)
                if found.etag:
                    self.send_header("ETag", found.etag)
                if found.last_modified:
                    self.send_header("Last-Modified", found.last_modified)
                self.send_header("Content-Type", found.content_type)
                if current:
                    self.end_headers()
                    return
                if found.endless:
                    self.end_headers()
                    chunk = b"<item><title>more</title></item>" * 2048
                    try:
                        for _ in range(2 * 1024**3 // len(chunk)):  # 2 GB, if anyone read that far
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.send_header("Content-Length", str(len(found.body)))
                self.end_headers()
                self.wfile.write(found.body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler)

    def put(self, path: str, body: str | bytes, content_type: str, **kwargs) -> str:
        self.resources[path] = Resource(body.encode() if isinstance(body, str) else body, content_type, **kwargs)
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@pytest.fixture
def site() -> Iterator[FeedSite]:
    server = FeedSite()
    yield server
    server.close()


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def article_page(title: str, paragraphs: list[str], *, author: str | None = None, published: str | None = None) -> str:
    """A news article page as a site serves it (metadata in the head only when given)."""
    meta = "".join([
        f'<meta name="author" content="{escape(author)}">' if author else "",
        f'<meta property="article:published_time" content="{published}">' if published else "",
    ])
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><title>{escape(title)}</title>{meta}</head><body><header>"
            f"<nav><a href='/'>Home</a></nav></header><article><h1>{escape(title)}</h1>{body}</article>"
            "<footer>© The Harbour Ledger</footer></body></html>")


def rss(title: str, items: list[dict], *, ttl: int | None = None) -> str:
    """An RSS 2.0 feed of ``items`` ({guid, link, title, description?, content?, author?, date?})."""
    parts = []
    for item in items:
        parts.append(
            "<item>"
            f"<guid isPermaLink=\"false\">{escape(item['guid'])}</guid>"
            f"<title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
            + (f"<description>{escape(item['description'])}</description>" if item.get("description") else "")
            + (f"<content:encoded>{escape(item['content'])}</content:encoded>" if item.get("content") else "")
            + (f"<dc:creator>{escape(item['author'])}</dc:creator>" if item.get("author") else "")
            + (f"<pubDate>{item['date']}</pubDate>" if item.get("date") else "")
            + "</item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<channel><title>{escape(title)}</title><link>https://ledger.example/</link>"
            f"<description>News</description>{f'<ttl>{ttl}</ttl>' if ttl else ''}{''.join(parts)}</channel></rss>")
