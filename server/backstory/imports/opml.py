"""OPML: a list of feeds to subscribe to. Parsed by expat a chunk at a time with entity
expansion off (:mod:`backstory.safexml`): a document that declares any entity (the billion
laughs, an external entity) is refused at its declaration, before anything is expanded."""

from __future__ import annotations

from typing import BinaryIO, Iterator
from xml.parsers import expat

from ..safexml import ENTITIES_REFUSED, entity_free_parser
from .entry import BadEntry, Failure, Feed, checked_url, failure, text_or_none
from .streams import CHUNK, BadFile

NAME = "opml"


def read(fh: BinaryIO) -> Iterator[Feed | Failure]:
    parser = entity_free_parser(lambda: BadFile(f"the OPML {ENTITIES_REFUSED}"))
    found: list[Feed | Failure] = []
    count = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal count
        if tag.lower() != "outline":
            return
        attrs = {k.lower(): v for k, v in attrs.items()}
        if "xmlurl" not in attrs:
            return  # a folder of feeds
        count += 1
        where = f"feed {count} (line {parser.CurrentLineNumber})"
        try:
            site = text_or_none(attrs.get("htmlurl"))
            found.append(Feed(url=checked_url(attrs["xmlurl"]), where=where,
                              title=text_or_none(attrs.get("title") or attrs.get("text")),
                              site_url=site if site and site.startswith(("http://", "https://")) else None))
        except BadEntry as exc:
            found.append(failure(where, exc, attrs.get("xmlurl")))

    parser.StartElementHandler = start
    try:
        while True:
            chunk = fh.read(CHUNK)
            parser.Parse(chunk, not chunk)
            yield from found
            found.clear()
            if not chunk:
                return
    except expat.ExpatError as exc:
        yield from found
        raise BadFile(f"broken XML: {expat.ErrorString(exc.code)} at line {exc.lineno}") from None


def read_opml(fh: BinaryIO) -> list[Feed]:
    """The feeds of an OPML file (entries that are not feeds are left out)."""
    return [item for item in read(fh) if isinstance(item, Feed)]
