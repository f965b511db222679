"""Turn a page into a Sidebar: pure orchestration of the stages, no HTTP.

Stages: fetch (only when no HTML or text was sent) → extract → NLP (entities + keyphrases +
document embedding) → archive → related. CPU work runs in worker threads, never on the loop;
the models are loaded once (:meth:`Models.load`) and shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from . import errors
from .config import Settings
from .extract import Article, decode_html, detect_language, extract_article
from .memory import release_soon
from .schemas import MAX_TEXT_CHARS, AnalyzeRequest, Entity, Keyphrase, Sidebar, Timings
from .story import StoryRecord, embedding_text, new_story, story_id_for, to_sidebar
from .threads import name_os_thread
from .urls import check_url, identity_url

log = logging.getLogger(__name__)

TRIM_INTERVAL = 5.0  # seconds between heap trims when the server falls idle

def _checked_url(request: AnalyzeRequest) -> str:
    """The request's URL, checked, once the request sends at most one of html and text."""
    url = check_url(request.url)
    if request.html is not None and request.text is not None:
        raise errors.InvalidInput("send either html or text, not both")
    return url


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class Models:
    """The heavy, shared resources: spaCy (in processes of its own, see :mod:`backstory.nlp_worker`),
    the ONNX embedder and the keyphrase ranker (in this process)."""

    def __init__(self, language: Any, embedder: Any, keyphraser: Any) -> None:
        self.language = language
        self.embedder = embedder
        self.keyphraser = keyphraser

    @property
    def nlp(self) -> Any:
        """spaCy in *this* process (loaded on first use): for code that needs a ``Doc`` itself,
        such as the evaluation's span scoring. The pipeline never uses it."""
        from .nlp import load_nlp

        return load_nlp()

    @classmethod
    def load(cls, spacy_processes: int = 2) -> "Models":
        """Start the spaCy processes, then load the rest here while they load."""
        from .nlp_worker import take

        language = take(spacy_processes)  # started by `backstory serve` at once, else now
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
                warm = pool.submit(_warm_up_extraction)
                embedder = _load_embedder()
                keyphraser = _load_keyphraser(embedder)
                warm.result()
            language.wait_ready()
        except BaseException:
            language.close()
            raise
        return cls(language, embedder, keyphraser)

    def close(self) -> None:
        self.language.close()


def _warm_up_extraction() -> None:
    from .extract import warm_up

    warm_up()  # trafilatura's lazy imports and word lists: the first reader must not wait for them
    identity_url("https://a.example.co.uk/", "https://b.example.co.uk/")  # the Public Suffix List (~0.2 s)


def _load_embedder() -> Any:
    from .embed import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.embed_document("warm-up")  # the ONNX session's first run allocates and optimises
    return embedder


def _load_keyphraser(embedder: Any) -> Any:
    from .keyphrases import KeyphraseExtractor

    return KeyphraseExtractor(embedder)


@dataclass
class Analysis:
    """What the language stages make of one story's text."""

    keyphrases: list[Keyphrase]
    entities: list[Entity]
    embedding: list[float] | None
    timings: dict[str, float]


# C0 control characters (but tab, line feed, carriage return) and DEL: never text, and spaCy
# splits a word at them ("Alt\x00man" became two names). Vertical tab and form feed are breaks.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BREAKS = str.maketrans({"\x0b": "\n", "\x0c": "\n"})


