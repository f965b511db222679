"""Wire types: every request and response body is one of these msgspec Structs.

New fields always get defaults, so an older extension keeps working with a newer server.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# --- Input limits: the boundary refuses (400) what breaks them, before any work is done. ---

MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 1000
MAX_TEXT_CHARS = 1_000_000
MAX_HTML_CHARS = 10 * 1024 * 1024  # the default request body limit: no bigger page fits anyway
MAX_QUERY_CHARS = 500

# One definition of "a URL the server accepts": http(s), a host that is a DNS name (letters,
# digits, '-', '_', non-ASCII for IDN labels; each label at most 63) or a bracketed IPv6
# address, an optional port 1-65535, no user name or password, and no control characters,
# spaces or <>"` anywhere (a browser's location.href percent-encodes those). What a pattern
# cannot check (the IDNA form of a non-ASCII host, a well-formed IPv6 literal) is
# pipeline.check_url's job.
_LABEL = r"[A-Za-z0-9_\u00a1-\uffff](?:[A-Za-z0-9_\u00a1-\uffff-]{0,61}[A-Za-z0-9_\u00a1-\uffff])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = (
    r"^[hH][tT][tT][pP][sS]?://"
    rf"(?:\[[0-9A-Fa-f:.]{{2,45}}\]|(?:{_LABEL}\.)*{_LABEL}\.?)"
    rf"(?::{_PORT})?"
    r'(?:[/?#][^\x00-\x20\x7f-\x9f<>"`\s]*)?$'
)
URL_RULE = (
    "an absolute http or https URL of at most 2,048 characters whose host is a name or an IP "
    "address, with no user name or password and no spaces, control characters or <>\"` characters"
)
HttpUrl = Annotated[
    str,
    Meta(min_length=8, max_length=MAX_URL_CHARS, pattern=URL_PATTERN, description=URL_RULE[0].upper() + URL_RULE[1:] + "."),
]
STORY_ID_PATTERN = r"^[0-9a-f]{16}$"
StoryId = Annotated[str, Meta(pattern=STORY_ID_PATTERN, description="16 hex digits.")]
# Some character that is neither white space nor a control character (those are removed before
# analysis, see pipeline.clean_text): a text of only those is blank.
NOT_BLANK_PATTERN = r"[^\s\x00-\x1f\x7f]"
Title = Annotated[str, Meta(max_length=MAX_TITLE_CHARS, description="The page's title (at most 1,000 characters).")]
Html = Annotated[str, Meta(max_length=MAX_HTML_CHARS, description="The page's HTML (at most 10,485,760 characters).")]
Text = Annotated[
    str,
    Meta(max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK_PATTERN,
         description="Plain text instead of HTML: not blank, at most 1,000,000 characters."),
]

# What a refused pattern means, said in words: msgspec's own message quotes the regex.
PATTERN_RULES = {
    URL_PATTERN: f"must be {URL_RULE}",
    STORY_ID_PATTERN: "must be 16 hex digits",
    NOT_BLANK_PATTERN: "must not be blank (only white space and control characters)",
}


def explain(message: str) -> str:
    """A validation message with any quoted pattern replaced by the rule it stands for."""
    for pattern, rule in PATTERN_RULES.items():
        quoted = f"Expected `str` matching regex {pattern!r}"
        if quoted in message:
            return message.replace(quoted, rule[0].upper() + rule[1:])
    return message


Visibility = Annotated[
    Literal["team", "private"],
    Meta(description="team: every member of the server reads the story; private: only the token that added it."),
]


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Shared options: keyword-only fields, unknown fields rejected."""


class Value(Base, frozen=True):
    """An immutable value object."""


class AnalyzeRequest(Base):
    """A page (or plain text) to analyze: send html or text (not both), or neither and the
    server fetches the URL."""

    url: HttpUrl
    html: Html | None = None
    text: Text | None = None
    title: Title | None = None
    archive: bool = True
    visibility: Visibility | None = None
    """Who may see the story: ``team`` or ``private``; unset, the calling token's default (``team``
    unless the token was created with ``--visibility private``). Private needs API tokens."""


class Mention(Value):
    """Where a name or phrase occurs: ``text[start:end]`` of the sidebar's ``text`` (offsets in
    Unicode code points)."""

    start: int
    end: int


