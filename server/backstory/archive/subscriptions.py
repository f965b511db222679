"""News-feed subscriptions as the archive keeps them: each feed's polling state and the entries
already taken from it (see :mod:`backstory.feeds` for what polling does with them).

Two pieces, one per layer: :class:`SubscriptionRows`, the SQL calls every SQL backend shares
(mixed into :class:`backstory.archive.sql.SqlRows`), and :class:`Subscriptions`, the coroutines
:class:`backstory.archive.stories.StoryArchive` answers with them. Times are ISO 8601 UTC text
(``2026-01-02T03:04:05Z``), as every time the archive keeps: they compare as text.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ..subscription import FeedRow, FeedStats, PollOutcome

T = TypeVar("T")
_FEED = ("SELECT f.url, f.title, f.added_by, f.added, f.etag, f.last_modified, f.interval_s, f.next_poll, "
         "f.last_poll, f.last_error, f.failures, (SELECT count(*) FROM feed_entries e WHERE e.feed_id = f.id) "
         "FROM feeds f")


class SubscriptionRows:
    """The subscription calls in SQL (see :mod:`backstory.archive.sql` for ``execute``/``_one``)."""

    execute: Callable[..., Any]
    _one: Callable[..., Any]

    # ---- reads ------------------------------------------------------------------------------
    def feeds(self) -> list[FeedRow]:
        return [FeedRow(*row) for row in self.execute(f"{_FEED} ORDER BY f.id")]

    def feed(self, url: str) -> FeedRow | None:
        row = self._one(f"{_FEED} WHERE f.url = ?", url)
        return FeedRow(*row) if row else None

    def unseen(self, url: str, keys: list[str]) -> list[str]:
        """The entry keys of ``keys`` not taken from the feed yet, in their order."""
        seen = {row[0] for row in self.execute(
            "SELECT e.entry FROM feed_entries e JOIN feeds f ON f.id = e.feed_id WHERE f.url = ?", (url,))}
        return [key for key in keys if key not in seen]

    def feed_stats(self) -> FeedStats:
        count, failing, last = self._one(
            "SELECT count(*), count(last_error), max(last_poll) FROM feeds")
        return FeedStats(count, failing, last)

    # ---- writes -----------------------------------------------------------------------------
    def add_feed(self, url: str, title: str | None, added_by: str | None, at: str, interval_s: float,
                 due: str) -> bool:
        """Subscribe, first due at ``due``; False when the feed is subscribed already."""
        cur = self.execute(
            "INSERT INTO feeds (url, title, added_by, added, interval_s, next_poll) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (url) DO NOTHING", (url, title, added_by, at, interval_s, due))
        return cur.rowcount > 0

    def remove_feed(self, url: str) -> bool:
        self.execute("DELETE FROM feed_entries WHERE feed_id IN (SELECT id FROM feeds WHERE url = ?)", (url,))
        return self.execute("DELETE FROM feeds WHERE url = ?", (url,)).rowcount > 0

    def take_due(self, now: str, until: str, limit: int) -> list[str]:
        """The feeds due by ``now``, soonest first, each put off until ``until`` (a lease: no
        other process polls it meanwhile; the poll's outcome sets its real next time)."""
        urls = [row[0] for row in self.execute(
            "SELECT url FROM feeds WHERE next_poll <= ? ORDER BY next_poll, id LIMIT ?", (now, limit))]
        for url in urls:
            self.execute("UPDATE feeds SET next_poll = ? WHERE url = ?", (until, url))
        return urls

    def next_due(self) -> str | None:
        row = self._one("SELECT min(next_poll) FROM feeds")
        return row[0] if row else None

    def polled(self, url: str, outcome: PollOutcome) -> None:
        if outcome.error is not None:
            self.execute("UPDATE feeds SET last_poll = ?, next_poll = ?, last_error = ?, failures = failures + 1 "
                         "WHERE url = ?", (outcome.at, outcome.next_poll, outcome.error, url))
            return
        self.execute(
            "UPDATE feeds SET last_poll = ?, next_poll = ?, last_error = NULL, failures = 0, etag = ?, "
            "last_modified = ?, title = coalesce(title, ?), interval_s = coalesce(?, interval_s) WHERE url = ?",
            (outcome.at, outcome.next_poll, outcome.etag, outcome.last_modified, outcome.title, outcome.interval_s, url))

    def mark_seen(self, url: str, keys: list[str], at: str) -> None:
        row = self._one("SELECT id FROM feeds WHERE url = ?", url)
        if row is None:  # unsubscribed meanwhile
            return
        for key in keys:
            self.execute("INSERT INTO feed_entries (feed_id, entry, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         (row[0], key, at))


class Subscriptions:
    """The archive's subscription coroutines (mixed into the story archive)."""

    storage: Any
    _read: Callable[..., Any]
    start: Callable[..., Any]
    _started: bool

    async def _feed_write(self, fn: Callable[[Any], T]) -> T:
        if not self._started:
            await self.start()
        return await self.storage.write(lambda w: (fn(w), None))  # no story changes: the generation stays

    async def feeds(self) -> list[FeedRow]:
        """Every subscription, oldest first."""
        return await self._read(lambda r: r.feeds())

    async def feed(self, url: str) -> FeedRow | None:
        return await self._read(lambda r: r.feed(url))

    async def feed_stats(self) -> FeedStats:
        return await self._read(lambda r: r.feed_stats())

    async def unseen_entries(self, url: str, keys: list[str]) -> list[str]:
        return await self._read(lambda r: r.unseen(url, keys))

    async def next_feed_due(self) -> str | None:
        """When the soonest feed is due (None without feeds)."""
        return await self._read(lambda r: r.next_due())

    async def add_feed(self, url: str, *, title: str | None, added_by: str | None, at: str, interval_s: float,
                       due: str | None = None) -> bool:
        """Subscribe to a feed, first due at ``due`` (default: at once); False when it is subscribed already."""
        return await self._feed_write(lambda w: w.add_feed(url, title, added_by, at, interval_s, due or at))

    async def remove_feed(self, url: str) -> bool:
        """Unsubscribe (the stories taken from it stay); False when it was not subscribed."""
        return await self._feed_write(lambda w: w.remove_feed(url))

    async def take_due_feeds(self, now: str, until: str, limit: int = 16) -> list[str]:
        return await self._feed_write(lambda w: w.take_due(now, until, limit))

    async def feed_polled(self, url: str, outcome: PollOutcome, seen: list[str] = ()) -> None:
        """Record a poll's outcome and the entries it took, in one transaction."""
        def job(w: Any) -> None:
            w.mark_seen(url, list(seen), outcome.at)
            w.polled(url, outcome)

        await self._feed_write(job)
