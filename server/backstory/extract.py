"""Article extraction: clean text and facts from a news page (the only trafilatura import).

``extract_article(html, url)`` runs trafilatura in precision mode (no comments) on one parse,
then removes what is still not the story: the headline repeated as the first paragraph,
paragraphs and lists that are nothing but links to other stories of the same site, labels
("DON'T MISS", "[VIDEO]") and newsletter / follow-us / tip-line boxes. Text trafilatura leaves
between its blocks is kept, ``<br>`` becomes a line break. Metadata comes from trafilatura
(dates without its "extensive" guessing), the canonical URL from ``<link rel=canonical>`` or
``og:url``, the language from the text (English by its function words, other languages by
py3langid; else ``<html lang>``).
``decode_html(body, content_type)`` turns fetched bytes into text.
"""

from __future__ import annotations

import codecs
import json
import re
import threading
import traceback
import unicodedata
from urllib.parse import urljoin, urlsplit

import msgspec
from lxml import etree

from .errors import InvalidInput, NotAnArticle

__all__ = ["Article", "decode_html", "detect_language", "extract_article", "warm_up", "MAX_HTML_CHARS", "MAX_HTML_ELEMENTS"]

MAX_HTML_CHARS = 12_000_000
"""Longer input is cut here (the API body limit is 10 MB; a fetched page at most 5 MB)."""
MAX_HTML_ELEMENTS = 8_000
"""Nodes of a page read by default (the server passes ``Settings.max_html_elements``)."""
_MAX_DEPTH = 80
_MIN_TEXT_CHARS = 80
_MIN_WORDS = 15


class Article(msgspec.Struct, kw_only=True, frozen=True):
    """What the page says about itself; every field is None when the page does not say."""

    title: str | None
    byline: str | None
    site_name: str | None
    published: str | None  # YYYY-MM-DD
    language: str | None  # ISO 639-1
    text: str  # paragraphs separated by a blank line
    canonical_url: str | None


# --------------------------------------------------------------------------- decoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        found = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    # Browsers read "latin-1" and "ascii" labels as windows-1252 (WHATWG encoding standard).
    return "cp1252" if found in ("latin-1", "iso8859-1", "ascii") else found


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode a fetched page: BOM, then the header's charset, then ``<meta charset>``, then UTF-8.

    Undecodable bytes become U+FFFD; this never raises on bad input.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidInput("page body must be bytes")
    body = bytes(body)
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace")
    candidates = []
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        if m:
            candidates.append(m.group(1))
    m = _META_CHARSET.search(body[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "replace"))
    for name in candidates:
        codec = _codec(name)
        if codec and not codec.startswith("utf-16"):  # a utf-16 label on bytes without BOM is a lie
            try:
                return body.decode(codec)
            except UnicodeDecodeError:
                if codec != "utf-8":
                    return body.decode(codec, errors="replace")
                break
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- page metadata


def _http_url(value: str | None, base: str) -> str | None:
    if not value:
        return None
    value = value.strip()
    try:
        absolute = urljoin(base, value)
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return absolute


def _canonical(tree, url: str) -> str | None:
    for xp in ('//link[@rel and @href]', '//meta[@property="og:url" or @name="og:url"][@content]'):
        for el in tree.xpath(xp):
            if el.tag == "link":
                if "canonical" not in (el.get("rel") or "").lower().split():
                    continue
                found = _http_url(el.get("href"), url)
            else:
                found = _http_url(el.get("content"), url)
            if found:
                return found
    return None


def _html_lang(tree) -> str | None:
    for el in tree.xpath("/html|//html")[:1]:
        lang = (el.get("lang") or el.get("{http://www.w3.org/XML/1998/namespace}lang") or "").strip()
        m = re.match(r"^([a-zA-Z]{2})(?:[-_]|$)", lang)
        if m:
            return m.group(1).lower()
    return None


# Words that make up a third or more of any English news text and almost nothing in other
# languages ("the" alone is 4-7% of English words). A text this English is "en" without
# py3langid's model (~30 MB resident, see language.py), then loaded only for the first page that
# is not.
_ENGLISH = frozenset(
    "the of and to a in that is was for on with as by it he she his her at from be have has had "
    "were are this which or an not but they their said will would been who its after than more "
    "about also when there we i you our one all two new up out into over".split()
)
_ENGLISH_SHARE = 0.30
_THE_SHARE = 0.025


