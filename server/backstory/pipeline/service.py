"""The analyze use case: a page in, a Sidebar out; pure orchestration of the stages, no HTTP.

Stages: fetch (only when no HTML or text was sent) → extract → NLP (entities + keyphrases +
document embedding) → archive → related. CPU work runs in worker threads, never on the loop;
identical requests in flight share one analysis, which has a deadline. Each part of the Sidebar
can be handed on as soon as it is ready (``emit``, for the streamed answer, see :mod:`backstory.stream`):
extraction takes no analysis slot, so a page's facts never wait behind other readers' analyses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from .. import errors
from ..archive.base import Archive
from ..config import Settings
from ..extract import Article, decode_html
from ..feeds.poller import FeedPoller
from ..schemas import MAX_TEXT_CHARS, AnalyzeRequest, Sidebar, Timings
from ..story import StoryRecord, new_story, story_id_for, to_sidebar
from ..stream import Emit, EntitiesEvent, KeyphrasesEvent, RelatedEvent, facts_of
from ..urls import check_url, identity_url
from .analyzer import Analysis, Analyzer, ms_since
from .page import Analyst, Analyzed, Page
from .remote import answer
from .backlog import Backlog
from .cache import ResponseCache
from .models import Models
from .workers import Workers, retrieve

if TYPE_CHECKING:
    from ..jobs import JobQueue

log = logging.getLogger(__name__)


RequestKey = tuple[str, str, str | None, str | None]  # the response cache's key, the request's URL, date, byline


@dataclass(frozen=True)
class InFlight:
    """One analysis under way, shared by the identical requests in flight (see Pipeline._coalesced)."""

    extracted: asyncio.Future[StoryRecord]  # the record before the language stages: the facts
    task: asyncio.Future[Analyzed]


def _checked_url(request: AnalyzeRequest) -> str:
    """The request's URL, checked, once the request sends at most one of html and text."""
    url = check_url(request.url)
    if request.html is not None and request.text is not None:
        raise errors.InvalidInput("send either html or text, not both")
    return url


def _filled_in(article: Article, published: str | None, byline: str | None) -> Article:
    """The article with the date and author an import (or a client) gave filling in what the page
    does not say itself: the page's own metadata is the story's, an export's is a fallback."""
    changes = {name: value for name, value in (("published", published), ("byline", byline))
               if value and not getattr(article, name)}
    return msgspec.structs.replace(article, **changes) if changes else article


def _emit_analysis(emit: Emit, record: StoryRecord) -> None:
    emit(KeyphrasesEvent(keyphrases=record.keyphrases))
    emit(EntitiesEvent(entities=record.entities))


def _over_deadline(limit: float) -> errors.Unavailable:
    return errors.Unavailable(
        f"the analysis took longer than its {limit:g} s deadline (BACKSTORY_ANALYSIS_DEADLINE); "
        "nothing was stored; try again when the server is less busy"
    )


