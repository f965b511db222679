"""Reading an export as a stream: JSON arrays one object at a time, text line by line or chunk
by chunk. Nothing here holds more than one entry of the file in memory."""

from __future__ import annotations

import codecs
import io
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator

import ijson

from .entry import Failure

CHUNK = 64 * 1024


class BadFile(ValueError):
    """The rest of the file cannot be read (broken JSON or XML, a refused zip): what was read stays."""


def json_objects(fh: BinaryIO, of: str = "") -> Iterator[tuple[str, dict[str, Any]] | Failure]:
    """The objects of a top-level JSON array, each with where it is ("entry 3{of}"), as ijson
    parses them (its C backend); an item that is no object is a Failure."""
    number = 0
    try:
        for number, item in enumerate(ijson.items(fh, "item", use_float=True), 1):
            where = f"entry {number}{of}"
            if isinstance(item, dict):
                yield where, item
            else:
                yield Failure(where=where, reason=f"expected an object, got {type(item).__name__}")
    except ijson.JSONError as exc:
        raise BadFile(f"broken JSON after entry {number}{of}: {exc}") from None


@contextmanager
def text(fh: BinaryIO) -> Iterator[io.TextIOWrapper]:
    """``fh`` as UTF-8 text (a byte-order mark skipped), handed back unclosed."""
    wrapper = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


def text_chunks(fh: BinaryIO) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    while chunk := fh.read(CHUNK):
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def head(fh: BinaryIO, size: int = 8192) -> bytes:
    """The file's first bytes, the position left where it was."""
    at = fh.tell()
    data = fh.read(size)
    fh.seek(at)
    return data
