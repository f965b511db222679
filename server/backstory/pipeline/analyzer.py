"""The CPU stages of an analysis: extraction, then the language stages (entities, keyphrases and
the document embedding), each on a bounded input. They run in worker threads, never on the loop."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from .. import errors
from ..config import Settings
from ..extract import Article, detect_language, extract_article
from ..schemas import MAX_TEXT_CHARS, Entity, Keyphrase
from ..story import embedding_text
from ..threads import name_os_thread
from .models import Models


def ms_since(start: float) -> float:
    """Milliseconds since ``start`` (a :func:`time.perf_counter` reading), as the timings report them."""
    return round((time.perf_counter() - start) * 1000, 2)


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
        space = _LAST_SPACE.search(text, max(0, end - 200), end)
        if space and text[: space.start()].strip():
            end = space.start()
    return text[:end].rstrip()


_DEFAULTS = Settings()


class Analyzer:
    """Runs the CPU stages; thread-safe, used from worker threads.

    The work is bounded by input size, not by time (a thread cannot be stopped): extraction reads
    at most ``max_html_elements`` nodes of a page, and the language stages at most
    :func:`analyzed_part` of the text. :attr:`extracted` and :attr:`analyzed` count the pages and
    texts that went through the stages (what request coalescing saves shows there).

    ``models`` is None for a store-only pipeline: then only :meth:`extract` works."""

    def __init__(
        self,
        models: Models | None,
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

    def extract(self, *, url: str, html: str | None, text: str | None, title: str | None) -> Article:
        """The article of a page (``html``) or of a client's ``text``, without control characters."""
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
        changes: dict[str, str] = {}
        if _CONTROL.search(article.text):
            changes["text"] = clean_text(article.text)
        if article.title and _CONTROL.search(article.title):
            changes["title"] = clean_text(article.title)
        if title and not article.title:
            changes["title"] = title.strip()
        return msgspec.structs.replace(article, **changes) if changes else article

    def analyze(self, title: str | None, full_text: str) -> Analysis:
        """Entities, keyphrases and the document embedding of a story's title and text."""
        models = self.models
        if models is None:
            raise RuntimeError("a store-only pipeline has no models to analyze with")
        timings: dict[str, float] = {}
        if len(full_text) > MAX_TEXT_CHARS:
            raise errors.PayloadTooLarge(f"article text is longer than {MAX_TEXT_CHARS:,} characters")
        with self._count_lock:
            self.analyzed += 1
        # A longer text is summarised by its first part: spaCy's time grows with the text.
        text = analyzed_part(full_text, self.max_chars, self.max_tokens)
        embedding_future = self._side.submit(models.embedder.embed_document, embedding_text(title, text))
        t = time.perf_counter()
        job = models.spacy.start(text, title)  # the spaCy processes: tagger | NER
        candidates = job.candidates()
        t_kp = time.perf_counter()
        # Embedding and ranking the candidates overlaps NER in its own process.
        doc_embedding = embedding_future.result()
        keyphrases = models.keyphraser.extract_from(candidates, text, title, top_n=10, doc_embedding=doc_embedding)
        timings["keyphrases"] = ms_since(t_kp)
        entities = job.entities()
        timings["entities"] = ms_since(t)
        return Analysis(
            keyphrases=keyphrases,
            entities=entities,
            embedding=[float(x) for x in doc_embedding],
            timings=timings,
        )

    def close(self) -> None:
        self._side.shutdown(wait=False, cancel_futures=True)
