"""What every export reader yields: an Entry (a story to store, or a URL to fetch), a Feed (a
subscription from an OPML list), or a Failure (one entry that could not be read, with why).

Readers build entries through :func:`entry`, the one place a URL is checked and dates and tags
are normalised, so that every format is held to the same rules."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Union

import msgspec

from .. import errors
from ..schemas import MAX_HTML_CHARS
from ..urls import check_url


class Entry(msgspec.Struct, kw_only=True, frozen=True):
    """One story from an export. With ``html`` or ``text`` it is stored as it is; without, only
    its URL is known and it must be fetched (:attr:`needs_fetch`)."""

    url: str
    where: str  # "line 3", "row 12 of part_000000.csv": where the export has it, for reports
    source: str  # the format's name
    title: str | None = None
    html: str | None = None
    text: str | None = None
    published: str | None = None  # YYYY-MM-DD, as the archive keeps it
    byline: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    saved_at: str | None = None  # when the reader saved it: ISO 8601, UTC
    archived: bool | None = None  # the reader had read or archived it (Pocket, Omnivore, Wallabag)
    highlights: str | None = None  # the reader's highlights and notes, as Markdown

    @property
    def needs_fetch(self) -> bool:
        return self.html is None and self.text is None


class Feed(msgspec.Struct, kw_only=True, frozen=True):
    """A news feed to subscribe to (from OPML)."""

    url: str
    where: str
    title: str | None = None
    site_url: str | None = None


class Failure(msgspec.Struct, kw_only=True, frozen=True):
    """An entry that could not be read: the rest of the export goes on."""

    where: str
    reason: str
    url: str | None = None


Item = Union[Entry, Feed, Failure]


class BadEntry(ValueError):
    """Raised by the helpers below: the reader turns it into a Failure for that entry."""


def text_or_none(value: Any, name: str = "a field") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadEntry(f"{name}: expected a string, got {type(value).__name__}")
    return value.strip() or None


def checked_url(value: Any) -> str:
    url = text_or_none(value, "url")
    if url is None:
        raise BadEntry("no URL")
    try:
        return check_url(url)
    except errors.InvalidUrl as exc:
        raise BadEntry(exc.detail) from None


def _moment(value: Any) -> datetime | None:
    """A date from an export: Unix seconds (or milliseconds, microseconds) or ISO 8601."""
    if value is None or value == "" or value == 0 or value == "0":
        return None
    if isinstance(value, bool):
        raise BadEntry(f"not a date: {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)):
        seconds = float(value)
        while abs(seconds) > 1e11:  # milliseconds or microseconds since the epoch
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise BadEntry(f"not a date: {value!r}") from None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadEntry(f"not a date: {value!r}") from None
    raise BadEntry(f"not a date: {value!r}")


def day(value: Any) -> str | None:
    """The calendar day of a publication date, in its own time zone: YYYY-MM-DD."""
    moment = _moment(value)
    return moment.date().isoformat() if moment else None


def instant(value: Any) -> str | None:
    """A moment in UTC, ISO 8601 to the second (naive times are taken as UTC)."""
    moment = _moment(value)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tags(values: Any, separator: str | None = None) -> tuple[str, ...]:
    """Tags as a tuple of distinct names, in order: from a list, or a string split on ``separator``."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = values.split(separator) if separator else [values]
    if not isinstance(values, list):
        raise BadEntry(f"tags: expected a list, got {type(values).__name__}")
    out: dict[str, None] = {}
    for value in values:
        if isinstance(value, dict):  # {"label": …} (Wallabag), {"name": …} (Omnivore)
            value = value.get("label", value.get("name"))
        name = text_or_none(value) if isinstance(value, str) else None
        if name:
            out.setdefault(name, None)
    return tuple(out)


def entry(*, url: Any, where: str, source: str, published: Any = None, saved_at: Any = None,
          tag_list: tuple[str, ...] = (), **fields: Any) -> Entry:
    """An Entry with its URL checked and its dates normalised; raises BadEntry."""
    strings = {name: text_or_none(value, name) for name, value in fields.items() if name != "archived"}
    if len(strings.get("html") or "") > MAX_HTML_CHARS:
        raise BadEntry(f"the article's HTML is longer than {MAX_HTML_CHARS:,} characters")
    return Entry(url=checked_url(url), where=where, source=source, published=day(published),
                 saved_at=instant(saved_at), tags=tag_list, archived=fields.get("archived"), **strings)


def failure(where: str, exc: Exception, url: Any = None) -> Failure:
    reason = str(exc) or type(exc).__name__
    return Failure(where=where, reason=reason, url=url if isinstance(url, str) and url.strip() else None)
