"""The storage protocol: what a backend implements under :class:`backstory.archive.stories.StoryArchive`.

A backend stores rows and answers lookups; it decides nothing about which stories are one story,
what the related index holds or when a cached answer goes stale (the story archive does). Its
calls are synchronous and run in the backend's own threads; a write runs in one transaction
(atomic, in commit order with the other writes). Features arrive encoded (``bytes``) and leave as stored.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Protocol, TypeVar

import numpy as np

from .. import schemas
from ..story import OPERATOR, StoryRecord, Viewer
from ..subscription import FeedRow, FeedStats, PollOutcome
from .feed import Change

T = TypeVar("T")
AfterCommit = Callable[[], None] | None
"""Run once the write is committed, in commit order, before its caller hears of it."""


class ArchiveUnavailable(ValueError):
    """The archive setting names an archive this version cannot open or reach (the message says why)."""


class SchemaTooNew(RuntimeError):
    """The archive's schema is newer than this Backstory: it refuses to start rather than guess."""


def too_new(found: int, known: int) -> str:
    return (f"archive schema version {found} is newer than this Backstory ({known}): "
            "a newer Backstory wrote it; upgrade this one")


class UrlOwner(NamedTuple):
    """The story a URL belongs to (as its canonical URL or as an alias)."""

    story_id: str
    own: bool  # the URL is the story's canonical URL
    text: str


class Identity(NamedTuple):
    canonical_url: str
    first_seen: str
    last_seen: str
    analysed: bool
    owner: str = ""


class Card(NamedTuple):
    """What a related-story entry shows of a stored story."""

    canonical_url: str
    title: str | None
    site_name: str | None
    published: str | None
    first_seen: str


class IndexRow(NamedTuple):
    """What the related index needs of one stored story (``content``: title, text, entities and
    keyphrases, only when the stored features must be recomputed)."""

    story_id: str
    features: bytes
    embedding: np.ndarray | None
    simhash: int
    simhash_ok: bool
    content: tuple[str | None, str, list[schemas.Entity], list[schemas.Keyphrase]] | None = None
    owner: str = ""  # a private story's owner ("" for a team story): who the index shows it to


class TokenRow(NamedTuple):
    """A named API token as stored: never its secret, only the secret's hash (not shown here)."""

    id: int
    name: str
    scope: str
    created: str
    last_used: str | None
    expires: str | None
    revoked: str | None
    visibility: str = "team"  # what the token's stories are stored as when a request does not say


class ImportRow(NamedTuple):
    """An import sent over HTTP, as stored: its progress so far (``failures`` and ``feeds``: JSON
    lists, the first of each), ``updated`` the running server's last heartbeat."""

    import_id: str
    format: str
    status: str  # running, done, failed, interrupted
    added_by: str | None
    size: int
    read_bytes: int
    imported: int
    skipped: int
    failed: int
    failures: str
    feeds_found: int
    feeds: str
    error: str | None
    started: str
    updated: str
    finished: str | None


def tokens_ever(reader: "Reader") -> int:
    """How many API tokens were ever created, revoked and expired ones included: once there has
    been one, calls need one (revoking the last token must not open the server to everyone)."""
    return reader.token_count()  # (a count: readable in an archive of any version since the tokens table)


