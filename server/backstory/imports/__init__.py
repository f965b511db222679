"""Reading exports: Backstory's JSON lines, Pocket, Omnivore, Wallabag, bookmark files, OPML.

:func:`read` streams the items of one export (``Entry``, ``Feed``, ``StoryRecord`` or
``Failure``), its format told by :func:`detect` from its content or forced by name. A failure
of one entry never stops the rest; a file that cannot be read on ends with a Failure for it."""

from __future__ import annotations

import zipfile
import zlib
from typing import BinaryIO, Callable, Iterator

from ..story import StoryRecord
from . import bookmarks, jsonl, omnivore, opml, pocket, wallabag
from .entry import Entry, Failure, Feed, Item
from .safezip import UnsafeZip, is_zip, safe_name
from .streams import BadFile, head

__all__ = ["FORMATS", "THE_FILE", "Entry", "Failure", "Feed", "Item", "UnknownFormat", "detect", "read"]

THE_FILE = "the file"  # where a Failure is when the rest of the export could not be read

FORMATS: dict[str, Callable[[BinaryIO], Iterator[Item | StoryRecord]]] = {
    jsonl.NAME: jsonl.read,
    pocket.NAME: pocket.read,
    omnivore.NAME: omnivore.read,
    wallabag.NAME: wallabag.read,
    bookmarks.NAME: bookmarks.read,
    opml.NAME: opml.read,
}


class UnknownFormat(ValueError):
    pass


def detect(fh: BinaryIO) -> str:
    """The export's format, from its first bytes (and a zip's member names)."""
    start = head(fh, 65536)
    if is_zip(start):
        try:
            with zipfile.ZipFile(fh) as archive:
                names = [name for name in map(safe_name, archive.namelist()) if name]
        except zipfile.BadZipFile as exc:
            raise UnknownFormat(f"a broken zip file: {exc}") from None
        finally:
            fh.seek(0)
        if any(name.endswith(".csv") for name in names):
            return pocket.NAME
        if any(name.endswith(".json") and "/" not in name for name in names):
            return omnivore.NAME
        raise UnknownFormat("a zip with neither Pocket's part_*.csv nor Omnivore's metadata_*.json")
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = text[:4096].lower()
    if text.startswith(b"{"):
        return jsonl.NAME
    if text.startswith(b"["):
        return omnivore.NAME if omnivore.looks_like(text) else wallabag.NAME
    if text.startswith(b"<"):
        if b"<opml" in lower:
            return opml.NAME
        if b"netscape-bookmark-file" in lower:
            return bookmarks.NAME
        if b"pocket export" in lower or b"<h1>unread</h1>" in lower:
            return pocket.NAME
        if b"<a " in lower:
            return bookmarks.NAME
    header = lower.split(b"\n", 1)[0]
    if b"," in header and b"url" in [cell.strip(b' "\r') for cell in header.split(b",")]:
        return pocket.NAME
    raise UnknownFormat(f"cannot tell the export's format from its content; name it with --format "
                        f"({', '.join(FORMATS)})")


def read(fh: BinaryIO, format: str | None = None) -> Iterator[Item | StoryRecord]:
    """The items of the export in ``fh`` (seekable, binary), one at a time."""
    reader = FORMATS[format or detect(fh)]
    try:
        yield from reader(fh)
    except (BadFile, UnsafeZip) as exc:
        yield Failure(where=THE_FILE, reason=str(exc))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a member that does not inflate as its header says
        yield Failure(where=THE_FILE, reason=f"a broken zip member: {exc}")
