"""Body clean-up: what trafilatura keeps that is not the story.

The headline repeated as the first paragraph, paragraphs and lists that are nothing but links to
other stories of the same site, labels ("DON'T MISS", "[VIDEO]") and newsletter / follow-us /
tip-line boxes go; text trafilatura leaves between its blocks is kept, ``<br>`` becomes a line
break.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

from lxml import etree

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
