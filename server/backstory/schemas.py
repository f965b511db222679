"""Wire types: every request and response body is one of these msgspec Structs.

New fields always get defaults, so an older extension keeps working with a newer server.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

HttpUrl = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=2048,
        pattern=r"^[hH][tT][tT][pP][sS]?://[^\s/?#]+[^\s]*$",
        description="An absolute http or https URL, at most 2,048 characters.",
    ),
]
StoryId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}$", description="16 hex digits.")]


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Shared options: keyword-only fields, unknown fields rejected."""


class Value(Base, frozen=True):
    """An immutable value object."""


class AnalyzeRequest(Base):
    """A page (or plain text) to analyse."""

    url: HttpUrl
    html: str | None = None
    text: str | None = None
    title: str | None = None
    archive: bool = True


class Keyphrase(Value):
    phrase: str
    score: float


class Mention(Value):
    start: int
    end: int


class Entity(Value):
    name: str
    label: str
    count: int
    mentions: list[Mention]


class RelatedStory(Value):
    story_id: str
    url: str
    title: str | None
    site_name: str | None
    published: str | None
    score: float
    shared_entities: list[str] = []
    shared_keyphrases: list[str] = []


class Timings(Value):
    fetch: float = 0.0
    extract: float = 0.0
    keyphrases: float = 0.0
    entities: float = 0.0
    related: float = 0.0
    total: float = 0.0


class Sidebar(Value):
    """The sidebar payload: everything the panel shows for one story."""

    story_id: str
    url: str
    canonical_url: str
    title: str | None
    byline: str | None
    site_name: str | None
    published: str | None
    language: str | None
    word_count: int
    reading_minutes: int
    text: str
    keyphrases: list[Keyphrase]
    entities: list[Entity]
    related: list[RelatedStory]
    timings_ms: Timings = Timings()
    archived: bool = False
    cached: bool = False
    analysed: bool = True
    """False for a story a bulk import stored whose names, keyphrases and embedding the server
    has not computed yet (they are empty until then)."""


class RelatedList(Value):
    related: list[RelatedStory]


class StorySummary(Value):
    story_id: str
    url: str
    canonical_url: str
    title: str | None
    site_name: str | None
    published: str | None
    first_seen: str
    last_seen: str
    snippet: str | None = None


class StoryList(Value):
    stories: list[StorySummary]
    total: int
    limit: int
    offset: int


class Problem(Value):
    """RFC 9457 problem details, served as application/problem+json."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
