"""The analyze use case: a page in, a Sidebar out; pure orchestration of the stages, no HTTP.

Stages: fetch (only when no HTML or text was sent) → extract → NLP (entities + keyphrases +
document embedding) → archive → related. CPU work runs in worker threads, never on the loop;
identical requests in flight share one analysis, which has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable

import msgspec

from .. import errors
from ..archive.base import Archive
from ..config import Settings
from ..extract import Article, decode_html
from ..schemas import MAX_TEXT_CHARS, AnalyzeRequest, Sidebar, Timings
from ..story import StoryRecord, new_story, story_id_for, to_sidebar
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
Work = Callable[[Callable[[], None]], Awaitable[Analyzed]]  # given the deadline check to call between stages


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
        self.remote = remote  # None: this process analyzes
        self.failures = 0  # analyses for a client that ended in a server error
        self._inflight: dict[RequestKey, asyncio.Future[Analyzed]] = {}  # analyses under way (see _coalesced)

    async def analyze(self, request: AnalyzeRequest, added_by: str | None = None, owner: str = "") -> Sidebar:
        """Analyze one page or text; archive it (claimed by ``added_by``, as ``owner``'s private
        story when that is set, else as a team story) unless asked not to; add the related
        stories ``added_by`` sees (the team's and its own private ones)."""
        started = time.perf_counter()
        try:
            record, stages, cached = await self._process(request, added_by=added_by, owner=owner)
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
        article = await self.workers.run(
            self.analyzer.extract, url=page_url, html=request.html, text=request.text, title=request.title
        )
        article = _filled_in(article, published, byline)
        if len(article.text) > MAX_TEXT_CHARS:
            raise errors.PayloadTooLarge(f"article text is longer than {MAX_TEXT_CHARS:,} characters")
        record = new_story(article, url=url, canonical_url=identity_url(article.canonical_url, page_url),
                           analysed=False, tags=tags, owner=owner)
        stored = await self.archive.upsert(record, added_by)
        if not stored.analysed:  # (a copy of an analyzed story is that story, complete)
            await self.backlog.stored(stored.story_id)
        return stored

    async def _process(
        self, request: AnalyzeRequest, *, published: str | None = None, byline: str | None = None,
        tags: tuple[str, ...] | list[str] = (), final_url: str | None = None, added_by: str | None = None,
        owner: str = "",
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
            return record, stages, True

        page = Page(url=url, final_url=final_url, html=html, text=text, title=request.title, published=published,
                    byline=byline)

        async def analyze(check_deadline: Callable[[], None]) -> Analyzed:
            if self.remote is not None:  # a worker's CPU, not this server's
                return await self.remote.analyze(page, self.settings.analysis_deadline)
            return await self.analyze_page(page, check_deadline)

        # Identical requests in flight share one analysis; each then stores and answers on its own.
        analysis, record, extracted = await self._coalesced((key, url, published, byline), analyze)
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

    async def analyze_page(self, page: Page, check_deadline: Callable[[], None] = lambda: None) -> Analyzed:
        """Extraction and the language stages of one page or text (no archive, no related)."""
        extracted: dict[str, float] = {}
        t = time.perf_counter()
        article = await self.workers.run(
            self.analyzer.extract, url=page.final_url, html=page.html, text=page.text, title=page.title
        )
        extracted["extract"] = ms_since(t)
        check_deadline()  # past it the waiters have had their 503: no language stages
        article = _filled_in(article, page.published, page.byline)
        canonical = identity_url(article.canonical_url, page.final_url)
        # The record (its hashes read the whole text) is built in the worker thread too.
        analysis, record = await self.workers.run(self._analyze_new, article, url=page.url, canonical_url=canonical)
        return analysis, record, extracted

    async def _keep(self, record: StoryRecord, added_by: str | None = None, owner: str = "") -> StoryRecord:
        """Archive the reader's page (``owner``'s private story, or a team story); returns it under
        the id of the story it is stored as. A copy of a stored story joins it as another source
        and leaves it as it was, so the reader's own text, names and offsets are what the sidebar
        shows, not the stored story's."""
        mine = msgspec.structs.replace(record, owner=owner, story_id=story_id_for(record.canonical_url, owner))
        stored = await self.archive.upsert(mine, added_by)
        return msgspec.structs.replace(mine, story_id=stored.story_id)

    async def _coalesced(self, key: RequestKey, work: Work) -> Analyzed:
        """``work``'s result, run once for all identical requests in flight (``key``: the response
        cache's key, the request's URL and date). The second to last caller waits for the first's
        analysis and gets its result or its error; a caller that goes away (its client
        disconnected) stops waiting, and the analysis goes on for the others."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._bounded(work))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._inflight.pop(key, None) if self._inflight.get(key) is done else None)
            task.add_done_callback(retrieve)
        return await asyncio.shield(task)

    async def _bounded(self, work: Work) -> Analyzed:
        """Run ``work`` in a worker slot, within ``settings.analysis_deadline`` from its start.

        Past the deadline the waiters get 503 at once and nothing is stored (storing comes after).
        A thread cannot be stopped, so the work ends at its next stage boundary (``work`` gets a
        function to call there) and keeps its slot, and the backlog waiting, until it has."""
        local = self.remote is None  # a remote analysis takes no slot here: the workers bound it
        if local:
            await self.workers.reader_slot()  # readers first: the backlog waits while one is counted
        limit = self.settings.analysis_deadline
        deadline = time.monotonic() + limit

        def check_deadline() -> None:
            if time.monotonic() > deadline:
                raise _over_deadline(limit)

        inner = asyncio.ensure_future(work(check_deadline))
        if local:
            inner.add_done_callback(self.workers.reader_done)
        try:
            # A remote analysis keeps its own deadline (it says why it ran out); this one backs it up.
            return await asyncio.wait_for(asyncio.shield(inner), limit if local else limit + 1.0)
        except asyncio.TimeoutError:
            log.warning("an analysis took longer than its %g s deadline; its client got 503", limit)
            raise _over_deadline(limit) from None

    def _analyze_new(self, article: Article, *, url: str, canonical_url: str) -> tuple[Analysis, StoryRecord]:
        analysis = self.analyzer.analyze(article.title, article.text)
        # The record's fingerprints read the whole text: built here, in the worker thread, too.
        return analysis, new_story(article, url=url, canonical_url=canonical_url, keyphrases=analysis.keyphrases,
                                   entities=analysis.entities, embedding=analysis.embedding)

    async def complete(self, story_id: str) -> bool:
        """A job's work (see :mod:`backstory.jobs`): complete a pending story."""
        return await self.backlog.complete(story_id)

    async def answer(self, page: dict) -> bytes:
        """A job's work (see :mod:`backstory.jobs`): a page a server handed over, analyzed."""
        return await answer(self.analyze_page, page)

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