def clean_text(text: str) -> str:
    """``text`` without control characters (vertical tab and form feed become line breaks).

    Applied to a client's text and to extracted text before anything reads them: the text the
    client gets back, and every offset into it, is this one."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub("", text.translate(_BREAKS))


# Roughly how spaCy's tokenizer splits: words, each punctuation mark, line breaks and runs of
# spaces (each its own token); an overestimate where spaCy keeps marks together ("...").
_TOKEN = re.compile(r"\w+|\s*\n\s*|\s\s+|[^\w\s]")
_LAST_SPACE = re.compile(r"\s\S*\Z")


def analyzed_part(text: str, max_chars: int, max_tokens: int) -> str:
    """The first part of ``text`` that entities, keyphrases and the embedding are computed from:
    at most ``max_chars`` characters and about ``max_tokens`` spaCy tokens, cut before a word
    that would be split (unless the part is one word). A prefix, so offsets into it are offsets
    into ``text``."""
    end = min(len(text), max_chars)
    for i, m in enumerate(_TOKEN.finditer(text, 0, end)):
        if i == max_tokens:
            end = m.start()
            break
    if end >= len(text):
        return text
    if not text[end].isspace():
        m = _LAST_SPACE.search(text, max(0, end - 200), end)
        if m and text[: m.start()].strip():
            end = m.start()
    return text[:end].rstrip()


_DEFAULTS = Settings()


class Analyzer:
    """Runs the CPU stages; thread-safe, used from worker threads.

    The work is bounded by input size, not by time (a thread cannot be stopped): extraction reads
    at most ``max_html_elements`` nodes of a page, and the language stages at most
    :func:`analyzed_part` of the text. :attr:`extracted` and :attr:`analyzed` count the pages and texts that went through the
    stages (what request coalescing saves shows there)."""

    def __init__(
        self,
        models: Models,
        *,
        max_chars: int = _DEFAULTS.max_analysis_chars,
        max_tokens: int = _DEFAULTS.max_analysis_tokens,
        max_html_elements: int = _DEFAULTS.max_html_elements,
    ) -> None:
        self.models = models
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.max_html_elements = max_html_elements
        self.analyzed = 0
        self.extracted = 0
        self._count_lock = threading.Lock()
        # A second thread per analysis: the document embedding runs beside spaCy.
        self._side = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-doc", initializer=name_os_thread)

    def extract(self, *, url: str, html: str | None, text: str | None, title: str | None) -> Any:
        with self._count_lock:
            self.extracted += 1
        title = clean_text(title) if title else title
        if text is not None:
            text = clean_text(text)
            if not text.strip():
                raise errors.InvalidInput("text is empty")
            return Article(title=(title or "").strip() or None, language=detect_language(text), text=text)

        assert html is not None
        article = extract_article(html, url, max_elements=self.max_html_elements)
        changes: dict[str, Any] = {}
        if _CONTROL.search(article.text):
            changes["text"] = clean_text(article.text)
        if article.title and _CONTROL.search(article.title):
            changes["title"] = clean_text(article.title)
        if title and not article.title:
            changes["title"] = title.strip()
        return msgspec.structs.replace(article, **changes) if changes else article

    def analyze(self, title: str | None, full_text: str) -> Analysis:
        """Entities, keyphrases and the document embedding of a story's title and text."""
        timings: dict[str, float] = {}
        if len(full_text) > MAX_TEXT_CHARS:
            raise errors.PayloadTooLarge(f"article text is longer than {MAX_TEXT_CHARS:,} characters")
        with self._count_lock:
            self.analyzed += 1
        # A longer text is summarised by its first part: spaCy's time grows with the text.
        text = analyzed_part(full_text, self.max_chars, self.max_tokens)
        embedding_future = self._side.submit(self.models.embedder.embed_document, embedding_text(title, text))
        t = time.perf_counter()
        job = self.models.language.start(text, title)  # the spaCy processes: tagger | NER
        candidates = job.candidates()
        t_kp = time.perf_counter()
        # Embedding and ranking the candidates overlaps NER in its own process.
        doc_embedding = embedding_future.result()
        keyphrases = self.models.keyphraser.extract_from(
            candidates, text, title, top_n=10, doc_embedding=doc_embedding
        )
        timings["keyphrases"] = _ms(t_kp)
        entities = job.entities()
        timings["entities"] = _ms(t)
        return Analysis(
            keyphrases=keyphrases,
            entities=entities,
            embedding=[float(x) for x in doc_embedding],
            timings=timings,
        )

    def close(self) -> None:
        self._side.shutdown(wait=False, cancel_futures=True)


def _over_deadline(limit: float) -> errors.Unavailable:
    return errors.Unavailable(
        f"the analysis took longer than its {limit:g} s deadline (BACKSTORY_ANALYSIS_DEADLINE); "
        "nothing was stored; try again when the server is less busy"
    )


