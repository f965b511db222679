"""Request bodies: strict JSON, decoded once, refused with a 400 problem (never a 500); and a
file sent as the body (an export to import), spooled to disk (:func:`spool_body`).

Litestar's own decoding let two client mistakes escape as server errors (invalid UTF-8 raised
UnicodeDecodeError, 100,000 nested brackets RecursionError) and silently kept the last of two
duplicate keys. Every request body of the API is one flat object (see schemas.py), so nesting
past :data:`MAX_JSON_DEPTH` is refused outright.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from typing import Any, BinaryIO

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.types import Empty

from .. import errors
from ..schemas import explain

MAX_JSON_DEPTH = 32
SPOOL_CHUNK = 1024 * 1024  # bytes gathered before each write to the spooled file


def decode_json_body(body: bytes) -> Any:
    """The body's JSON value; raises InvalidInput (400) for anything but strict, unambiguous JSON."""
    try:
        value = msgspec.json.decode(body or b"null")  # strict and fast: syntax, surrogates, NaN
    except UnicodeDecodeError:
        raise errors.InvalidInput("the body is not valid UTF-8 text") from None
    except RecursionError:
        raise errors.InvalidInput(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except msgspec.DecodeError as exc:
        raise errors.InvalidInput(f"the body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise errors.InvalidInput(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    if body and b"{" in body:
        # msgspec keeps the last of two equal keys; Python's parser reports them (the body is
        # already known to be valid JSON of bounded depth, so this second pass cannot fail otherwise).
        try:
            json.loads(body, object_pairs_hook=_unique_keys)
        except errors.InvalidInput:
            raise
        except ValueError as exc:  # e.g. an integer past Python's digit limit
            raise errors.InvalidInput(f"the body is not valid JSON: {exc}") from None
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise errors.InvalidInput(f"the JSON body repeats the key {key!r}")
        seen.add(key)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (0 for a scalar), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:  # deeper than the limit is all the caller needs to know
            stack.extend((child, level + 1) for child in children)
    return deepest


class JsonRequest(Request):
    """The app's request class: its ``json()`` (what Litestar decodes a handler's ``data`` from)
    is :func:`decode_json_body`."""

    async def json(self) -> Any:
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                value = decode_json_body(await self.body())
                field = self.route_handler.parsed_data_field
                if field is not None:
                    check_strictly(value, field.annotation)
                self._json = self._connection_state.json = value
        return self._json


def check_strictly(value: Any, data_type: Any) -> None:
    """Hold a body to its type as JSON types it. Litestar converts a body leniently (it shares
    the conversion with query strings), which took ``"archive": 0`` or ``"true"`` for a boolean
    though the document says boolean."""
    try:
        msgspec.convert(value, data_type, strict=True)
    except msgspec.ValidationError as exc:
        raise errors.InvalidInput(f"invalid body: {explain(str(exc))}") from None


async def spool_body(request: Request, limit: int, setting: str) -> tuple[BinaryIO, int]:
    """The body, streamed into an unnamed temporary file (the system removes it with the process)
    and never held whole in memory, with its size; PayloadTooLarge (413) past ``limit`` bytes,
    announced or sent. The handler's own ``request_max_body_size`` must be None: this is its limit."""
    too_large = errors.PayloadTooLarge(f"the file is larger than {limit:,} bytes (the server's {setting})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    fh = tempfile.TemporaryFile(prefix="backstory-import-")
    size, written, pending = 0, 0, []
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            pending.append(chunk)
            if size - written >= SPOOL_CHUNK:  # the disk write in a thread: never on the loop
                await asyncio.to_thread(fh.write, b"".join(pending))
                pending, written = [], size
        await asyncio.to_thread(fh.write, b"".join(pending))
        fh.seek(0)
        return fh, size
    except InternalServerException:  # Litestar's word for a client that went away mid-body
        fh.close()
        raise errors.InvalidInput("the body ended early: the client disconnected") from None
    except BaseException:
        fh.close()
        raise
