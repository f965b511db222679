"""Body clean-up: what trafilatura keeps that is not the story.

The headline repeated at the top, paragraphs and lists that are nothing but links to other
stories of the same site, labels ("DON'T MISS", "[VIDEO]") and
newsletter / follow-us / tip-line boxes go; text trafilatura leaves between its blocks is kept,
``<br>`` becomes a line break. Every rule reads structure or generic page furniture, never one
site's class names or phrases (tests/test_extract_generic.py).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

from lxml import etree

_WORD = re.compile(r"\w+")
# The clean-up's rules, by name, so the evaluation can switch each off and measure it on pages of
# sites it was not chosen on (scripts/evaluate.py --folds; docs/quality.md). A phrase rule is a
# family of phrases of one meaning, generic English page furniture; tests/test_extract_generic.py
# fails on a family whose removals on the dev pages all come from one site.
_NETWORK = r"(?:twitter|facebook|instagram|youtube|linkedin|tiktok|whatsapp)"
PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # family: (phrases a short block starts with, phrases a shorter block holds anywhere)
    "more-stories": (
        (r"(?:see|read|watch|view)\s+(?:more|also|next)\b", r"related\b", r"more\s*:", r"also\s+read\b",
         r"don'?t\s+miss\b", r"recommended\b", r"trending\b", r"most\s+popular\b", r"top\s+stories\b"),
        (),
    ),
    "newsletter": (
        (r"sign\s+up\b", r"subscribe\b", r"get\s+(?:the\s+latest|our|access)\b"),
        (r"newsletter", r"delivered\s+(?:through|to)\s+your\s+(?:letterbox|inbox)"),
    ),
    "social": (
        (r"follow\s+(?:us|him|her|them|@)\b", r"share\s+(?:this|on)\b"),
        (rf"follow\s+(?:\w+\s+){{1,3}}on\s+{_NETWORK}",),
    ),
    "contact": ((r"have\s+a\s+tip\b", r"tell\s+us\s+what\b"), (r"may\s+be\s+reached\s+at",)),
    "ads": ((r"advertisement\b", r"sponsored\b"), ()),
}
"""Blocks of up to 60 words that start with one of a family's first phrases, or of up to 40 words
that hold one of its second ones, are page furniture."""
LABELS: tuple[str, ...] = (
    "video", "insight", "reaction", "watch", "photos?", "gallery", "listen", "more", "live", "trending",
    "opinion", "analysis", "ad", "advertisement", "related", "don'?t miss", "must see", "exclusive", "breaking",
)
"""A block of up to three words that is nothing but one of these labels ("[VIDEO]")."""
STRUCTURAL = ("headline", "story-links", "link-list")
"""The rules that read the page's structure rather than words."""

RULES: frozenset[str] = frozenset([f"phrases:{k}" for k in PHRASES] + ["labels"] + list(STRUCTURAL))
"""Every rule's name; extraction uses all of them unless told otherwise (the evaluation switches
them one by one)."""

_START = {f"phrases:{k}": re.compile(rf"^\W*(?:{'|'.join(st)})", re.I) for k, (st, _) in PHRASES.items() if st}
_ANYWHERE = {f"phrases:{k}": re.compile("|".join(an), re.I) for k, (_, an) in PHRASES.items() if an}
_ANY_START = re.compile(rf"^\W*(?:{'|'.join(p for st, _ in PHRASES.values() for p in st)})", re.I)  # one pass first
_ANY_ANYWHERE = re.compile("|".join(p for _, an in PHRASES.values() for p in an), re.I)
_LABEL = re.compile(rf"^[\W_]*(?:{'|'.join(LABELS)})[\W_]*$", re.I)


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
    """One paragraph, list item, heading or table row of trafilatura's output, with the names of
    the rules that would remove it."""

    __slots__ = ("text", "words", "link_only", "kind", "reasons")

    def __init__(self, text: str, link_only: bool, kind: str) -> None:
        self.text = text
        self.words = len(_WORD.findall(text))
        self.link_only = link_only
        self.kind = kind
        self.reasons: frozenset[str] = frozenset()


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
    for b in out:
        b.reasons = b.reasons | _reasons(b)
    return out


def _element_blocks(el, anchors: set[str], out: list[_Block]) -> None:
    if el.tag == "list":
        items = [it for it in el.iter("item")]
        texts = [_text_of(it) for it in items]
        links = [bool(t) and _link_key(t) in anchors for t in texts]
        # a list of links: "related stories", share buttons
        link_list = len(items) >= 2 and sum(links) == len(items) and sum(len(_WORD.findall(t)) for t in texts) >= 4 * len(items)
        for t, lo in zip(texts, links):
            if t:
                out.append(_Block(t, lo, "item"))
                if link_list:
                    out[-1].reasons = frozenset({"link-list"})
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


def _reasons(b: _Block) -> set[str]:
    """The rules (other than the headline's) that remove block ``b``."""
    out = set()
    if b.words <= 60 and _ANY_START.match(b.text):
        out.update(name for name, rx in _START.items() if rx.match(b.text))
    if b.words <= 40 and _ANY_ANYWHERE.search(b.text):
        out.update(name for name, rx in _ANYWHERE.items() if rx.search(b.text))
    if b.link_only and (b.words <= 25 or "\n" in b.text):  # one teaser, or a stack of them
        out.add("story-links")
    if b.words <= 3 and _LABEL.match(b.text):
        out.add("labels")
    return out


class Cleanup:
    """trafilatura's output as blocks, and the text left of it under any set of rules."""

    __slots__ = ("blocks", "title_keys", "title_words")

    def __init__(self, body, titles: tuple[str | None, ...], links: list[tuple[str, str]], url: str) -> None:
        self.blocks = _blocks(body, links, url)
        self.title_keys = {_norm(t) for t in titles if t} - {""}
        self.title_words = [set(key.split()) for key in self.title_keys]

    def _is_headline(self, b: _Block) -> bool:
        """The title as a paragraph, or as a heading with a site's or section's words added or cut
        (most of the heading's words are the title's and most of the title's are the heading's)."""
        key = _norm(b.text)
        if key in self.title_keys:
            return True
        words = set(key.split())
        return b.kind == "head" and bool(words) and any(
            len(words & t) >= 0.8 * len(words) and len(words & t) >= 0.8 * len(t) for t in self.title_words
        )

    def text(self, rules: frozenset[str] = RULES) -> str:
        kept: list[_Block] = []
        for i, b in enumerate(self.blocks):
            if b.words == 0 or b.reasons & rules:
                continue
            if "headline" in rules and i < 3 and not kept and self._is_headline(b):
                continue  # the headline repeated at the top
            kept.append(b)
        return "\n\n".join(b.text for b in kept)