def _retrieve(future: asyncio.Future) -> None:
    """Mark a finished future's error as seen: one whose waiters have all gone is not an error
    to log at exit."""
    if not future.cancelled():
        future.exception()


class ResponseCache:
    """A small LRU of finished analyses keyed by URL + content hash (repeat clicks are instant)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        # A story's related list with the archive generation it was computed at: a repeat click
        # reuses it while the archive has not changed (the lookup is most of a cache hit's time).
        self._related: OrderedDict[tuple[str, str], tuple[int, list]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(url: str, html: str | None, text: str | None, title: str | None) -> str:
        h = hashlib.blake2b(digest_size=16)
        for part in (url, "\x00h" if html is not None else "\x00t", html or text or "", "\x00", title or ""):
            h.update(part.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def get(self, key: str) -> Any:
        with self._lock:
            record = self._items.get(key)
            if record is not None:
                self._items.move_to_end(key)
            return record

    def put(self, key: str, record: Any) -> None:
        with self._lock:
            self._items[key] = record
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def related(self, record: Any, generation: int) -> list | None:
        with self._lock:
            hit = self._related.get((record.story_id, record.content_hash))
            return hit[1] if hit is not None and hit[0] == generation else None

    def put_related(self, record: Any, generation: int, related: list) -> None:
        with self._lock:
            key = (record.story_id, record.content_hash)
            self._related[key] = (generation, related)
            self._related.move_to_end(key)
            while len(self._related) > self.size:
                self._related.popitem(last=False)

    def discard_story(self, story_id: str) -> None:
        with self._lock:
            for key in [k for k, r in self._items.items() if r.story_id == story_id]:
                del self._items[key]
            for key in [k for k in self._related if k[0] == story_id]:
                del self._related[key]


class Pipeline:
    """The analyze use case: request in, Sidebar out; shared by the API, the CLI and the scripts.

    ``models`` may be None for a store-only pipeline (a bulk import that leaves the analysis to
    the server): only :meth:`ingest` with ``analyze=False`` works then.
    """

    def __init__(self, settings: Settings, models: Models, archive: Any) -> None:
        self.settings = settings
        self.analyzer = Analyzer(
            models,
            max_chars=settings.max_analysis_chars,
            max_tokens=settings.max_analysis_tokens,
            max_html_elements=settings.max_html_elements,
        )
        self.archive = archive
        self.cache = ResponseCache()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="analyze", initializer=name_os_thread
        )
        self._slots = asyncio.Semaphore(settings.workers)
        self.active = 0  # analyses for a client, running or queued
        self.backlog_wake = asyncio.Event()
        self._inflight: dict[tuple, asyncio.Future] = {}  # analyses under way, by request (see _coalesced)

    def _idle(self) -> bool:
        return not self.active

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def analyze(self, request: AnalyzeRequest) -> Sidebar:
        """Analyze one page or text; archive it unless asked not to; add the related stories."""
        started = time.perf_counter()
        record, stages, cached = await self._process(request)
        t = time.perf_counter()
        generation = getattr(self.archive, "generation", None)  # read before the lookup, never after
        related = self.cache.related(record, generation) if cached and generation is not None else None
        if related is None:
            related = await self.archive.related(record, limit=10)
            if generation is not None:
                self.cache.put_related(record, generation, related)
        timings = Timings(**stages, related=_ms(t), total=_ms(started))
        # A page the reader chose not to keep may still be a copy of a story the archive holds.
        archived = request.archive or await self.archive.get(record.story_id) is not None
        return to_sidebar(record, related, timings=timings, archived=archived, cached=cached)

    async def ingest(self, request: AnalyzeRequest, *, published: str | None = None, analyze: bool = True) -> Any:
        """Archive one story (bulk import): no related lookup. With ``analyze=False`` only the
        cheap part runs now (extraction, language, hashes, the words the related search reads)
        and the story is stored as pending: :meth:`analyze_stored` completes it later."""
        if analyze:
            record, _, _ = await self._process(request, published=published)
            return record
        url = _checked_url(request)
        if request.html is None and request.text is None:
            raise errors.InvalidInput("a stored-for-later story needs its html or text")
        article = await self._run(self.analyzer.extract, url=url, html=request.html, text=request.text, title=request.title)
        if published:
            article = msgspec.structs.replace(article, published=published)
        if len(article.text) > MAX_TEXT_CHARS:
            raise errors.PayloadTooLarge(f"article text is longer than {MAX_TEXT_CHARS:,} characters")
        record = new_story(article, url=url, canonical_url=identity_url(article.canonical_url, url), analysed=False)
        stored = await self.archive.upsert(record)
        self.backlog_wake.set()
        return stored

    async def analyze_stored(self, record: Any) -> Any:
        """Compute what a pending story lacks (entities, keyphrases, embedding) and store it in
        place; returns the completed record, or None when the story was deleted meanwhile."""
        async with self._slots:
            analysis = await self._run(self.analyzer.analyze, record.title, record.text)
        done = msgspec.structs.replace(
            record, keyphrases=analysis.keyphrases, entities=analysis.entities, embedding=analysis.embedding,
            analysed=True,
        )
        stored = await self.archive.store_analysis(done)
        self.cache.discard_story(record.story_id)
        return done if stored else None

    async def _process(
        self, request: AnalyzeRequest, *, published: str | None = None
    ) -> tuple[Any, dict[str, float], bool]:
        url = _checked_url(request)
        html, text, final_url = request.html, request.text, url
        stages: dict[str, float] = {}
        if html is None and text is None:
            from .fetch import fetch_page

            t = time.perf_counter()
            page = await fetch_page(url, self.settings)
            html = decode_html(page.body, page.content_type)
            final_url = page.final_url
            stages["fetch"] = _ms(t)

        key = ResponseCache.key(final_url, html, text, request.title)
        record = self.cache.get(key)
        if record is not None:
            if request.archive and await self.archive.get(record.story_id) is None:
                record = await self._keep(record)
            return record, stages, True

        async def analyze(check_deadline: Any) -> tuple[Analysis, Any, dict[str, float]]:
            extracted: dict[str, float] = {}
            t = time.perf_counter()
            article = await self._run(
                self.analyzer.extract, url=final_url, html=html, text=text, title=request.title
            )
            extracted["extract"] = _ms(t)
            check_deadline()  # past it the waiters have had their 503: no language stages
            if published:
                article = msgspec.structs.replace(article, published=published)
            canonical = identity_url(article.canonical_url, final_url)
            # The record (its hashes read the whole text) is built in the worker thread too.
            analysis, record = await self._run(self._analyze_new, article, url=url, canonical_url=canonical)
            return analysis, record, extracted

        # Identical requests in flight share one analysis; each then stores and answers on its own.
        analysis, record, extracted = await self._coalesced((key, url, published), analyze)
        stages.update(extracted)
        stages.update(analysis.timings)
        if request.archive:
            record = await self._keep(record)
        else:  # the story it would be stored as, by the archive's own rule
            duplicate = await self.archive.find_duplicate(record.canonical_url, record.simhash, record.text)
            if duplicate is not None:
                record = msgspec.structs.replace(record, story_id=duplicate)
        self.cache.put(key, record)
        return record, stages, False

    async def _keep(self, record: Any) -> Any:
        """Archive the reader's page; returns it under the id of the story it is stored as. A copy
        of a stored story joins it as another source and leaves it as it was, so the reader's own
        text, names and offsets are what the sidebar shows, not the stored story's."""
        stored = await self.archive.upsert(msgspec.structs.replace(record, story_id=story_id_for(record.canonical_url)))
        return msgspec.structs.replace(record, story_id=stored.story_id)

    async def _coalesced(self, key: tuple, work: Any) -> Any:
        """``work``'s result, run once for all identical requests in flight (``key``: the response
        cache's key, the request's URL and date). The second to last caller waits for the first's
        analysis and gets its result or its error; a caller that goes away (its client
        disconnected) stops waiting, and the analysis goes on for the others."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._bounded(work))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._inflight.pop(key, None) if self._inflight.get(key) is done else None)
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _bounded(self, work: Any) -> Any:
        """Run ``work`` in a worker slot, within ``settings.analysis_deadline`` from its start.

        Past the deadline the waiters get 503 at once and nothing is stored (storing comes after).
        A thread cannot be stopped, so the work ends at its next stage boundary (``work`` gets a
        function to call there) and keeps its slot, and the backlog waiting, until it has."""
        self.active += 1  # readers first: the backlog waits while this is above zero
        try:
            await self._slots.acquire()
        except BaseException:
            self._analysis_ended(None)
            raise
        limit = self.settings.analysis_deadline
        deadline = time.monotonic() + limit

        def check_deadline() -> None:
            if time.monotonic() > deadline:
                raise _over_deadline(limit)

        inner = asyncio.ensure_future(work(check_deadline))
        inner.add_done_callback(self._slot_freed)
        try:
            return await asyncio.wait_for(asyncio.shield(inner), limit)
        except asyncio.TimeoutError:
            log.warning("an analysis took longer than its %g s deadline; its client got 503", limit)
            raise _over_deadline(limit) from None

    def _slot_freed(self, inner: asyncio.Future) -> None:
        self._slots.release()
        self._analysis_ended(inner)

    def _analysis_ended(self, inner: asyncio.Future | None) -> None:
        if inner is not None:
            _retrieve(inner)
        self.active -= 1
        if not self.active:  # idle: hand the request's freed heap back (rate-limited)
            try:
                self._pool.submit(release_soon, TRIM_INTERVAL, self._idle)
            except RuntimeError:  # shutting down
                pass

    def _analyze_new(self, article: Article, *, url: str, canonical_url: str) -> tuple[Analysis, StoryRecord]:
        analysis = self.analyzer.analyze(article.title, article.text)
        # The record's fingerprints read the whole text: built here, in the worker thread, too.
        return analysis, new_story(article, url=url, canonical_url=canonical_url, keyphrases=analysis.keyphrases,
                                   entities=analysis.entities, embedding=analysis.embedding)

    async def run_backlog(
        self, *, batch: int = 16, parallel: int = 2, idle_poll: float = 0.1, wait: float = 30.0
    ) -> None:
        """Analyze pending stories (stored by a bulk import), forever, yielding to readers: a
        story starts only while no client analysis is running or queued, and at most
        ``parallel`` are in flight (two keep both cores busy: spaCy's process and this one).
        Wakes up when :attr:`backlog_wake` is set (an import in this process) or every ``wait``
        seconds (an import by another process). A story that fails is logged and skipped until
        restart."""
        failed: set[str] = set()
        inflight: set[asyncio.Task] = set()

        async def one(record: Any) -> None:
            try:
                await self.analyze_stored(record)
            except Exception:  # noqa: BLE001 - one bad story must not stop the backlog
                log.exception("analyzing stored story %s failed; skipped until restart", record.story_id)
                failed.add(record.story_id)

        try:
            while True:
                records = [r for r in await self.archive.pending(limit=batch + len(failed)) if r.story_id not in failed]
                if not records:
                    self.backlog_wake.clear()
                    try:
                        await asyncio.wait_for(self.backlog_wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                    continue
                for record in records[:batch]:
                    while self.active:
                        await asyncio.sleep(idle_poll)
                    if len(inflight) >= parallel:
                        _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    inflight.add(asyncio.create_task(one(record)))
                if inflight:  # the next batch is read once these are stored
                    await asyncio.wait(inflight)
                    inflight.clear()
        finally:
            for task in inflight:
                task.cancel()

    async def forget(self, story_id: str) -> bool:
        self.cache.discard_story(story_id)
        return await self.archive.delete(story_id)

    def close(self, *, models: bool = False) -> None:
        """Stop the worker threads (and the models too, when this pipeline owns them)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.analyzer.close()
        if models and self.analyzer.models is not None:
            self.analyzer.models.close()
