"""Article extraction: clean text and facts from a news page (the only package importing trafilatura).

``extract_article(html, url)`` parses the page once into a bounded tree (:mod:`.parse`), runs
trafilatura in precision mode (no comments), removes what is still not the story
(:mod:`.cleanup`) and reads the page's facts (:mod:`.metadata`: dates without trafilatura's
"extensive" guessing, the canonical URL from ``<link rel=canonical>`` or ``og:url``, the
language from the text, else ``<html lang>``). ``decode_html(body, content_type)``
(:mod:`.decode`) turns fetched bytes into text.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, NamedTuple

import msgspec

from ..errors import InvalidInput, NotAnArticle
from .cleanup import _WORD, Cleanup, _page_links
from .decode import decode_html
from .metadata import (
    _byline,
    _canonical,
    _clean_meta,
    _date,
    _html_lang,
    _json_ld_headline,
    _site_name,
    _title,
    detect_language,
)
from .metadata import _clearly_english  # noqa: F401 - still importable from here, as before the split
from .parse import _drop_after, _flatten_deep, _load

__all__ = ["Article", "decode_html", "detect_language", "extract_article", "is_article_text", "page_cleanup", "warm_up", "MAX_HTML_CHARS", "MAX_HTML_ELEMENTS"]

MAX_HTML_CHARS = 12_000_000
"""Longer input is cut here (the API body limit is 10 MB; a fetched page at most 5 MB)."""
MAX_HTML_ELEMENTS = 8_000
"""Nodes of a page read by default (the server passes ``Settings.max_html_elements``)."""
_MIN_TEXT_CHARS = 80
_MIN_WORDS = 15


class Article(msgspec.Struct, kw_only=True, frozen=True):
    """What the page says about itself; every field is None when the page does not say."""

    text: str  # paragraphs separated by a blank line
    title: str | None = None
    byline: str | None = None
    site_name: str | None = None
    published: str | None = None  # YYYY-MM-DD
    language: str | None = None  # ISO 639-1
    canonical_url: str | None = None


_COMPARE_BELOW_CHARS = 1000
"""trafilatura's own extraction is compared with its readability and jusText fallbacks only when
its text is shorter than this (4 × trafilatura's minimum extracted size) or looks deficient."""


def _trafilatura(tree, url: str, *, fast: bool, with_metadata: bool):
    import trafilatura

    return trafilatura.bare_extraction(
        tree,  # trafilatura works on a copy: the tree can be passed again
        url=url,
        fast=fast,
        favor_precision=True,
        with_metadata=with_metadata,
        include_comments=False,
        include_tables=True,
        date_extraction_params={"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d"},
    )


def _worth_comparing(body, text: str) -> bool:
    """Whether trafilatura's fallback comparison could change this extraction.

    The comparison (readability, then jusText) costs time on every page it runs for, and it only
    replaces the own extraction when that is short, has no paragraph text, is mostly tables or
    kept page chrome. So it runs for extractions like those, not for every page (the figures are
    in docs/benchmarks.md).
    """
    if len(text) < _COMPARE_BELOW_CHARS:
        return True
    paragraphs = body.findall(".//p")
    if not paragraphs or not any(t.strip() for p in paragraphs for t in p.itertext()):
        return True
    from trafilatura.external import SANITIZED_XPATH  # what makes trafilatura call an extraction unclean

    return len(body.findall(".//table")) > len(paragraphs) or bool(body.xpath(SANITIZED_XPATH))


_LXML = threading.Lock()
"""One page at a time through lxml, in a server that extracts in several threads.

libxml2's documents share string dictionaries and trafilatura parses with one module-level
parser, so two threads building, copying or freeing trees at once can corrupt the heap (it
did: "double free or corruption" aborts; see docs/benchmarks.md). Extraction holds the GIL for
nearly all of its time anyway, so the lock costs little parallelism."""


def extract_article(html: str, url: str, *, max_elements: int = MAX_HTML_ELEMENTS) -> Article:
    """Extract the story on ``html`` (served at ``url``).

    Raises ``InvalidInput`` for input that is not text and ``NotAnArticle`` when the page has no
    article text (empty, not HTML, or only navigation). Only the first ``max_elements`` nodes of
    the page are read. Thread-safe: see ``_LXML``.
    """
    with _LXML:
        try:
            return _extract_article(html, url, max_elements)  # its trees are freed on return, still under the lock
        except BaseException as exc:
            # The traceback's frames hold the trees: free them before the lock is let go.
            traceback.clear_frames(exc.__traceback__)
            raise


def page_cleanup(html: str, url: str) -> Cleanup | None:
    """The clean-up of ``html`` before any rule is applied (None: no article text), for the
    evaluation, which weighs the clean-up's rules one by one (``Cleanup.text(rules)``; keep only
    the texts that :func:`is_article_text` accepts)."""
    with _LXML:
        try:
            page = _read_page(html, url, MAX_HTML_ELEMENTS)
            return Cleanup(page.doc.body, _titles(page), page.links, page.url)
        except NotAnArticle:
            return None
        except BaseException as exc:
            traceback.clear_frames(exc.__traceback__)
            raise


def is_article_text(text: str) -> bool:
    """Whether a cleaned-up text is long enough to be an article."""
    return len(text) >= _MIN_TEXT_CHARS and len(_WORD.findall(text)) >= _MIN_WORDS


class _Page(NamedTuple):
    """What extraction read from a page before the clean-up."""

    doc: Any  # trafilatura's Document
    links: list[tuple[str, str]]
    headline: str | None
    canonical: str | None
    page_lang: str | None
    url: str


def _extract_article(html: str, url: str, max_elements: int = MAX_HTML_ELEMENTS) -> Article:
    return _article(_read_page(html, url, max_elements))


def _read_page(html: str, url: str, max_elements: int) -> _Page:
    if not isinstance(html, str) or not isinstance(url, str):
        raise InvalidInput("html and url must be strings")
    if len(html) > MAX_HTML_CHARS:
        html = html[:MAX_HTML_CHARS]
    html = html.replace("\x00", "")
    if not html.strip():
        raise NotAnArticle("the page is empty")

    tree = _load(html)
    if tree is None or len(tree) == 0:
        raise NotAnArticle("the page is not readable HTML")
    _flatten_deep(tree)
    _drop_after(tree, max_elements)
    # Read what trafilatura's cleaning removes (scripts, link targets) before it runs.
    canonical = _canonical(tree, url)
    links = _page_links(tree)
    page_lang = _html_lang(tree)
    headline = _json_ld_headline(tree)
    try:
        doc = _trafilatura(tree, url, fast=True, with_metadata=True)
        if doc is None or doc.body is None or _worth_comparing(doc.body, doc.text or ""):
            full = _trafilatura(tree, url, fast=False, with_metadata=doc is None)
            if full is not None and full.body is not None:
                if doc is not None:  # the metadata does not depend on the text's extraction
                    doc.body, doc.text = full.body, full.text
                else:
                    doc = full
    except (RecursionError, ValueError, TypeError, AttributeError, IndexError, AssertionError) as exc:
        # AssertionError: lxml asserts on a tree its callers (trafilatura, htmldate) broke
        raise NotAnArticle(f"the page could not be read ({type(exc).__name__})") from None
    if doc is None or doc.body is None:
        raise NotAnArticle("no article text found on the page")
    return _Page(doc, links, headline, canonical, page_lang, url)


def _titles(page: _Page) -> tuple[str | None, ...]:
    """The page's title as shown, as trafilatura read it, and its JSON-LD headline."""
    doc = page.doc
    return (_title(doc.title, _site_name(doc, page.url)) or _clean_meta(page.headline), doc.title, page.headline)


def _article(page: _Page) -> Article:
    doc = page.doc
    titles = _titles(page)
    text = Cleanup(doc.body, titles, page.links, page.url).text()
    if not is_article_text(text):
        raise NotAnArticle("no article text found on the page")
    return Article(
        title=titles[0],
        byline=_byline(doc.author),
        site_name=_site_name(doc, page.url),
        published=_date(doc.date),
        language=detect_language(text) or page.page_lang,
        text=text,
        canonical_url=page.canonical,
    )


def warm_up() -> None:
    """Import trafilatura and load its word lists (once: they take a while).

    Call at server start so the first reader does not wait.
    """
    sample = "<html><body><article>" + "".join(
        f"<p>The committee met on day {i} and agreed on a new plan for the town and its schools.</p>" for i in range(6)
    )
    try:
        extract_article(sample + "</article></body></html>", "https://example.org/warm-up")
    except NotAnArticle:  # pragma: no cover - the sample is an article
        pass
