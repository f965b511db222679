"""The story: the record Backstory keeps of one article, the one place its derived fields are
computed (id, canonical URL, fingerprints, word count, reading time, the text the embedding is
made from), and its mapping to the sidebar payload."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone

import msgspec

from . import schemas
from .duplicates import content_hash, simhash
from .urls import normalize_url
from .words import word_count

EMBEDDING_DIM = 384
WORDS_PER_MINUTE = 230


Viewer = str | None
"""Whose eyes a read of the archive is for: None sees the team's stories only (a server without
tokens, an unnamed caller); a claimant ("token:<id>", "cli", ...) also sees its own private
stories; :data:`OPERATOR` sees every story."""
OPERATOR = "*"
"""The viewer of the command line's whole-archive work (export, migration) and of the server's
own background work: every story, private ones included. No claimant is named "*"."""


def sees(viewer: Viewer, owner: str) -> bool:
    """Whether ``viewer`` may see a story of this owner ("" for a team story)."""
    return not owner or viewer == OPERATOR or owner == viewer


class StoryRecord(msgspec.Struct, kw_only=True):
    """One archived story: the analysed text and everything derived from it."""

    story_id: str = ""
    url: str
    canonical_url: str
    title: str | None = None
    byline: str | None = None
    site_name: str | None = None
    published: str | None = None
    language: str | None = None
    text: str = ""
    word_count: int = 0
    keyphrases: list[schemas.Keyphrase] = []
    entities: list[schemas.Entity] = []
    embedding: list[float] | None = None
    simhash: int = 0
    content_hash: str = ""
    first_seen: str = ""
    last_seen: str = ""
    analysed: bool = True
    """False for a story stored by a bulk import whose entities, keyphrases and embedding are
    still to be computed (the server does it in the background)."""
    owner: str = ""
    """Empty for a team story (every member reads it); for a private story, who it belongs to
    ("token:<id>", see :attr:`backstory.tokens.Caller.who`): only they see it, and it is part of
    the story's identity (its id, its URLs), so one URL can be a team story and a private one."""

    @property
    def visibility(self) -> str:
        return "private" if self.owner else "team"
    tags: list[str] = []
    """The reader's own tags for the story, from the export it was imported from (Pocket, Omnivore...)."""


def utc_now() -> str:
    """Current time as ISO 8601 UTC with seconds, e.g. ``2026-01-02T03:04:05Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def story_id_for(canonical_url: str, owner: str = "") -> str:
    """Stable 16-hex-digit id of a story, from its normalised canonical URL (and its owner, for a
    private story: each member's private story of a URL is a story of its own)."""
    key = f"{owner}\x00{canonical_url}" if owner else canonical_url
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def embedding_text(title: str | None, text: str) -> str:
    """The text a story's document embedding is computed from: its title, then its text."""
    return f"{title}\n\n{text}" if title else text


def reading_minutes(words: int) -> int:
    return max(1, math.ceil(words / WORDS_PER_MINUTE)) if words else 0


def new_story(article, *, url: str, canonical_url: str, keyphrases: list[schemas.Keyphrase] = (),
              entities: list[schemas.Entity] = (), embedding: list[float] | None = None,
              analysed: bool = True, tags: tuple[str, ...] | list[str] = (), owner: str = "") -> StoryRecord:
    """The record of an article just extracted from ``url`` (``canonical_url``: the normalised
    URL it is archived under, see :func:`backstory.urls.identity_url`), with its derived fields."""
    return derive(StoryRecord(
        url=url, canonical_url=canonical_url, title=article.title, byline=article.byline,
        site_name=article.site_name, published=article.published, language=article.language,
        text=article.text, keyphrases=list(keyphrases), entities=list(entities), embedding=embedding,
        analysed=analysed, tags=list(tags), owner=owner,
    ))


def derive(record: StoryRecord) -> StoryRecord:
    """``record`` with the derived fields it leaves empty filled in (a record from an import may
    carry its own id and dates; they are kept), its canonical URL normalised."""
    changes: dict = {}
    canonical = normalize_url(record.canonical_url or record.url)
    if canonical != record.canonical_url:
        changes["canonical_url"] = canonical
    if not record.story_id:
        changes["story_id"] = story_id_for(canonical, record.owner)
    if not record.simhash and record.text:
        changes["simhash"] = simhash(record.text)
    if not record.content_hash:
        changes["content_hash"] = content_hash(record.text)
    if not record.word_count and record.text:
        changes["word_count"] = word_count(record.text)
    now = utc_now()
    if not record.first_seen:
        changes["first_seen"] = record.last_seen or now
    if not record.last_seen:
        changes["last_seen"] = now
    if record.embedding is not None and len(record.embedding) != EMBEDDING_DIM:
        raise ValueError(f"embedding must have {EMBEDDING_DIM} dimensions, not {len(record.embedding)}")
    return msgspec.structs.replace(record, **changes) if changes else record


def to_sidebar(record: StoryRecord, related: list[schemas.RelatedStory], *, timings: schemas.Timings | None = None,
               archived: bool = False, cached: bool = False, added_by: list[str] = ()) -> schemas.Sidebar:
    """The sidebar payload of a story and its related stories."""
    return schemas.Sidebar(
        story_id=record.story_id, url=record.url, canonical_url=record.canonical_url, title=record.title,
        byline=record.byline, site_name=record.site_name, published=record.published, language=record.language,
        word_count=record.word_count, reading_minutes=reading_minutes(record.word_count), text=record.text,
        keyphrases=record.keyphrases, entities=record.entities, related=related,
        timings_ms=timings or schemas.Timings(), archived=archived, cached=cached, analysed=record.analysed,
        added_by=list(added_by), tags=record.tags, visibility=record.visibility,
    )