def _clearly_english(words: list[str]) -> bool:
    lower = [w.lower() for w in words]
    n = len(lower)
    return sum(w in _ENGLISH for w in lower) >= _ENGLISH_SHARE * n and lower.count("the") >= _THE_SHARE * n


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``, or None when the text is too short to tell.

    Plainly English text is recognised by its function words; anything else goes to py3langid's
    model (:mod:`backstory.language`, loaded on first use)."""
    sample = text[:3000]
    words = re.findall(r"\w+", sample)
    if len(words) < 12:
        return None
    if _clearly_english(words):
        return "en"
    from .language import identifier

    lang, prob = identifier().classify(sample)
    return str(lang) if prob >= 0.5 else None


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def _date(value: str | None) -> str | None:
    m = _DATE.match(value or "")
    if not m:
        return None
    y, mo, d = (int(g) for g in m.groups())
    if 1990 <= y <= 2100 and 1 <= mo <= 12 and 1 <= d <= 31:
        return m.group(0)
    return None


def _clean_meta(value: str | None, limit: int = 300) -> str | None:
    if not value:
        return None
    value = re.sub(r"\s+", " ", value).strip()
    return value[:limit] or None


_TITLE_SEP = re.compile(r"\s+[|\-–—:·•]\s+")


def _title(value: str | None, site: str | None) -> str | None:
    """The headline without a trailing " | Site Name" / " - Site Name"."""
    title = _clean_meta(value)
    if not title or not site:
        return title
    parts = _TITLE_SEP.split(title)
    if len(parts) > 1 and _norm(parts[-1]) in (_norm(site), _norm(site.split(".")[0])):
        cut = title[: title.rfind(parts[-1])]
        cut = re.sub(r"\s+[|\-–—:·•]\s*$", "", cut).strip()
        return cut or title
    return title


def _byline(value: str | None) -> str | None:
    byline = _clean_meta(value, 200)
    if byline:
        byline = re.sub(r"^(?:by|von|par|por)\s+", "", byline, flags=re.I)
        byline = re.sub(r"\s+(?:published|updated|posted)\b.*$", "", byline, flags=re.I).strip()
    return byline or None


def _site_name(doc, url: str) -> str | None:
    name = _clean_meta(doc.sitename, 120) if doc is not None else None
    if name and not name.startswith(("http://", "https://")):
        return name
    host = doc.hostname if doc is not None else None
    if not host:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
    host = host or ""
    host = host.lower()
    return (host[4:] if host.startswith("www.") else host) or None


# --------------------------------------------------------------------------- body cleanup

_WORD = re.compile(r"\w+")
_BOILER = re.compile(
    r"""^\W*(?:
        (?:see|read|watch|view)\s+(?:more|also|next)\b | related\b | more\s*: | also\s+read\b |
        don'?t\s+miss\b | recommended\b | trending\b | most\s+popular\b | top\s+stories\b |
        sign\s+up\b | subscribe\b | get\s+(?:the\s+latest|our|access)\b | have\s+a\s+tip\b |
        tell\s+us\s+what\b | share\s+(?:this|on)\b | advertisement\b | sponsored\b |
        follow\s+(?:us|him|her|them|newsbeat|@)\b | listen\s+to\b.*\blive\b | (?:\d+\s+)?comments?\W*$ |
        copyright\b | ©
    )""",
    re.I | re.X,
)
_BOILER_ANYWHERE = re.compile(
    r"""(?:newsletter|all\s+rights\s+reserved|may\s+be\s+reached\s+at|follow\s+(?:us|him|her|them)\s+on\s+(?:twitter|facebook|instagram)
        |delivered\s+(?:through|to)\s+your\s+(?:letterbox|inbox)|\[/?button\b|©)""",
    re.I | re.X,
)
_LABEL = re.compile(
    r"^[\W_]*(?:video|insight|reaction|watch|photos?|gallery|listen|more|live|trending|opinion|analysis|ad|"
    r"advertisement|related|don'?t miss|must see|exclusive|breaking)[\W_]*$",
    re.I,
)
_PRUNE = (
    "//*[contains(@class,'rollover-people-block') or contains(@class,'tooltip') or contains(@class,'popover')"
    " or contains(@class,'hovercard')]"
)


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


_TAG_SUFFIX = re.compile(r"\s*\[?\s*[A-Z]{3,}\s*\]?\W*$")


def _link_key(text: str) -> str:
    """A block's text as a link text: without a trailing "[VIDEO]"-style tag."""
    return _norm(_TAG_SUFFIX.sub("", text) if text.rstrip().endswith(("]", "]|")) else text)


def _text_of(el) -> str:
    """An output block's text; ``<lb/>`` (a ``<br>`` in the page) becomes a line break."""
    parts = []
    for event, node in etree.iterwalk(el, events=("start", "end")):
        if event == "start":
            if node.tag == "lb":
                parts.append("\n")
            elif node.text:
                parts.append(node.text)
        elif node is not el and node.tail:
            parts.append(node.tail)
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parts))
    return re.sub(r" *\n[\s]*", "\n", text).strip()


