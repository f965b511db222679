"""What a page says about itself: canonical URL, headline, byline, site, date and language.

The canonical URL, ``<html lang>`` and the JSON-LD headline are read from the parsed page before
trafilatura's cleaning removes them; the rest is trafilatura's metadata, tidied here.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin, urlsplit

from .cleanup import _norm


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
# languages ("the" alone is a few percent of English words). A text this English is "en"
# without py3langid's model (see language.py), which is then loaded only for the first page
# that is not.
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
    from ..language import identifier

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
