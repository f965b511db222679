"""The request kinds of the mixed load, their bodies (encoded once) and how each is sent."""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgspec

from backstory_tools.bench.corpus import load_duc, load_pages


def _only(*codes: int) -> Callable[[int], bool]:
    return lambda status: status in codes


def _client_error(status: int) -> bool:
    return 400 <= status < 500


def _bounded(status: int) -> bool:
    return status == 200 or 400 <= status < 500 or status == 503


@dataclass(frozen=True)
class Kind:
    weight: float
    expect: str
    ok: Callable[[int], bool]
    hostile: bool = False
    huge: bool = False


# Weights are percentages of the draws; most requests are what a reader's extension sends.
KINDS: dict[str, Kind] = {
    "analyze_new": Kind(32, "200", _only(200)),
    "analyze_cached": Kind(15, "200", _only(200)),
    "analyze_text": Kind(10, "200", _only(200)),
    "search": Kind(12, "200", _only(200)),
    "story": Kind(8, "200", _only(200)),
    "related": Kind(8, "200", _only(200)),
    "text_plain": Kind(2, "415", _only(415), hostile=True),
    "foreign_origin": Kind(2, "403", _only(403), hostile=True),
    "bad_utf8": Kind(2, "400", _only(400), hostile=True),
    "deep_json": Kind(2, "400", _only(400), hostile=True),
    "bad_host": Kind(2, "400", _only(400), hostile=True),
    "long_title": Kind(2, "4xx", _client_error, hostile=True),
    "huge_text": Kind(2, "200/4xx/503", _bounded, huge=True),
    "huge_html": Kind(1, "200/4xx/503", _bounded, huge=True),
}

URL_SLOT = "\x00load-url\x00"
SEARCH_TERMS = ["police", "president", "court", "earthquake", "election", "fire", "government",
                "minister", "storm", "company", "arrested", "killed", "team", "market", "city"]
FOREIGN_ORIGIN = "https://attacker.example"
FOREIGN_HOST = "attacker.example"
NESTING = 100_000
LONG_TITLE_CHARS = 1_000_000
CACHED_POOL = 32  # only recent pages: the server's response cache keeps the last few hundred


# ---------------------------------------------------------------------------------------------
# request bodies, encoded once: a request only splices its URL in


class Template:
    """A JSON body with a slot for the URL (encoding a 10 MB page per request would cost this
    client's CPU, which the server shares)."""

    def __init__(self, body: dict) -> None:
        raw = msgspec.json.encode({**body, "url": URL_SLOT})
        slot = msgspec.json.encode(URL_SLOT)
        self.head, self.tail = raw.split(slot)

    def render(self, url: str) -> bytes:
        return self.head + msgspec.json.encode(url) + self.tail


def fresh_url(url: str, tag: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}load={tag}"


def huge_text(texts: list[str], chars: int) -> str:
    """Real prose (the DUC texts, over and over) cut at a word just under ``chars``."""
    parts, size, i = [], 0, 0
    while size < chars:
        parts.append(texts[i % len(texts)])
        size += len(parts[-1]) + 2
        i += 1
    text = "\n\n".join(parts)[:chars]
    return text[: text.rfind(" ")]


def huge_html(texts: list[str], body_bytes: int) -> str:
    """An article page whose analyze body stays just under ``body_bytes``."""
    head = "<!doctype html><html><head><title>A very long page</title></head><body><article><h1>A very long page</h1>"
    tail = "</article></body></html>"
    paragraphs, size, i = [], len(head) + len(tail), 0
    budget = body_bytes - 4096  # room for the URL and the JSON around the page
    while True:
        p = f"<p>{texts[i % len(texts)]}</p>"
        # JSON escapes quotes and newlines: count the paragraph's encoded size
        cost = len(msgspec.json.encode(p)) - 2
        if size + cost > budget:
            break
        paragraphs.append(p)
        size += cost
        i += 1
    return head + "".join(paragraphs) + tail


@dataclass
class Material:
    pages: list[Template]
    page_urls: list[str]
    texts: list[Template]
    text_urls: list[str]
    small: Template  # a short valid text: what the hostile requests carry
    long_title: Template
    bad_utf8: bytes
    deep_json: bytes
    huge_text: Template
    huge_html: Template
    sizes: dict


def material(data: Path) -> Material:
    from backstory.config import Settings
    from backstory.schemas import MAX_TEXT_CHARS

    pages = load_pages(data, None)
    duc = load_duc(data, None)
    texts = [d.text for d in duc if d.text]
    small = {"text": texts[0], "title": "A short story", "archive": True}
    max_body = Settings().max_body_bytes
    big_text = huge_text(texts, MAX_TEXT_CHARS - 1000)
    big_html = huge_html(texts, max_body)
    m = Material(
        pages=[Template(p.body()) for p in pages], page_urls=[p.url for p in pages],
        texts=[Template(d.body(archive=False)) for d in duc], text_urls=[d.url for d in duc],
        small=Template(small),
        long_title=Template({**small, "title": "T" * LONG_TITLE_CHARS}),
        bad_utf8=b'{"url":"https://bad-utf8.load.example/x","text":"caf\xff\xfe story"}',
        deep_json=b'{"url":"https://deep.load.example/x","text":' + b"[" * NESTING + b"]" * NESTING + b"}",
        huge_text=Template({"text": big_text, "title": "A very long text", "archive": False}),
        huge_html=Template({"html": big_html, "archive": False}),
        sizes={},
    )
    m.sizes = {"pages": len(pages), "texts": len(duc), "huge_text_chars": len(big_text),
               "huge_html_body_bytes": len(m.huge_html.render("https://huge.load.example/page")),
               "max_body_bytes": max_body, "long_title_chars": LONG_TITLE_CHARS, "nesting": NESTING}
    return m