def _site_key(host: str) -> str:
    parts = host.lower().rstrip(".").split(".")
    return ".".join(parts[-3:] if len(parts) > 2 and len(parts[-1]) == 2 and len(parts[-2]) <= 3 else parts[-2:])


def _page_links(tree) -> list[tuple[str, str]]:
    """(text, href) of the page's links, read before trafilatura's cleaning drops them."""
    out = []
    for a in tree.iter("a"):
        href = a.get("href")
        if href and not href.startswith(("#", "javascript:", "mailto:")):
            out.append(("".join(a.itertext()), href))
    return out


def _story_link_texts(links: list[tuple[str, str]], url: str, wanted: set[str]) -> set[str]:
    """Which of the ``wanted`` texts are links to other stories of the same site.

    A paragraph or list that is nothing but such a link is a "related story" teaser.
    """
    out: set[str] = set()
    if not wanted:
        return out
    try:
        site = _site_key(urlsplit(url).hostname or "")
    except ValueError:
        return out
    for text, href in links:
        if len(text) < 3:
            continue
        key = _norm(text)
        if key not in wanted or key in out:
            continue
        try:
            parts = urlsplit(urljoin(url, href.strip()))
        except ValueError:
            continue
        if parts.hostname and _site_key(parts.hostname) == site and len(parts.path.rstrip("/")) >= 12:
            out.add(key)
    return out


class _Block:
    __slots__ = ("text", "words", "link_only", "kind")

    def __init__(self, text: str, link_only: bool, kind: str) -> None:
        self.text = text
        self.words = len(_WORD.findall(text))
        self.link_only = link_only
        self.kind = kind


def _loose(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _blocks(body, links: list[tuple[str, str]], url: str) -> list[_Block]:
    wanted = set()
    for el in body.iter("p", "item", "head"):
        text = _text_of(el)
        if len(text) < 300:
            wanted.add(_link_key(text))
            wanted.update(_link_key(line) for line in text.split("\n"))
    anchors = _story_link_texts(links, url, wanted)
    out: list[_Block] = []
    if _loose(body.text):
        out.append(_Block(_loose(body.text), False, "p"))
    for el in body:
        _element_blocks(el, anchors, out)
        if _loose(el.tail):  # text trafilatura left between blocks
            out.append(_Block(_loose(el.tail), False, "p"))
    return out


def _element_blocks(el, anchors: set[str], out: list[_Block]) -> None:
    if el.tag == "list":
        items = [it for it in el.iter("item")]
        texts = [_text_of(it) for it in items]
        links = [bool(t) and _link_key(t) in anchors for t in texts]
        if len(items) >= 2 and sum(links) == len(items) and sum(len(_WORD.findall(t)) for t in texts) >= 4 * len(items):
            return  # a list of links: "related stories", share buttons
        for it, t, lo in zip(items, texts, links):
            if t:
                out.append(_Block(t, lo, "item"))
    elif el.tag == "table":
        for row in el.iter("row"):
            t = " ".join(_text_of(c) for c in row if _text_of(c))
            if t:
                out.append(_Block(t, False, "row"))
    else:
        t = _text_of(el)
        if t:
            lines = t.split("\n")
            out.append(_Block(t, all(_link_key(line) in anchors for line in lines if line.strip()), el.tag))


def _is_boilerplate(b: _Block) -> bool:
    if (b.words <= 60 and _BOILER.search(b.text)) or (b.words <= 40 and _BOILER_ANYWHERE.search(b.text)):
        return True
    if b.link_only and (b.words <= 25 or "\n" in b.text):  # one teaser, or a stack of them
        return True
    if b.words <= 3 and _LABEL.match(b.text):
        return True
    if b.words == 0:
        return True
    return False


def _body_text(body, titles: tuple[str | None, ...], links: list[tuple[str, str]], url: str) -> str:
    blocks = _blocks(body, links, url)
    title_keys = {_norm(t) for t in titles if t} - {""}
    kept: list[_Block] = []
    for i, b in enumerate(blocks):
        if i < 3 and not kept and _norm(b.text) in title_keys:
            continue  # the headline repeated as the first paragraph
        if _is_boilerplate(b):
            continue
        kept.append(b)
    paragraphs = [b.text for b in kept]
    return "\n\n".join(paragraphs)


# --------------------------------------------------------------------------- entry point


def _json_ld_headline(tree) -> str | None:
    for el in tree.xpath('//script[@type="application/ld+json"]')[:5]:
        try:
            data = json.loads(el.text_content() or "")
        except (ValueError, RecursionError):
            continue
        stack = [data]
        while stack:
            x = stack.pop()
            if isinstance(x, list):
                stack.extend(x[:20])
            elif isinstance(x, dict):
                if isinstance(x.get("headline"), str) and x["headline"].strip():
                    return x["headline"]
                stack.extend(v for v in x.values() if isinstance(v, (dict, list)))
    return None


_FRAGMENT = re.compile(r"\s*<[A-Za-z]")


def _load(html: str):
    from trafilatura.utils import load_html

    try:
        tree = load_html(html)  # libxml2 stops nesting at 255 levels: deep pages cannot blow the stack
        if (tree is None or len(tree) == 0) and _FRAGMENT.match(html):
            # trafilatura refuses markup without "html" near its start that parses to a single
            # block (a bare "<p>...</p>" an extension or a script sends): give it a document.
            tree = load_html(f"<html><body>{html}</body></html>")
        return tree
    except (ValueError, etree.LxmlError, RecursionError):
        return None


def _drop_after(tree, limit: int) -> bool:
    """Keep the first ``limit`` nodes of ``tree`` in document order, drop the rest; whether any
    was dropped. Extraction's time grows with the node count, and a page's head and the top of
    its body (where the story starts) come first. Inline drawings, formulas and drop-down lists
    are emptied first (trafilatura drops them anyway): their many nodes must not push the story
    past the limit."""
    for el in list(tree.iter("svg", "math", "select")):
        for child in list(el):
            el.remove(child)
    for i, node in enumerate(tree.iter()):
        if i == limit:
            break
    else:
        return False
    cut = node
    parent = node.getparent()
    while parent is not None:  # everything after it: its ancestors' later siblings
        for later in list(node.itersiblings()):
            parent.remove(later)
        node, parent = parent, parent.getparent()
    cut.getparent().remove(cut)
    return True


def _flatten_deep(tree) -> None:
    """Collapse anything nested deeper than ``_MAX_DEPTH`` into its ancestor's text.

    Real pages stay under ~50 levels; a pathologically deep page would otherwise make every
    later tree walk crawl (and recursive code overflow).
    """
    for el in tree.xpath("/" + "/".join(["*"] * _MAX_DEPTH)):
        if len(el):
            text = " ".join(t.strip() for t in el.itertext() if t and t.strip())
            for child in list(el):
                el.remove(child)
            el.text = text


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
        prune_xpath=_PRUNE,
        date_extraction_params={"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d"},
    )


