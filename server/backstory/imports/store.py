"""Storing what an export holds: each story with its article is stored as a JSON-lines story is
(``Pipeline.ingest``, store-only unless asked to analyze), an exported record as it was; what the
archive already has is skipped, so an interrupted import resumes by running it again. Entries
that carry only a URL are fetched politely (:class:`backstory.polite.PoliteFetcher`) and stored
from the page; the export's date, author and tags fill in what the page does not say."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable

import msgspec

from .. import errors
from ..extract import decode_html
from ..schemas import AnalyzeRequest
from ..story import StoryRecord
from .entry import Entry, Failure, Feed, Item

NEEDS_FETCHING = "needs fetching (no fetcher given)"
#: URL-only entries fetched or waiting for their host's turn at once: many hosts' pages are asked
#: for while one host makes its entries wait (each then takes a worker only to be stored)
FETCHES_AT_ONCE = 32


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


async def store(
    items: Iterable[Item | StoryRecord],
    archive: Any,
    pipeline: Callable[[], Awaitable[Any]],
    *,
    analyze: bool = False,
    window: int = 4,
    step: Callable[[Tally], None] = lambda tally: None,
    added_by: str | None = None,
    fetcher: Any = None,
) -> Tally:
    """Store ``items`` in ``archive``; ``pipeline()`` makes the pipeline on first need (none is
    made when every story is skipped). ``window`` stories are processed at once; exported
    records are stored in file order, so an export re-imports identically. ``step`` is called
    after each item. ``added_by`` claims the stories stored (``cli``, or a token's ``token:<id>``).
    ``fetcher`` (a :class:`backstory.polite.PoliteFetcher`) fetches the entries that carry only
    a URL, :data:`FETCHES_AT_ONCE` at a time; without one they are reported as failures."""
    tally = Tally()
    running: set[asyncio.Task] = set()
    fetching: set[asyncio.Task] = set()
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
                              final_url=final_url, analyze=analyze, added_by=added_by)
            tally.imported += 1
            tally.stored_for_later |= not analyze
            step(tally)
        except errors.BackstoryError as exc:  # the kind of failure (robots.txt, a blocked address...) and why
            fail(item.where, f"{exc.title}: {exc.detail}" if item.needs_fetch else exc.detail, item.url)
        except Exception as exc:  # one bad story must not stop the import
            fail(item.where, str(exc) or type(exc).__name__, item.url)
        finally:
            in_flight.discard(item.url)

    async def start(item: Entry, tasks: set[asyncio.Task], limit: int) -> set[asyncio.Task]:
        nonlocal made
        if made is None:
            made = await pipeline()
        if len(tasks) >= limit:
            _, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        in_flight.add(item.url)
        tasks.add(asyncio.create_task(ingest(item)))
        return tasks

    try:
        for item in items:
            if isinstance(item, Failure):
                tally.failures.append(item)
                step(tally)
            elif isinstance(item, Feed):
                tally.feeds.append(item)
                step(tally)
            elif isinstance(item, StoryRecord):  # a line of `backstory export`: lossless
                if await archive.get(item.story_id) is not None:
                    tally.skipped += 1
                else:
                    await archive.import_record(item, added_by)
                    tally.imported += 1
                step(tally)
            elif item.url in in_flight or await archive.story_at(item.url) is not None:
                tally.skipped += 1
                step(tally)
            elif item.needs_fetch and (item.source == "jsonl" or fetcher is None):
                # A JSON line without its page has always been refused: JSON lines carry their stories.
                fail(item.where, "line has neither text nor html" if item.source == "jsonl" else NEEDS_FETCHING,
                     item.url)
            elif item.needs_fetch:
                fetching = await start(item, fetching, FETCHES_AT_ONCE)
            else:
                running = await start(item, running, window)
        if running or fetching:
            await asyncio.wait(running | fetching)
        return tally
    finally:
        for task in running | fetching:
            task.cancel()