class Reader(Protocol):
    def get(self, story_id: str, viewer: Viewer = OPERATOR) -> StoryRecord | None: ...

    def owner_of(self, url: str, owner: str = "") -> UrlOwner | None:
        """The story with this (normalised) URL as canonical URL or alias, among the team's
        stories (``owner`` "") or among ``owner``'s private ones."""

    def text(self, story_id: str) -> str | None: ...

    def features(self, story_ids: list[str]) -> dict[str, bytes]: ...

    def cards(self, story_ids: list[str]) -> dict[str, Card]: ...

    def search(self, q: str | None, limit: int, offset: int, viewer: Viewer) -> tuple[list[schemas.StorySummary], int]:
        """Full-text search (with snippets) when q is given, else newest first, among the stories
        ``viewer`` sees; (page, total)."""

    def count(self, pending_only: bool = False) -> int: ...

    def pending(self, limit: int) -> list[StoryRecord]:
        """Stories stored unanalysed, oldest first."""

    def export_page(self, after: int, viewer: Viewer = OPERATOR) -> tuple[list[StoryRecord], int]:
        """The next records ``viewer`` sees after a position (0: from the start), oldest first,
        and the position reached; an empty page at the end."""

    def index_rows(self, with_content: bool) -> Iterator[IndexRow]:
        """Every story's index row, in storage order."""

    def index_row(self, story_ids: list[str]) -> dict[str, IndexRow | None]:
        """These stories' index rows; None for one no longer stored."""

    def aliases_page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str]]:
        """(url, story_id) of the URLs filed under a story, in (URL, id) order, after ``after``."""

    def changed_after(self, seq: int, limit: int, owner: str = "") -> list[tuple[str, int]]:
        """(story_id, simhash) of the stories (SimHash-usable) of one owner ("" the team) the
        feed has as written after ``seq``, newest first, at most ``limit``."""

    def features_version(self) -> str | None: ...

    def claims(self, story_id: str) -> list[str]:
        """Who added the story ("token:<id>", "cli", ...), first claim first."""

    def token(self, digest: str) -> TokenRow | None:
        """The token whose secret has this hash, revoked or not."""

    def tokens(self, with_revoked: bool = False) -> list[TokenRow]:
        """Every token not revoked (or every one), oldest first."""

    def token_count(self) -> int:
        """How many tokens were ever created."""

    def token_hashes(self) -> list[tuple[TokenRow, str]]:
        """Every token ever created, with its secret's hash (to move an archive whole), oldest first."""

    def claims_page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str, str]]:
        """(story_id, who, at) of every claim, in (story_id, who) order, after ``after``."""

    def feed_head(self) -> int:
        """The change feed's latest position."""

    def import_row(self, import_id: str) -> ImportRow | None: ...

    def import_rows(self, added_by: str | None, limit: int) -> list[ImportRow]:
        """The latest imports (of ``added_by`` only, unless None), newest first."""

    # News-feed subscriptions (see archive/subscriptions.py).
    def feeds(self) -> list[FeedRow]: ...

    def feed(self, url: str) -> FeedRow | None: ...

    def unseen(self, url: str, keys: list[str]) -> list[str]:
        """The entry keys not taken from the feed yet, in their order."""

    def feed_stats(self) -> FeedStats: ...

    def next_due(self) -> str | None: ...


class Writer(Reader, Protocol):
    def put(self, record: StoryRecord, features: bytes, simhash_ok: bool, new: bool) -> None:
        """Insert (``new``) or replace the story ``record.story_id``."""

    def identity(self, story_id: str) -> Identity | None: ...

    def seen(self, story_id: str, at: str) -> None:
        """Move the story's last_seen up to ``at``."""

    def point_alias(self, url: str, story_id: str) -> None:
        """Point an alias URL at a story, among the URLs of the story's owner (the team's, or a
        member's private ones); a story's own canonical URL is never taken from it."""

    def delete(self, story_id: str) -> bool: ...

    def complete(self, record: StoryRecord, features: bytes) -> bool:
        """Store a pending story's analysis; False when it is gone or already analysed."""

    def store_features(self, features: list[tuple[bytes, str]], version: str) -> None:
        """Replace stored features (recomputed for a new features version)."""

    def add_token(self, name: str, scope: str, digest: str, created: str, expires: str | None,
                  visibility: str = "team") -> None: ...

    def claim(self, story_id: str, who: str, at: str) -> None:
        """Record that ``who`` added the story (once)."""

    def put_token(self, token: TokenRow, digest: str) -> None:
        """Store a token as another archive had it, its id included (see ``archive/transfer.py``)."""

    def unclaim(self, story_id: str, who: str) -> None: ...

    def revoke_token(self, name: str, at: str) -> bool:
        """Revoke the token of this name; False when there is none."""

    def token_used(self, token_id: int, at: str) -> None: ...

    def put_import(self, row: ImportRow) -> None:
        """Store an import's row, new or updated."""

    def prune_imports(self, started_before: str) -> None:
        """Forget the imports started before ``started_before``."""

    def add_feed(self, url: str, title: str | None, added_by: str | None, at: str, interval_s: float,
                 due: str) -> bool:
        """Subscribe, first due at ``due``; False when subscribed already."""

    def remove_feed(self, url: str) -> bool: ...

    def take_due(self, now: str, until: str, limit: int) -> list[str]:
        """The feeds due by ``now``, each put off until ``until`` (the poller's lease)."""

    def polled(self, url: str, outcome: PollOutcome) -> None: ...

    def mark_seen(self, url: str, keys: list[str], at: str) -> None: ...


class Storage(Protocol):
    async def start(self) -> None:
        """Create or migrate the schema (a schema newer than the code refuses to start)."""

    async def close(self) -> None: ...

    async def read(self, fn: Callable[[Reader], T]) -> T: ...

    async def write(self, fn: Callable[[Writer], tuple[T, AfterCommit]]) -> T:
        """Run ``fn`` in a write transaction; its ``AfterCommit`` runs after the commit."""

    async def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        """The feed's changes after ``seq`` made by other processes (see
        :class:`backstory.archive.feed.Followed`)."""

    async def wait_for_changes(self, timeout: float) -> None:
        """Return when the feed may hold new changes, or after ``timeout`` seconds."""