def _worth_comparing(body, text: str) -> bool:
    """Whether trafilatura's fallback comparison could change this extraction.

    The comparison (readability, then jusText) costs ~12 ms a page and replaces the own
    extraction when that is short, has no paragraph text, is mostly tables or kept page chrome;
    on the 91 extraction dev pages it changed one page, whose own text was 213 characters. So it
    runs for extractions like that one, not for every page (see docs/benchmarks.md).
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
parser, so two threads building, copying or freeing trees at once can corrupt the heap: 4
threads extracting the dev pages aborted the process ("double free or corruption") in 1 of 3
runs of 40 s, and so did the server under 16 clients in 3 of 16 starts. Extraction holds the GIL
for nearly all of its time anyway, so the lock costs little parallelism (docs/benchmarks.md)."""


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


def _extract_article(html: str, url: str, max_elements: int = MAX_HTML_ELEMENTS) -> Article:
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
    except (RecursionError, ValueError, TypeError, AttributeError, IndexError) as exc:  # pragma: no cover
        raise NotAnArticle(f"the page could not be read ({type(exc).__name__})") from None
    if doc is None or doc.body is None:
        raise NotAnArticle("no article text found on the page")

    site = _site_name(doc, url)
    title = _title(doc.title, site) or _clean_meta(headline)
    text = _body_text(doc.body, (title, doc.title, headline), links, url)
    if len(text) < _MIN_TEXT_CHARS or len(_WORD.findall(text)) < _MIN_WORDS:
        raise NotAnArticle("no article text found on the page")
    return Article(
        title=title,
        byline=_byline(doc.author),
        site_name=site,
        published=_date(doc.date),
        language=detect_language(text) or page_lang,
        text=text,
        canonical_url=canonical,
    )


def warm_up() -> None:
    """Import trafilatura and load its word lists (~1-3 s, once).

    Call at server start so the first reader does not wait.
    """
    sample = "<html><body><article>" + "".join(
        f"<p>The committee met on day {i} and agreed on a new plan for the town and its schools.</p>" for i in range(6)
    )
    try:
        extract_article(sample + "</article></body></html>", "https://example.org/warm-up")
    except NotAnArticle:  # pragma: no cover - the sample is an article
        pass
