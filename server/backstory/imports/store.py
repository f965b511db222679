"""Storing what an export holds: each story with its article is stored as a JSON-lines story is
(``Pipeline.ingest``, store-only unless asked to analyze), an exported record as it was; what the
archive already has is skipped, so an interrupted import resumes by running it again. Entries
that carry only a URL are fetched politely (:class:`backstory.polite.PoliteFetcher`) and stored
from the page; the export's date, author and tags fill in what the page does not say."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import msgspec

from .. import errors
from ..extract import decode_html
from ..schemas import AnalyzeRequest
from ..story import StoryRecord, derive
from .entry import Entry, Failure, Feed, Item

NEEDS_FETCHING = "needs fetching (no fetcher given)"
FETCHES_AT_ONCE = 64  #: URL-only entries being fetched or stored at once (so at most this many pages in memory)
TASKS_PER_HOST = 2  #: of those, one host's: one fetching, the next waiting for its turn
HELD_ENTRIES = 10_000  #: entries a busy host's queue may hold while the file is read on for other hosts


class HostQueues:
    """The URL-only entries of an import, a few at a time per host: a host's further entries wait in
    its own queue (an entry is a URL and a title, small) while the export is read on, so that one
    site's many entries, each waiting for its polite turn, hold back neither the other sites nor
    the memory of more pages than :data:`FETCHES_AT_ONCE`."""

    def __init__(self, run: Callable[[Entry], Awaitable[None]]) -> None:
        self.run = run
        self.tasks: set[asyncio.Task] = set()
        self._per_host: dict[str, int] = {}
        self._queued: dict[str, deque[Entry]] = {}
        self._held = 0

    async def add(self, item: Entry) -> None:
        """Start ``item`` or queue it behind its host's; waits while too much is taken already."""
        while len(self.tasks) >= FETCHES_AT_ONCE or self._held >= HELD_ENTRIES:
            await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_COMPLETED)
        host = (urlsplit(item.url).hostname or "").rstrip(".")
        if self._per_host.get(host, 0) < TASKS_PER_HOST:
            self._per_host[host] = self._per_host.get(host, 0) + 1
            self._start(host, item)
        else:
            self._queued.setdefault(host, deque()).append(item)
            self._held += 1

    def _start(self, host: str, item: Entry) -> None:
        task = asyncio.create_task(self.run(item))
        self.tasks.add(task)
        task.add_done_callback(lambda done: self._done(host, done))

    def _done(self, host: str, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        queue = self._queued.get(host)
        if queue:  # the host's next entry takes the place
            self._held -= 1
            self._start(host, queue.popleft())
            if not queue:
                del self._queued[host]
        elif self._per_host[host] > 1:
            self._per_host[host] -= 1
        else:
            del self._per_host[host]

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    def cancel(self) -> None:
        self._queued.clear()  # first: a cancelled task must start no queued one
        for task in self.tasks:
            task.cancel()


class Tally(msgspec.Struct, kw_only=True):
    """An import's outcome so far."""

    imported: int = 0
    skipped: int = 0
    failures: list[Failure] = []
    feeds: list[Feed] = []
    stored_for_later: bool = False  # some stories wait for the server's background analysis

    @property
    def failed(self) -> int:
        return len(self.failures)


async def _each(items: Iterable[Item | StoryRecord] | AsyncIterable[Item | StoryRecord]) -> AsyncIterator[Item | StoryRecord]:
    if isinstance(items, AsyncIterable):  # the server reads its exports in a thread (imports/runs.py)
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def store(
    items: Iterable[Item | StoryRecord] | AsyncIterable[Item | StoryRecord],
    archive: Any,
    pipeline: Callable[[], Awaitable[Any]],
    *,
    analyze: bool = False,
    window: int = 4,
    step: Callable[[Tally], None] = lambda tally: None,
    added_by: str | None = None,
    fetcher: Any = None,
    visibility: str | None = None,
) -> Tally:
    """Store ``items`` in ``archive``; ``pipeline()`` makes the pipeline on first need (none is
    made when every story is skipped). ``window`` stories are processed at once; exported
    records are stored in file order, so an export re-imports identically. ``step`` is called
    after each item. ``added_by`` claims the stories stored (``cli``, or a token's ``token:<id>``).
    ``fetcher`` (a :class:`backstory.polite.PoliteFetcher`) fetches the entries that carry only
    a URL (see :class:`HostQueues`); without one they are reported as failures.

    ``visibility`` ("team" or "private": ``added_by``'s private stories) is what every story is
    stored as, exported records included; None (the command line's default) stores articles as
    team stories and exported records as they were exported (their owner and id kept: lossless).
    An API caller always passes one, so an uploaded export can neither file stories among another
    member's nor take the id another member's story would have."""
    if visibility not in (None, "team", "private"):
        raise ValueError(f"the visibility is team or private, not {visibility!r}")
    if visibility == "private" and not added_by:
        raise ValueError("private stories need an owner: the member they are added by")
    owner = added_by if visibility == "private" else ""
    tally = Tally()
    running: set[asyncio.Task] = set()
    in_flight: set[str] = set()  # URLs being stored now: a repeat in the file waits for no lookup
    made: Any = None

    def fail(where: str, reason: str, url: str | None = None) -> None:
        tally.failures.append(Failure(where=where, reason=reason, url=url))
        step(tally)

    async def ingest(item: Entry) -> None:
        final_url = None
        try:
            if item.needs_fetch:
                page = await fetcher.fetch(item.url)  # never None: no validators are sent
                html, final_url = decode_html(page.body, page.content_type), page.final_url
                request = AnalyzeRequest(url=item.url, title=item.title, html=html)
            else:
                request = AnalyzeRequest(url=item.url, title=item.title, text=item.text, html=item.html)
            await made.ingest(request, published=item.published, byline=item.byline, tags=item.tags,
                              final_url=final_url, analyze=analyze, added_by=added_by, owner=owner)
            tally.imported += 1
            tally.stored_for_later |= not analyze
            step(tally)
        except errors.BackstoryError as exc:  # the kind of failure (robots.txt, a blocked address...) and why
            fail(item.where, f"{exc.title}: {exc.detail}" if item.needs_fetch else exc.detail, item.url)
        except Exception as exc:  # one bad story must not stop the import
            fail(item.where, str(exc) or type(exc).__name__, item.url)
        finally:
            in_flight.discard(item.url)

    fetches = HostQueues(ingest)

    try:
        async for item in _each(items):
            if isinstance(item, Failure):
                tally.failures.append(item)
                step(tally)
            elif isinstance(item, Feed):
                tally.feeds.append(item)
                step(tally)
            elif isinstance(item, StoryRecord):  # a line of `backstory export`: lossless
                if visibility is not None:  # filed anew, under the id its URL has among its new owner's
                    item = derive(msgspec.structs.replace(item, owner=owner, story_id=""))
                if await archive.get(item.story_id, item.owner or None) is not None:
                    tally.skipped += 1
                else:
                    await archive.import_record(item, added_by)
                    tally.imported += 1
                step(tally)
            elif item.url in in_flight or await archive.story_at(item.url, owner) is not None:
                tally.skipped += 1
                step(tally)
            elif item.needs_fetch and (item.source == "jsonl" or fetcher is None):
                # A JSON line without its page has always been refused: JSON lines carry their stories.
                fail(item.where, "line has neither text nor html" if item.source == "jsonl" else NEEDS_FETCHING,
                     item.url)
            else:
                if made is None:
                    made = await pipeline()
                in_flight.add(item.url)
                if item.needs_fetch:
                    await fetches.add(item)
                else:
                    if len(running) >= window:
                        _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    running.add(asyncio.create_task(ingest(item)))
        if running:
            await asyncio.wait(running)
        await fetches.drain()
        return tally
    finally:
        fetches.cancel()
        for task in running:
            task.cancel()
