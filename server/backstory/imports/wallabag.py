"""Wallabag v2 exports: one JSON array of entries (``id, title, url, content`` (the article's
HTML), ``created_at, published_at, published_by, tags, is_archived, annotations, …``)."""

from __future__ import annotations

from typing import Any, BinaryIO, Iterator

from .entry import BadEntry, Entry, Failure, entry, failure, tags, text_or_none
from .streams import json_objects

NAME = "wallabag"


def read(fh: BinaryIO) -> Iterator[Entry | Failure]:
    for found in json_objects(fh):
        if isinstance(found, Failure):
            yield found
            continue
        where, item = found
        try:
            yield entry(url=item.get("url"), where=where, source=NAME, title=item.get("title"),
                        html=item.get("content"), published=item.get("published_at"),
                        saved_at=item.get("created_at"), byline=_authors(item.get("published_by")),
                        tag_list=tags(item.get("tags")), highlights=_annotations(item.get("annotations")),
                        archived=bool(item["is_archived"]) if "is_archived" in item else None)
        except BadEntry as exc:
            yield failure(where, exc, item.get("url"))


def _authors(value: Any) -> str | None:
    if isinstance(value, list):
        return ", ".join(a.strip() for a in value if isinstance(a, str) and a.strip()) or None
    return text_or_none(value)


def _annotations(value: Any) -> str | None:
    """Annotations as Markdown: each quote, then the note on it."""
    if not isinstance(value, list):
        return None
    parts = []
    for note in value:
        if isinstance(note, dict):
            quote, comment = text_or_none(note.get("quote")), text_or_none(note.get("text"))
            parts.append("\n".join(filter(None, [f"> {quote}" if quote else None, comment])))
    return "\n\n".join(p for p in parts if p) or None
