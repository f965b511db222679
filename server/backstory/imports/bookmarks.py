"""Netscape bookmark files (what browsers, Karakeep and linkding export), and the link-list
parser Pocket's older HTML export is read with. HTML is tokenised by the standard library's
HTMLParser, fed a chunk at a time: no tree is built, and HTML knows no entity declarations."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import BinaryIO, Iterator

from .entry import BadEntry, Entry, Failure, entry, failure, tags
from .streams import text_chunks

NAME = "bookmarks"


class Link:
    """An ``<a>`` as found: its attributes (lower-cased names), text, the description after it
    (``<dd>``), and the heading (``<h1>``-``<h3>``) it sits under."""

    __slots__ = ("number", "attrs", "text", "description", "heading")

    def __init__(self, number: int, attrs: dict[str, str], heading: str | None) -> None:
        self.number, self.attrs, self.heading = number, attrs, heading
        self.text: list[str] = []
        self.description: list[str] = []


class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.done: list[Link] = []  # links whose description is complete
        self.count = 0
        self._link: Link | None = None  # inside its <a>
        self._last: Link | None = None  # still taking a <dd> description
        self._in_dd = False
        self._heading: list[str] | None = None
        self.heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._flush()
            self.count += 1
            self._link = Link(self.count, {k: v or "" for k, v in attrs}, self.heading)
        elif tag in ("h1", "h2", "h3"):
            self._flush()
            self._heading = []
        elif tag == "dd" and self._last is not None:
            self._in_dd = True
        elif tag in ("dt", "dl", "li", "ul"):
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._link is not None:
            self._last, self._link = self._link, None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.heading = "".join(self._heading).strip() or None
            self._heading = None
        elif tag in ("dl", "ul"):
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._link is not None:
            self._link.text.append(data)
        elif self._heading is not None:
            self._heading.append(data)
        elif self._in_dd and self._last is not None:
            self._last.description.append(data)

    def _flush(self) -> None:
        if self._link is not None:  # an <a> never closed
            self._last, self._link = self._link, None
        if self._last is not None:
            self.done.append(self._last)
        self._last, self._in_dd = None, False

    def finish(self) -> None:
        self.close()
        self._flush()


def links(fh: BinaryIO) -> Iterator[Link]:
    """Every link of an HTML file, in order, read a chunk at a time."""
    parser = LinkParser()
    for chunk in text_chunks(fh):
        parser.feed(chunk)
        yield from parser.done
        parser.done.clear()
    parser.finish()
    yield from parser.done


def read(fh: BinaryIO) -> Iterator[Entry | Failure]:
    for link in links(fh):
        where = f"link {link.number}"
        href = link.attrs.get("href")
        try:
            yield entry(
                url=href, where=where, source=NAME, title="".join(link.text),
                description="".join(link.description), saved_at=link.attrs.get("add_date"),
                tag_list=tags(link.attrs.get("tags"), ","),
            )
        except BadEntry as exc:
            yield failure(where, exc, href)