class Keyphrase(Value):
    phrase: str
    score: float
    mentions: list[Mention] = []
    """Each occurrence of the phrase in ``text``, in any spelling that counts as the same phrase
    ("tornado", "tornadoes"); empty for a story analysed by an older server."""


class Entity(Value):
    name: str
    label: str
    count: int
    mentions: list[Mention]


Relation = Annotated[
    Literal["same_event", "background"],
    Meta(description="same_event: reports the same event as the story read (another outlet, a copy, an update); "
                     "background: an earlier or other story about the same people, organisations or topics."),
]


class RelatedStory(Value):
    story_id: str
    url: str
    title: str | None
    site_name: str | None
    published: str | None
    score: float
    shared_entities: list[str] = []
    shared_keyphrases: list[str] = []
    relation: Relation = "background"
    """How the story relates to the one read (see backstory.archive.relation)."""
    first_seen: str | None = None
    """When the archive first stored the story (UTC, ISO 8601): the date of a story that names
    no published date."""


class Timings(Value):
    fetch: float = 0.0
    extract: float = 0.0
    keyphrases: float = 0.0
    entities: float = 0.0
    related: float = 0.0
    total: float = 0.0


class StoryFacts(Value):
    """A story's facts and clean text: the first part of its sidebar (the first line of a streamed one)."""

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


class Sidebar(StoryFacts):
    """The sidebar payload: everything the panel shows for one story."""

    keyphrases: list[Keyphrase]
    entities: list[Entity]
    related: list[RelatedStory]
    timings_ms: Timings = Timings()
    archived: bool = False
    cached: bool = False
    analysed: bool = True
    """False for a story a bulk import stored whose names, keyphrases and embedding the server
    has not computed yet (they are empty until then)."""
    added_by: list[str] = []
    """The names of the tokens that added the story to the archive (and ``cli`` for the command
    line); empty on a server without tokens, and for a story not archived."""
    visibility: Visibility = "team"
    tags: list[str] = []
    """The reader's tags for the story, kept from the export it was imported from."""


class Me(Value):
    """The calling API token."""

    name: str
    scope: Literal["read", "write", "admin"]
    visibility: Visibility = "team"
    """What the token's analyses and imports are stored as when a request does not say."""


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
    visibility: Visibility = "team"


class StoryList(Value):
    stories: list[StorySummary]
    total: int
    limit: int
    offset: int


class FeedRequest(Base):
    """A news feed to subscribe to: RSS, Atom or JSON Feed."""

    url: HttpUrl
    title: Title | None = None


class FeedSubscription(Value):
    """A subscribed news feed and how its polling goes."""

    url: str
    title: str | None
    added_by: str | None
    """The name of the token that subscribed (``cli`` for the command line); None on a server without tokens."""
    added: str
    last_poll: str | None
    next_poll: str
    last_error: str | None
    """Why the last poll failed (None when it worked): the feed is kept and polled again later."""
    failures: int
    """Polls failed in a row; each makes the wait before the next twice as long, up to a cap."""
    interval_s: float
    entries: int
    """Entries taken from the feed so far."""


class FeedList(Value):
    feeds: list[FeedSubscription]


ImportId = Annotated[str, Meta(pattern=STORY_ID_PATTERN, description="An import's id: 16 hex digits.")]


class ImportFailure(Value):
    """An entry of an export that was not imported, and why ("the file" when the rest of the
    file could not be read)."""

    where: str
    reason: str
    url: str | None = None


class ImportStatus(Value):
    """An import sent over HTTP and its progress (see POST /api/v1/imports)."""

    import_id: str
    status: Literal["running", "done", "failed", "interrupted"]
    """``failed``: the file could not be read to its end (``error`` says why; what was read
    before is stored); ``interrupted``: the server that ran it stopped (send the file again:
    what was stored is skipped)."""
    format: str
    size: int
    """Bytes received."""
    read_bytes: int
    """How far into the file the import has read (a zip's members: as stored in it)."""
    imported: int
    skipped: int
    """Entries the archive already had."""
    failed: int
    failures: list[ImportFailure]
    """The first failures (``failed`` counts them all)."""
    feeds_found: int
    feeds: list[str]
    """The first feeds' URLs (OPML)."""
    error: str | None
    started: str
    updated: str
    finished: str | None


class ImportList(Value):
    imports: list[ImportStatus]


PROBLEM_JSON = "application/problem+json"


class Problem(Value):
    """RFC 9457 problem details, served as application/problem+json."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