class Pipeline:
    """The analyze use case: request in, Sidebar out; shared by the API, the CLI and the scripts.

    ``models`` may be None for a store-only pipeline (a bulk import that leaves the analysis to
    the server): only :meth:`ingest` with ``analyze=False`` works then.
    """

    def __init__(self, settings: Settings, models: Models | None, archive: Archive, jobs: JobQueue | None = None,
                 remote: Analyst | None = None) -> None:
        self.settings = settings
        self.analyzer = Analyzer(
            models,
            max_chars=settings.max_analysis_chars,
            max_tokens=settings.max_analysis_tokens,
            max_html_elements=settings.max_html_elements,
        )
        self.archive = archive
        self.cache = ResponseCache()
        self.workers = Workers(settings.workers)
        self.backlog = Backlog(self.analyzer, archive, self.cache, self.workers, jobs)
        self.feeds = FeedPoller(settings, archive, self.ingest)  # subscribed feeds, polled into the archive
        self.remote = remote  # None: this process analyzes
        self.failures = 0  # analyses for a client that ended in a server error
        self._inflight: dict[RequestKey, InFlight] = {}  # analyses under way (see _coalesced)

    async def analyze(self, request: AnalyzeRequest, added_by: str | None = None, owner: str = "",
                      emit: Emit | None = None) -> Sidebar:
        """Analyze one page or text; archive it (claimed by ``added_by``, as ``owner``'s private
        story when that is set, else as a team story) unless asked not to; add the related
        stories ``added_by`` sees (the team's and its own private ones). ``emit`` is handed each
        part as it is ready: the facts, the keyphrases and entities, the related stories."""
        started = time.perf_counter()
        try:
            record, stages, cached = await self._process(request, added_by=added_by, owner=owner, emit=emit)
        except Exception as exc:
            if not isinstance(exc, errors.BackstoryError) or exc.status >= 500:
                self.failures += 1  # the server's fault or its limits (a deadline, a dead spaCy process)
            raise
        t = time.perf_counter()
        generation = self.archive.generation  # read before the lookup, never after
        related = self.cache.related(record, generation, added_by) if cached else None
        if related is None:
            related = await self.archive.related(record, limit=10, viewer=added_by)
            self.cache.put_related(record, generation, added_by, related)
        if emit is not None:
            emit(RelatedEvent(related=related))
        timings = Timings(**stages, related=ms_since(t), total=ms_since(started))
        # A page the reader chose not to keep may still be a copy of a story the archive holds.
        archived = request.archive or await self.archive.get(record.story_id, added_by) is not None
        return to_sidebar(record, related, timings=timings, archived=archived, cached=cached)

    async def ingest(
        self, request: AnalyzeRequest, *, published: str | None = None, byline: str | None = None,
        tags: tuple[str, ...] | list[str] = (), final_url: str | None = None, analyze: bool = True,
        added_by: str | None = None, owner: str = "",
    ) -> StoryRecord:
        """Archive one story (bulk import): no related lookup. With ``analyze=False`` only the
        cheap part runs now (extraction, language, hashes, the words the related search reads)
        and the story is stored as pending: the :class:`Backlog` completes it later.
        ``published`` and ``byline`` (an export's) fill in what the page does not say; ``tags``
        are the reader's; ``final_url`` is where a fetch of ``request.url`` ended (its redirects)."""
        if analyze:
            record, _, _ = await self._process(request, published=published, byline=byline, tags=tags,
                                               final_url=final_url, added_by=added_by, owner=owner)
            return record
        url = _checked_url(request)
        if request.html is None and request.text is None:
            raise errors.InvalidInput("a stored-for-later story needs its html or text")
        page_url = final_url or url
        page = Page(url=url, final_url=page_url, html=request.html, text=request.text, title=request.title,
                    published=published, byline=byline)
        record = await self.workers.run(self._extracted, page, analysed=False, tags=tags, owner=owner)
        stored = await self.archive.upsert(record, added_by)
        if not stored.analysed:  # (a copy of an analyzed story is that story, complete)
            await self.backlog.stored(stored.story_id)
        return stored

    async def _process(
        self, request: AnalyzeRequest, *, published: str | None = None, byline: str | None = None,
        tags: tuple[str, ...] | list[str] = (), final_url: str | None = None, added_by: str | None = None,
        owner: str = "", emit: Emit | None = None,
    ) -> tuple[StoryRecord, dict[str, float], bool]:
        url = _checked_url(request)
        html, text, final_url = request.html, request.text, final_url or url
        stages: dict[str, float] = {}
        if html is None and text is None:
            # Imported here: httpx loads only once a page must be fetched (never for a bulk import).
            from ..fetch import fetch_page

            t = time.perf_counter()
            page = await fetch_page(url, self.settings)
            html = decode_html(page.body, page.content_type)
            final_url = page.final_url
            stages["fetch"] = ms_since(t)

        # Keyed by whose story it is: a member's private analysis is never another caller's hit.
        key = ResponseCache.key(final_url, html, text, request.title, owner)
        record = self.cache.get(key)
        if record is not None:
            if request.archive:  # still archived? (claimed by this reader too); deleted meanwhile: stored again
                present = (await self.archive.claim(record.story_id, added_by) if added_by is not None
                           else await self.archive.get(record.story_id) is not None)
                if not present:
                    record = await self._keep(record, added_by, owner)
            if emit is not None:  # all parts at once
                emit(facts_of(record, record.story_id))
                _emit_analysis(emit, record)
            return record, stages, True

        page = Page(url=url, final_url=final_url, html=html, text=text, title=request.title, published=published,
                    byline=byline)
        # Identical requests in flight share one analysis; each then stores and answers on its own.
        flight = self._coalesced((key, url, published, byline), page)
        if emit is not None:
            await asyncio.wait((flight.extracted, flight.task), return_when=asyncio.FIRST_COMPLETED)
            if flight.extracted.done():  # (else the analysis failed before: its error is raised below)
                first = flight.extracted.result()
                emit(facts_of(first, story_id_for(first.canonical_url, owner)))
        analysis, record, extracted = await asyncio.shield(flight.task)
        if emit is not None:
            _emit_analysis(emit, record)
        stages.update(extracted)
        stages.update(analysis.timings)
        if tags:
            record = msgspec.structs.replace(record, tags=list(tags))
        if request.archive:
            record = await self._keep(record, added_by, owner)
        else:  # the story it would be stored as, by the archive's own rule, among its owner's
            duplicate = await self.archive.find_duplicate(record.canonical_url, record.simhash, record.text, owner)
            record = msgspec.structs.replace(record, owner=owner,
                                             story_id=duplicate or story_id_for(record.canonical_url, owner))
        self.cache.put(key, record)
        return record, stages, False

    async def analyze_page(self, page: Page) -> Analyzed:
        """Extraction and the language stages of one page or text (no archive, no related)."""
        record, extracted = await self._extract(page)
        analysis, record = await self.workers.run(self._analyze_record, record)
        return analysis, record, extracted

    async def _extract(self, page: Page) -> tuple[StoryRecord, dict[str, float]]:
        t = time.perf_counter()
        record = await self.workers.extract(self._extracted, page)
        return record, {"extract": ms_since(t)}

    def _extracted(self, page: Page, *, analysed: bool = True, tags: tuple[str, ...] | list[str] = (),
                   owner: str = "") -> StoryRecord:
        """The record of a page, extracted, before the language stages (in a worker thread: its
        hashes read the whole text)."""
        article = self.analyzer.extract(url=page.final_url, html=page.html, text=page.text, title=page.title)
        article = _filled_in(article, page.published, page.byline)
        if len(article.text) > MAX_TEXT_CHARS:
            raise errors.PayloadTooLarge(f"article text is longer than {MAX_TEXT_CHARS:,} characters")
        return new_story(article, url=page.url, canonical_url=identity_url(article.canonical_url, page.final_url),
                         analysed=analysed, tags=tags, owner=owner)

    async def _keep(self, record: StoryRecord, added_by: str | None = None, owner: str = "") -> StoryRecord:
        """Archive the reader's page (``owner``'s private story, or a team story); returns it under
        the id of the story it is stored as. A copy of a stored story joins it as another source
        and leaves it as it was, so the reader's own text, names and offsets are what the sidebar
        shows, not the stored story's."""
        mine = msgspec.structs.replace(record, owner=owner, story_id=story_id_for(record.canonical_url, owner))
        stored = await self.archive.upsert(mine, added_by)
        return msgspec.structs.replace(mine, story_id=stored.story_id)

    def _coalesced(self, key: RequestKey, page: Page) -> InFlight:
        """The analysis of ``page``, run once for all identical requests in flight (``key``: the
        response cache's key, the request's URL and date). The second to last caller waits for the
        first's analysis and gets its result or its error; a caller that goes away (its client
        disconnected) stops waiting, and the analysis goes on for the others."""
        flight = self._inflight.get(key)
        if flight is None:
            extracted: asyncio.Future[StoryRecord] = asyncio.get_running_loop().create_future()
            flight = self._inflight[key] = InFlight(extracted, asyncio.ensure_future(self._bounded(page, extracted)))
            flight.task.add_done_callback(lambda _: self._inflight.pop(key) if self._inflight.get(key) is flight else None)
            flight.task.add_done_callback(retrieve)
        return flight

    async def _bounded(self, page: Page, extracted: asyncio.Future[StoryRecord]) -> Analyzed:
        """Extract ``page`` (setting ``extracted``), then run its language stages in a worker slot;
        both within ``settings.analysis_deadline`` of their own time (the wait for a slot between
        them does not count).

        Past the deadline the waiters get 503 at once and nothing is stored (storing comes after).
        A thread cannot be stopped, so the work ends at its next stage boundary and keeps its
        slot, and the backlog waiting, until it has."""
        limit = self.settings.analysis_deadline
        if self.remote is not None:  # a worker's CPU, not this server's: no slot here, the workers bound it
            # It keeps its own deadline (it says why it ran out); this one backs it up.
            analyzed = await self._in_time(asyncio.ensure_future(self.remote.analyze(page, limit)), limit + 1.0, limit)
            extracted.set_result(analyzed[1])
            return analyzed
        self.workers.reader_in()  # readers first: the backlog waits while one is counted
        started = time.monotonic()
        try:
            record, timings = await self._in_time(asyncio.ensure_future(self._extract(page)), limit, limit)
        except BaseException:
            self.workers.reader_left()
            raise
        left = limit - (time.monotonic() - started)
        extracted.set_result(record)
        await self.workers.reader_slot(counted=True)
        await self.workers.extractions_first()  # (the facts of pages behind this one come first)
        if left <= 0:  # past it the waiters have had their 503: no language stages
            self.workers.reader_done(extracted)  # (the slot and the count back)
            raise _over_deadline(limit)
        inner = asyncio.ensure_future(self.workers.run(self._analyze_record, record))
        inner.add_done_callback(self.workers.reader_done)
        analysis, record = await self._in_time(inner, left, limit)
        return analysis, record, timings

    @staticmethod
    async def _in_time(work: asyncio.Future, seconds: float, limit: float):
        """``work``'s result, or the deadline's 503 after ``seconds`` (``work`` goes on)."""
        try:
            return await asyncio.wait_for(asyncio.shield(work), seconds)
        except asyncio.TimeoutError:
            work.add_done_callback(retrieve)
            log.warning("an analysis took longer than its %g s deadline; its client got 503", limit)
            raise _over_deadline(limit) from None

    def _analyze_record(self, record: StoryRecord) -> tuple[Analysis, StoryRecord]:
        """The language stages of an extracted record, and the record with their results (in a worker thread)."""
        analysis = self.analyzer.analyze(record.title, record.text)
        return analysis, msgspec.structs.replace(record, keyphrases=analysis.keyphrases, entities=analysis.entities,
                                                 embedding=analysis.embedding)

    async def complete(self, story_id: str) -> bool:
        """A job's work (see :mod:`backstory.jobs`): complete a pending story."""
        return await self.backlog.complete(story_id)

    async def answer(self, page: dict) -> bytes:
        """A job's work (see :mod:`backstory.jobs`): a page a server handed over, analyzed."""
        return await answer(self.analyze_page, page)

    async def due_feeds(self) -> list[str]:
        """A job's work (see :mod:`backstory.jobs`): the feeds due for a poll, leased."""
        return await self.feeds.take_due()

    async def poll_feed(self, url: str) -> None:
        """A job's work (see :mod:`backstory.jobs`): poll one subscribed feed."""
        await self.feeds.poll(url)

    async def work(self, parallel: int = 2) -> None:
        """The background work, forever: jobs from the archive's queue when it has one (a
        PostgreSQL archive), else the pending stories the archive holds."""
        if self.backlog.jobs is not None:
            await self.backlog.jobs.work(self, concurrency=parallel)
        else:
            await self.backlog.run(parallel=parallel)

    def forgotten(self, story_id: str) -> None:
        """A story was deleted: no cached answer may show it again."""
        self.cache.discard_story(story_id)

    def close(self, *, models: bool = False) -> None:
        """Stop the worker threads (and the models too, when this pipeline owns them)."""
        self.workers.close()
        self.analyzer.close()
        if models and self.analyzer.models is not None:
            self.analyzer.models.close()
