"""Polling one subscribed feed: fetch it (conditionally), take its new entries, archive them.

Each new entry's article comes from the feed itself when its content is the whole article (at
least :data:`FULL_ARTICLE_WORDS` words), else from its link, fetched politely
(:class:`backstory.polite.PoliteFetcher`, robots.txt and per-host delays included). It is stored
at once and analysed in the background (``Pipeline.ingest(..., analyze=False)``, as an import's
stories), with the entry's date and author where the page has none. A feed that fails keeps its
subscription: its error is kept and it is polled again after twice as long each time in a row,
up to ``settings.feeds_max_backoff``.

When a feed is polled is the archive's to say (``next_poll``): on SQLite the server's
:func:`run` loop polls what is due; on PostgreSQL a periodic job defers one poll job per due
feed (see :mod:`backstory.jobs`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NamedTuple, Protocol

from .. import errors
from ..archive.base import Archive
from ..config import Settings
from ..extract import decode_html
from ..schemas import AnalyzeRequest
from ..subscription import FeedRow, PollOutcome
from ..urls import check_url

if TYPE_CHECKING:  # the fetching modules load httpx: only once a feed is polled
    from ..fetch import FetchedPage
    from .parse import FeedEntry

log = logging.getLogger(__name__)

FULL_ARTICLE_WORDS = 300  # an entry whose content has this many words carries the article itself
MAX_ENTRIES_PER_POLL = 100  # a feed's backlog beyond this is taken by the next polls
LEASE_S = 900.0  # a feed taken for polling is not taken again for this long (its poll sets the real time)
CHECK_EVERY = 60.0  # the SQLite loop looks at the archive at least this often (another process may add feeds)


def transient(exc: BaseException) -> bool:
    """A failure worth trying the entry again at the next poll (the site may answer then), not a
    refusal for good (a 404, robots.txt, no article)."""
    if isinstance(exc, errors.UpstreamStatus):
        return exc.upstream_status >= 500 or exc.upstream_status in (408, 429)
    return isinstance(exc, (errors.UpstreamError, errors.UpstreamTimeout, errors.Unavailable))

_TAG = re.compile(r"<[^>]*>")


class Fetcher(Protocol):
    """What polling needs of a fetcher (:class:`backstory.polite.PoliteFetcher`)."""

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
                    media_types: frozenset[str] | None = None) -> FetchedPage | None: ...

    async def aclose(self) -> None: ...


Ingest = Callable[..., Awaitable[Any]]  # Pipeline.ingest


class PollResult(NamedTuple):
    url: str
    new: int = 0  # stories stored
    failed: int = 0  # new entries that could not be archived (logged)
    not_modified: bool = False
    error: str | None = None  # the feed itself failed


def at(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def words(html: str) -> int:
    return len(_TAG.sub(" ", html).split())


def describe(exc: BaseException) -> str:
    detail = exc.detail if isinstance(exc, errors.BackstoryError) else str(exc) or type(exc).__name__
    return detail[:500]


def interval_for(settings: Settings, ttl_s: float | None = None) -> float:
    """A feed's polling interval: the setting, or the feed's own ``ttl`` when longer, never
    under the minimum."""
    return max(settings.feeds_min_interval, settings.feeds_interval, ttl_s or 0.0)


async def subscribe(archive: Archive, settings: Settings, url: str, *, title: str | None = None,
                    added_by: str | None = None, polled_here: bool = False) -> tuple[str, bool]:
    """Subscribe to the feed at ``url`` (checked: ``errors.InvalidUrl``), due at once, or, when
    the caller polls it itself (``polled_here``), leased to it; the URL as stored and whether it
    is new (False: subscribed already, left as it was)."""
    url = check_url(url)
    now = datetime.now(timezone.utc)
    due = at(now + timedelta(seconds=LEASE_S)) if polled_here else None
    return url, await archive.add_feed(url, title=title, added_by=added_by, at=at(now),
                                       interval_s=interval_for(settings), due=due)


class FeedPoller:
    """Polls subscribed feeds into one archive, through one pipeline's ``ingest``."""

    def __init__(self, settings: Settings, archive: Archive, ingest: Ingest, fetcher: Fetcher | None = None) -> None:
        self.settings = settings
        self.archive = archive
        self.ingest = ingest
        self._fetcher = fetcher
        self.wake = asyncio.Event()  # a feed was added here: look at once, not at the next check
        self.polls = 0  # polls this process made
        self.stored = 0  # stories they stored

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:  # made on first need: httpx loads only when a feed is polled
            from ..polite import PoliteFetcher

            self._fetcher = PoliteFetcher(self.settings)
        return self._fetcher

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()

    async def take_due(self, limit: int = 16) -> list[str]:
        """The feeds due now, each leased to this caller for :data:`LEASE_S`."""
        now = datetime.now(timezone.utc)
        return await self.archive.take_due_feeds(at(now), at(now + timedelta(seconds=LEASE_S)), limit)

    async def poll(self, url: str) -> PollResult:
        """Poll one feed now; its outcome (and error) is recorded in the archive."""
        from .parse import FEED_TYPES, HTML_TYPES, parse_feed

        feed = await self.archive.feed(url)
        if feed is None:
            return PollResult(url, error="not subscribed")
        self.polls += 1
        started = datetime.now(timezone.utc)
        try:
            page = await self.fetcher.fetch(url, etag=feed.etag, last_modified=feed.last_modified,
                                            media_types=FEED_TYPES | HTML_TYPES)
            if page is None:  # 304: nothing new since the last poll
                interval = max(interval_for(self.settings), feed.interval_s)  # the feed's ttl, as its last full poll read it
                await self.archive.feed_polled(url, PollOutcome(
                    at=at(started), next_poll=at(started + timedelta(seconds=interval)), etag=feed.etag,
                    last_modified=feed.last_modified))
                return PollResult(url, not_modified=True)
            parsed = await asyncio.to_thread(parse_feed, page.body, page.media_type, url)
        except Exception as exc:  # noqa: BLE001 - every failure is the feed's state, not the caller's crash
            return await self._failed(feed, started, exc)
        fresh = set(await self.archive.unseen_entries(url, [e.key for e in parsed.entries]))
        new = [entry for entry in parsed.entries if entry.key in fresh][:MAX_ENTRIES_PER_POLL]
        seen, stored, failed, retry = [], 0, 0, False
        for entry in new:
            try:
                stored += await self._take(entry, feed)
                seen.append(entry.key)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the feed
                failed += 1
                again = transient(exc)
                retry |= again
                if not again:
                    seen.append(entry.key)  # what the site refuses for good is not asked for again
                log.warning("feed %s: entry %s not archived%s: %s", url, entry.link,
                            ", tried again next poll" if again else "", describe(exc))
        interval = interval_for(self.settings, parsed.ttl_s)
        # An entry to try again: no validators, so that the next poll reads the feed whole, not a 304.
        await self.archive.feed_polled(url, PollOutcome(
            at=at(started), next_poll=at(started + timedelta(seconds=interval)), etag=None if retry else page.etag,
            last_modified=None if retry else page.last_modified, title=parsed.title, interval_s=interval), seen)
        self.stored += stored
        return PollResult(url, new=stored, failed=failed)

    async def _failed(self, feed: FeedRow, started: datetime, exc: BaseException) -> PollResult:
        error = describe(exc)
        if not isinstance(exc, errors.BackstoryError):
            log.exception("polling feed %s failed", feed.url, exc_info=exc)
        # Twice as long after each failure in a row: 2, 4, 8 … intervals, capped.
        wait = min(self.settings.feeds_max_backoff, feed.interval_s * 2 ** (feed.failures + 1))
        await self.archive.feed_polled(feed.url, PollOutcome(
            at=at(started), next_poll=at(started + timedelta(seconds=wait)), error=error))
        log.warning("feed %s failed (%d in a row; next try in %.0f s): %s", feed.url, feed.failures + 1, wait, error)
        return PollResult(feed.url, error=error)

    async def _take(self, entry: FeedEntry, feed: FeedRow) -> int:
        """Archive one new entry's article; 1 when a story was stored, 0 when the archive has it."""
        if entry.link is None:
            raise errors.InvalidUrl("the entry has no usable link to file its story under")
        if await self.archive.story_at(entry.link, owner="") is not None:
            return 0
        final_url = None
        if entry.content is not None and words(entry.content) >= FULL_ARTICLE_WORDS:
            request = AnalyzeRequest(url=entry.link, title=entry.title, html=entry.content)
        else:
            page = await self.fetcher.fetch(entry.link)
            if page is None:
                raise errors.UpstreamError(f"{entry.link} answered 304 to an unconditional request")
            if page.final_url != entry.link and await self.archive.story_at(page.final_url, owner="") is not None:
                return 0
            request = AnalyzeRequest(url=entry.link, title=entry.title, html=decode_html(page.body, page.content_type))
            final_url = page.final_url
        # The entry's date and author fill in what the page does not say. A feed's stories are the
        # team's (owner ""), whoever subscribed: the subscription is the team's too.
        await self.ingest(request, published=entry.published, byline=entry.author, final_url=final_url, analyze=False,
                          added_by=feed.added_by, owner="")
        return 1

    async def poll_due(self) -> int:
        """Poll every feed due now, one after another; how many were polled."""
        polled = 0
        while urls := await self.take_due():
            for url in urls:
                await self.poll(url)
                polled += 1
        return polled

    async def run(self) -> None:
        """The SQLite server's polling, forever: what the archive says is due, then a sleep until
        the next feed is due (at most :data:`CHECK_EVERY`, or until a feed is added here)."""
        while True:
            try:
                await self.poll_due()
                due = await self.archive.next_feed_due()
            except Exception:  # noqa: BLE001 - the archive went away for a moment: try again later
                log.exception("polling feeds failed; trying again in %g s", CHECK_EVERY)
                due = None
            wait = CHECK_EVERY
            if due is not None:
                wait = min(wait, max(0.0, (datetime.fromisoformat(due.replace("Z", "+00:00"))
                                           - datetime.now(timezone.utc)).total_seconds()) + 0.5)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
