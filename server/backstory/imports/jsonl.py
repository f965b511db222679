"""JSON lines: ``{url, title?, text? | html?, published?}`` a line, or the lines of
``backstory export`` (whole story records, re-imported losslessly)."""

from __future__ import annotations

from typing import BinaryIO, Iterator

import msgspec

from ..story import StoryRecord
from .entry import BadEntry, Entry, Failure, checked_url, failure

NAME = "jsonl"


class _Line(msgspec.Struct, kw_only=True):
    """One line (unknown keys are ignored)."""

    url: str
    title: str | None = None
    text: str | None = None
    html: str | None = None
    published: str | None = None


_records = msgspec.json.Decoder(StoryRecord)
_lines = msgspec.json.Decoder(_Line)


def read(fh: BinaryIO) -> Iterator[Entry | StoryRecord | Failure]:
    for number, line in enumerate(fh, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            if b'"story_id"' in line and b'"content_hash"' in line:
                yield _records.decode(line)  # a line of `backstory export`
                continue
            item = _lines.decode(line)
            # The line's published date is passed on as it was given, as it always has been.
            yield Entry(url=checked_url(item.url), where=where, source=NAME, title=item.title, text=item.text,
                        html=item.html, published=item.published)
        except (msgspec.ValidationError, msgspec.DecodeError, BadEntry) as exc:
            yield failure(where, exc)