# ---------------------------------------------------------------------------------------------
# what a phase has seen, and one request


@dataclass
class Seen:
    """What earlier answers showed: story ids, search terms, requests worth repeating."""

    ids: list[str]
    id_set: set[str]
    terms: list[str]
    recent: collections.deque  # (url, Template) of answered analyze_new requests

    def add_id(self, story_id: str) -> None:
        if story_id and story_id not in self.id_set and len(self.ids) < 20_000:
            self.id_set.add(story_id)
            self.ids.append(story_id)


class Ref(msgspec.Struct):
    story_id: str


class Phrase(msgspec.Struct):
    phrase: str


class SidebarSeen(msgspec.Struct):
    """The fields of an analyze answer this client reads (the rest is skipped while decoding)."""

    story_id: str
    cached: bool = False
    related: list[Ref] = []
    keyphrases: list[Phrase] = []


class Listing(msgspec.Struct):
    stories: list[Ref] = []


class RelatedSeen(msgspec.Struct):
    related: list[Ref] = []


def decoders() -> dict:
    return {"sidebar": msgspec.json.Decoder(SidebarSeen), "listing": msgspec.json.Decoder(Listing),
            "related": msgspec.json.Decoder(RelatedSeen)}


JSON = {"content-type": "application/json"}


async def send(kind: str, client: Any, m: Material, seen: Seen, rng: random.Random, tag: str,
               dec: dict, huge_timeout: float) -> tuple[int, bool | None]:
    """Send one request of ``kind``; returns (status, cached) — cached only for analyses."""
    post = client.post
    if kind == "analyze_new":
        i = rng.randrange(len(m.pages))
        url = fresh_url(m.page_urls[i], tag)
        r = await post("/api/v1/analyze", content=m.pages[i].render(url), headers=JSON)
        if r.status_code == 200:
            sidebar = dec["sidebar"].decode(r.content)
            seen.add_id(sidebar.story_id)
            for ref in sidebar.related:
                seen.add_id(ref.story_id)
            for k in sidebar.keyphrases[:3]:
                if len(seen.terms) < 500:
                    seen.terms.append(k.phrase)
            seen.recent.append((url, m.pages[i]))
        return r.status_code, None
    if kind == "analyze_cached":
        url, template = seen.recent[rng.randrange(len(seen.recent))]
        r = await post("/api/v1/analyze", content=template.render(url), headers=JSON)
        return r.status_code, dec["sidebar"].decode(r.content).cached if r.status_code == 200 else None
    if kind == "analyze_text":
        i = rng.randrange(len(m.texts))
        r = await post("/api/v1/analyze", content=m.texts[i].render(fresh_url(m.text_urls[i], tag)), headers=JSON)
        return r.status_code, None
    if kind == "search":
        r = await client.get("/api/v1/stories", params={"q": rng.choice(seen.terms), "limit": 10})
        if r.status_code == 200:
            for ref in dec["listing"].decode(r.content).stories:
                seen.add_id(ref.story_id)
        return r.status_code, None
    if kind == "story":
        r = await client.get(f"/api/v1/stories/{rng.choice(seen.ids)}")
        return r.status_code, None
    if kind == "related":
        r = await client.get(f"/api/v1/stories/{rng.choice(seen.ids)}/related")
        if r.status_code == 200:
            for ref in dec["related"].decode(r.content).related[:3]:
                seen.add_id(ref.story_id)
        return r.status_code, None
    url = f"https://{kind.replace('_', '-')}.load.example/story?load={tag}"
    if kind == "text_plain":
        r = await post("/api/v1/analyze", content=m.small.render(url), headers={"content-type": "text/plain;charset=UTF-8"})
    elif kind == "foreign_origin":
        r = await post("/api/v1/analyze", content=m.small.render(url), headers={**JSON, "origin": FOREIGN_ORIGIN})
    elif kind == "bad_utf8":
        r = await post("/api/v1/analyze", content=m.bad_utf8, headers=JSON)
    elif kind == "deep_json":
        r = await post("/api/v1/analyze", content=m.deep_json, headers=JSON)
    elif kind == "bad_host":
        r = await client.get("/api/v1/stories", params={"q": "police"}, headers={"host": FOREIGN_HOST})
    elif kind == "long_title":
        r = await post("/api/v1/analyze", content=m.long_title.render(url), headers=JSON)
    elif kind in ("huge_text", "huge_html"):
        template = m.huge_text if kind == "huge_text" else m.huge_html
        r = await post("/api/v1/analyze", content=template.render(url), headers=JSON, timeout=huge_timeout)
    else:
        raise ValueError(f"unknown request kind {kind}")
    return r.status_code, None
