"""Omnivore exports: a zip of ``metadata_*.json`` arrays (``id, slug, title, description,
author, url, state, labels, savedAt, publishedAt, …``), each article's HTML in
``content/{slug}.html`` and its highlights in ``highlights/{slug}.md``. Any root ``*.json`` of
that shape is read too, and so is one such array on its own (no articles: URLs to fetch)."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from ..schemas import MAX_HTML_CHARS
from .entry import BadEntry, Entry, Failure, entry, failure, tags
from .safezip import SafeZip, is_zip, members_matching
from .streams import BadFile, head, json_objects

NAME = "omnivore"


def read(fh: BinaryIO) -> Iterator[Entry | Failure]:
    if not is_zip(head(fh)):
        yield from _entries(fh, "", None)
        return
    archive = SafeZip(fh)
    try:
        yield from archive.refusals()
        names = [name for name in members_matching(archive, "*.json") if "/" not in name]
        if not names:
            raise BadFile("the zip holds no metadata_*.json")
        for name in names:
            with archive.open(name) as member:
                yield from _entries(member, f" of {name}", archive)
    finally:
        archive.close()


def _entries(fh: BinaryIO, of: str, archive: SafeZip | None) -> Iterator[Entry | Failure]:
    for found in json_objects(fh, of):
        if isinstance(found, Failure):
            yield found
            continue
        where, item = found
        try:
            html = highlights = None
            slug = item.get("slug")
            if archive is not None and isinstance(slug, str) and slug.strip() and "/" not in slug:
                html = _member(archive, f"content/{slug}.html")
                highlights = _member(archive, f"highlights/{slug}.md")
            yield entry(url=item.get("url"), where=where, source=NAME, title=item.get("title"), html=html,
                        description=item.get("description"), byline=item.get("author"),
                        published=item.get("publishedAt"), saved_at=item.get("savedAt"),
                        tag_list=tags(item.get("labels")), highlights=highlights,
                        archived=str(item.get("state") or "").lower() == "archived")
        except BadEntry as exc:
            yield failure(where, exc, item.get("url"))


def _member(archive: SafeZip, name: str) -> str | None:
    try:
        return archive.text(name, MAX_HTML_CHARS)
    except ValueError as exc:
        raise BadEntry(str(exc)) from None


def looks_like(sample: bytes) -> bool:
    """A JSON array of Omnivore's items (rather than Wallabag's), from its first bytes."""
    return b'"slug"' in sample or b'"savedAt"' in sample
