"""The subscription model: what the archive keeps of a subscribed news feed and of its polls
(the archive's half is ``archive/subscriptions.py``; polling is :mod:`backstory.feeds`)."""

from __future__ import annotations

from typing import NamedTuple


class FeedRow(NamedTuple):
    """One subscription as stored."""

    url: str
    title: str | None
    added_by: str | None  # "token:<id>", "cli", ... as a story's claims
    added: str
    etag: str | None
    last_modified: str | None
    interval_s: float  # the feed's own polling interval (its ttl, at least the minimum)
    next_poll: str
    last_poll: str | None
    last_error: str | None  # None after a poll that worked
    failures: int  # polls failed in a row
    entries: int  # entries taken so far


class PollOutcome(NamedTuple):
    """What a poll leaves for the next one."""

    at: str
    next_poll: str
    error: str | None = None  # a failed poll keeps the validators and the entries seen
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    interval_s: float | None = None


class FeedStats(NamedTuple):
    count: int
    failing: int  # feeds whose last poll failed
    last_poll: str | None  # the latest poll of any feed
