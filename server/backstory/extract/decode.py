"""Fetched bytes to text: the charset a browser would use."""

from __future__ import annotations

import codecs
import re

from ..errors import InvalidInput

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        found = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    # Browsers read "latin-1" and "ascii" labels as windows-1252 (WHATWG encoding standard).
    return "cp1252" if found in ("latin-1", "iso8859-1", "ascii") else found


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode a fetched page: BOM, then the header's charset, then ``<meta charset>``, then UTF-8.

    Undecodable bytes become U+FFFD; this never raises on bad input.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidInput("page body must be bytes")
    body = bytes(body)
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace")
    candidates = []
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        if m:
            candidates.append(m.group(1))
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "replace"))
    for name in candidates:
        codec = _codec(name)
        if codec and not codec.startswith("utf-16"):  # a utf-16 label on bytes without BOM is a lie
            try:
                return body.decode(codec)
            except UnicodeDecodeError:
                if codec != "utf-8":
                    return body.decode(codec, errors="replace")
                break
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace")
