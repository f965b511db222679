"""Storing what an export holds: each story with its article is stored as a JSON-lines story is
(``Pipeline.ingest``, store-only unless asked to analyze), an exported record as it was; what the
archive already has is skipped, so an interrupted import resumes by running it again. Entries
that carry only a URL are left to a fetcher (reported until there is one)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

import msgspec

from ..schemas import AnalyzeRequest
from ..story import StoryRecord
from .entry import Entry, Failure, Feed, Item

NEEDS_FETCHING = "needs fetching (not supported yet)"


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
) -> Tally:
    """Store ``items`` in ``archive``; ``pipeline()`` makes the pipeline on first need (none is
    made when every story is skipped). ``window`` stories are processed at once; exported
    records are stored in file order, so an export re-imports identically. ``step`` is called
    after each item. ``added_by`` claims the stories stored (``cli``, or a token's ``token:<id>``)."""
    tally = Tally()
    running: set[asyncio.Task] = set()
    in_flight: set[str] = set()  # URLs being stored now: a repeat in the file waits for no lookup
    made: Any = None

    def fail(where: str, reason: str, url: str | None = None) -> None:
        tally.failures.append(Failure(where=where, reason=reason, url=url))
        step(tally)

    async def ingest(item: Entry) -> None:
        request = AnalyzeRequest(url=item.url, title=item.title, text=item.text, html=item.html)
        try:
            await made.ingest(request, published=item.published, analyze=analyze, added_by=added_by)
            tally.imported += 1
            tally.stored_for_later |= not analyze
            step(tally)
        except Exception as exc:  # one bad story must not stop the import
            fail(item.where, str(exc) or type(exc).__name__, item.url)
        finally:
            in_flight.discard(item.url)

    try:
        async for item in _each(items):
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
            elif item.needs_fetch:
                # A JSON line without its page has always been refused; a fetcher will take the rest.
                fail(item.where, "line has neither text nor html" if item.source == "jsonl" else NEEDS_FETCHING,
                     item.url)
            else:
                if made is None:
                    made = await pipeline()
                if len(running) >= window:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                in_flight.add(item.url)
                running.add(asyncio.create_task(ingest(item)))
        if running:
            await asyncio.wait(running)
        return tally
    finally:
        for task in running:
            task.cancel()
